"""NudeNet's detector (`320n.onnx`, a YOLOv8n that the `nudenet` package ships; MIT) as an extra image guard.

The served model is the detector with its pre- and post-processing added as ONNX nodes, so Triton
runs it like any network model (onnxruntime or TensorRT), batched, next to the image classifier:

    IMAGE uint8 [B, H, W, 3] RGB -> float /255, NCHW, bilinear resize to 320x320 (half-pixel centres,
      as NudeNet's cv2.INTER_LINEAR; square images, so its letterbox padding adds nothing)
    -> 320n.onnx -> [B, 22, A]: per anchor 4 box rows and 18 class scores
    -> the rows of `NUDE_CLASSES` (taxonomy.py), max over anchors -> NUDE_SCORES float32 [B, 5]

The pipeline folds the largest of the five into the `nudity` category (max with the image
classifier's score) and records all five per attempt in the safety report. Only the ONNX file is
used: install the package without its dependencies (`pip install --no-deps nudenet==3.4.2`; its
opencv pre/post-processing is replaced by the nodes above).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from t2iguard.contract import specs as S
from t2iguard.contract.taxonomy import NUDE_CLASSES

#: 320n.onnx's class order (nudenet/nudenet.py, version 3.4.2)
LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
SIDE = 320
BOX_ROWS = 4
SOURCE = "NudeNet 320n (nudenet 3.4.2, MIT)"


def installed_detector() -> Path:
    """320n.onnx from an installed `nudenet` package, found without importing it (its import needs opencv)."""
    spec = importlib.util.find_spec("nudenet")
    path = Path(spec.submodule_search_locations[0]) / "320n.onnx" if spec and spec.submodule_search_locations else None
    if path is None or not path.exists():
        raise FileNotFoundError("no nudenet package with 320n.onnx: `pip install --no-deps nudenet==3.4.2`, or pass "
                                "the ONNX file's path")
    return path


def wrap(detector: onnx.ModelProto) -> onnx.ModelProto:
    """The detector graph with IMAGE uint8 [B, H, W, 3] in and NUDE_SCORES float32 [B, len(NUDE_CLASSES)] out."""
    g = onnx.GraphProto()
    g.CopyFrom(detector.graph)
    (old_in,), (old_out,) = g.input, g.output
    consts = {
        "nn_255": np.array(255.0, np.float32),
        "nn_side": np.array([SIDE, SIDE], np.int64),
        "nn_start": np.array([0], np.int64), "nn_two": np.array([2], np.int64),
        "nn_exposed": np.array([BOX_ROWS + LABELS.index(c) for c in NUDE_CLASSES], np.int64),
    }
    pre = [
        helper.make_node("Cast", [S.IMAGE], ["nn_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["nn_f"], ["nn_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Div", ["nn_nchw", "nn_255"], ["nn_unit"]),
        helper.make_node("Shape", ["nn_unit"], ["nn_shape"]),
        helper.make_node("Slice", ["nn_shape", "nn_start", "nn_two"], ["nn_bc"]),
        helper.make_node("Concat", ["nn_bc", "nn_side"], ["nn_sizes"], axis=0),
        helper.make_node("Resize", ["nn_unit", "", "", "nn_sizes"], [old_in.name], mode="linear",
                         coordinate_transformation_mode="half_pixel"),
    ]
    post = [
        helper.make_node("Gather", [old_out.name, "nn_exposed"], ["nn_rows"], axis=1),
        helper.make_node("ReduceMax", ["nn_rows"], [S.NUDE_SCORES], axes=[2], keepdims=0),
    ]
    nodes = pre + list(g.node) + post
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    del g.input[:]
    g.input.append(helper.make_tensor_value_info(S.IMAGE, TensorProto.UINT8, ["batch", "height", "width", 3]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(S.NUDE_SCORES, TensorProto.FLOAT, ["batch", len(NUDE_CLASSES)]))
    model = helper.make_model(g, opset_imports=list(detector.opset_import), ir_version=detector.ir_version,
                              producer_name="t2iguard")
    onnx.checker.check_model(model)
    return model


def reference_scores(detector: Path, images: np.ndarray) -> np.ndarray:
    """NUDE_SCORES computed outside the graph: torch bilinear resize, the original 320n.onnx, numpy post."""
    import onnxruntime as ort
    import torch
    from torch.nn import functional as F

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False).numpy()
    session = ort.InferenceSession(str(detector), providers=["CPUExecutionProvider"])
    raw = session.run(None, {session.get_inputs()[0].name: x})[0]
    return raw[:, [BOX_ROWS + LABELS.index(c) for c in NUDE_CLASSES]].max(axis=2)


def export_detector(detector: Path, image_size: int, path: Path) -> float:
    """Write the wrapped graph to `path`; return its max abs difference from `reference_scores` on
    4 seeded random images."""
    import onnxruntime as ort

    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(wrap(onnx.load(str(detector))), str(path))
    images = np.random.default_rng(0).integers(0, 256, (4, image_size, image_size, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run([S.NUDE_SCORES], {S.IMAGE: images})[0]
    return float(np.abs(ours - reference_scores(detector, images)).max())
