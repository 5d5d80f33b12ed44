"""Each exported ONNX graph in the built repository against its torch module, at several batch
sizes (dynamic batch), within PARITY_TOLERANCE (max abs difference, float32 on CPU)."""

import logging

import numpy as np
import onnx
import pytest

from t2iguard.contract.specs import build_specs
from t2iguard.export.onnx_export import PARITY_TOLERANCE, parity
from t2iguard.export.trt import FP16_TOLERANCE, fp16_onnx, fp16_parity


@pytest.fixture(scope="module")
def modules(profile):
    logging.getLogger("torch").setLevel(logging.ERROR)
    from t2iguard.export.tiny import build_tiny

    return build_tiny(profile)


NETWORKS = ["text_encoder", "prompt_classifier", "rewrite_tagger", "unet", "vae_encoder", "vae_decoder",
            "vae_edit_decoder", "image_classifier", "transform_classifier", "latent_guard"]


def test_every_network_is_covered(profile):
    assert sorted(NETWORKS) == sorted(n for n, s in build_specs(profile).items() if s.kind == "network")


@pytest.mark.parametrize("name", NETWORKS)
def test_onnx_matches_torch(name, modules, repository, profile):
    spec = build_specs(profile)[name]
    path = repository / name / "1" / "model.onnx"
    graph = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in graph.input] == [t.name for t in spec.inputs]
    assert [o.name for o in graph.output] == [t.name for t in spec.outputs]
    for i in graph.input:  # batch axis symbolic, the rest fixed as the spec says
        dims = i.type.tensor_type.shape.dim
        declared = spec.input(i.name)  # the batch axis is symbolic, and so are the axes declared variable
        assert dims[0].dim_param
        assert all(bool(d.dim_param) if a in declared.variable else d.dim_value == declared.dims[a]
                   for a, d in enumerate(dims[1:]))
    diff = parity(modules[name].module, spec, path, batches=(1, 3, 5))
    assert diff < PARITY_TOLERANCE, f"{name}: max abs diff {diff:.2e}"


@pytest.mark.parametrize("name", NETWORKS)
def test_fp16_graph_for_tensorrt_matches_fp32(name, repository, profile, tmp_path):
    """What `build --target trt` feeds TensorRT's strongly typed builder: float16 weights and compute,
    the spec's float32 inputs/outputs unchanged (same Triton config), close to the float32 graph."""
    spec = build_specs(profile)[name]
    src, half = repository / name / "1" / "model.onnx", tmp_path / "model.fp16.onnx"
    fp16_onnx(src, half)
    graph = onnx.load(str(half)).graph
    size = {t: sum(int(np.prod(i.dims)) for i in graph.initializer if i.data_type == t)
            for t in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    assert size[onnx.TensorProto.FLOAT16] > 0.99 * sum(size.values())  # a few constants feed Casts
    assert {i.name: i.type.tensor_type.elem_type for i in graph.input} == {
        i.name: i.type.tensor_type.elem_type for i in onnx.load(str(src), load_external_data=False).graph.input}
    diff = fp16_parity(src, half, spec)
    assert 0 < diff < FP16_TOLERANCE, f"{name}: fp16 vs fp32 {diff:.2e}"
