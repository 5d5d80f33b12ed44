"""Each exported ONNX graph in the built repository against its torch module, at several batch
sizes (dynamic batch), within PARITY_TOLERANCE (max abs difference, float32 on CPU)."""

import logging

import onnx
import pytest

from t2iguard.export.onnx_export import PARITY_TOLERANCE, parity
from t2iguard.specs import build_specs


@pytest.fixture(scope="module")
def modules(profile):
    logging.getLogger("torch").setLevel(logging.ERROR)
    from t2iguard.export.tiny import build_tiny

    return build_tiny(profile)


NETWORKS = ["text_encoder", "prompt_classifier", "rewrite_tagger", "unet", "vae_encoder", "vae_decoder",
            "image_classifier", "transform_classifier", "latent_guard"]


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
        assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(spec.input(i.name).dims)
    diff = parity(modules[name].module, spec, path, batches=(1, 3, 5))
    assert diff < PARITY_TOLERANCE, f"{name}: max abs diff {diff:.2e}"
