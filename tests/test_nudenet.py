"""NudeNet's detector (the real 320n.onnx from the `nudenet` package) wrapped as the `nude_detector`
network: resize and per-class max over anchors as graph nodes, checked against the original graph run
outside (torch resize, numpy max). Serving it inside image_guard is tested in test_sd_profile.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from t2iguard.cli.app import app
from t2iguard.contract import specs as S
from t2iguard.contract.errors import BAD_INPUT
from t2iguard.contract.taxonomy import NUDE_CLASSES
from t2iguard.export.nudenet import export_detector, installed_detector, reference_scores
from t2iguard.training.data import shapeworld as W

TOLERANCE = 1e-5  # fp32 graph vs the same graph fed from outside: only summation order differs


@pytest.mark.parametrize("size", [256, 512])  # tiny's images are upsampled to 320, sd15's downsampled
def test_wrapped_detector_matches_the_original_graph(size, tmp_path):
    diff = export_detector(installed_detector(), size, tmp_path / "nude.onnx")
    assert diff < TOLERANCE
    model = onnx.load(str(tmp_path / "nude.onnx"))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, inp.type.tensor_type.elem_type) == (S.IMAGE, onnx.TensorProto.UINT8)
    assert out.name == S.NUDE_SCORES
    assert [d.dim_value for d in out.type.tensor_type.shape.dim][1:] == [len(NUDE_CLASSES)]


def test_detector_scores_a_batch_per_image(tmp_path):
    """Batched rows are independent, and flat ShapeWorld drawings score far below NudeNet's 0.2 floor."""
    path = tmp_path / "nude.onnx"
    export_detector(installed_detector(), 256, path)
    rng = np.random.default_rng(3)
    images = np.stack([W.render(W.random_scene(rng, "figure")) for _ in range(3)])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = session.run([S.NUDE_SCORES], {S.IMAGE: images})[0]
    single = np.concatenate([session.run([S.NUDE_SCORES], {S.IMAGE: im[None]})[0] for im in images])
    assert batch.shape == (3, len(NUDE_CLASSES))
    np.testing.assert_allclose(batch, single, atol=TOLERANCE)
    np.testing.assert_allclose(batch, reference_scores(installed_detector(), images), atol=TOLERANCE)
    assert batch.max() < 0.2


def test_build_names_a_missing_detector_file(tmp_path):
    res = CliRunner().invoke(app, ["build", "--out", str(tmp_path / "repo"), "--nudenet", str(tmp_path / "no.onnx")])
    assert res.exit_code == BAD_INPUT.exit_code
    assert "--nudenet: no file" in res.output


def test_tiny_built_with_the_detector_serves_it(repository, tmp_path):
    """`build --profile tiny --nudenet installed` records nude_detector in profile.json, and the server reads
    that file (not a built-in tiny profile): the detector loads, image_guard returns NUDE_SCORES and the
    orchestrator reports them. The other networks come from tiny's export cache (`repository` built it)."""
    from t2iguard.client import SafeT2IClient
    from t2iguard.contract.profiles import load_profile
    from t2iguard.export.build import build_repository
    from t2iguard.triton.server import TritonServer, free_ports

    built = build_repository("tiny", "cpu", tmp_path / "repo", nudenet=installed_detector())
    assert built.exported in ([], [S.NUDE_DETECTOR])  # adding the detector re-exports nothing else
    assert load_profile(built.path, "tiny").nude_detector
    with TritonServer(built.path, free_ports()) as server, SafeT2IClient(server.grpc_url) as client:
        res = client.generate("a red circle on a blue background", seed=1, steps=2)
        first = res.report.attempts[0]
        assert set(first.detector_scores) == set(NUDE_CLASSES)
        assert first.image_scores["nudity"] >= max(first.detector_scores.values())
