"""Every network input declares the values it takes (`Tensor.sample`), and the sample inputs that export,
parity and the fp16 check use are drawn from those declarations (no guessing from names)."""

from __future__ import annotations

import numpy as np
import pytest

from t2iguard.contract import specs as S
from t2iguard.contract.profiles import Profile
from t2iguard.export.onnx_export import sample_inputs

#: an sd-family profile with NudeNet's detector: the other shapes, and a uint8 network input
SD = Profile(name="sd15", family="sd", seq_len=77, text_dim=768, image_size=512, vae_factor=8, latent_channels=4,
             classifier_size=224, embed_dim=768, max_batch=8, nude_detector=True)
PROFILES = {"tiny": Profile(name="tiny"), "sd15": SD}


def _networks(profile: Profile) -> list[S.ModelSpec]:
    return [s for s in S.build_specs(profile).values() if s.kind == "network"]


@pytest.mark.parametrize("name", PROFILES)
def test_every_network_input_declares_its_values(name):
    undeclared = [(s.name, t.name) for s in _networks(PROFILES[name]) for t in s.inputs if t.sample is None]
    assert not undeclared
    for s in _networks(PROFILES[name]):
        for t in s.inputs:
            assert t.sample.kind in ("uniform", "integers", "normal", "mask")
            assert t.sample.lo < t.sample.hi or t.sample.kind == "mask", (s.name, t.name)


def _check_drawn(t: S.Tensor, x: np.ndarray, batch: int) -> None:
    assert x.shape == (batch, *t.dims) and x.dtype == t.numpy_dtype, t.name
    s = t.sample
    if s.kind == "mask":
        lengths = x.sum(axis=-1)
        assert set(np.unique(x)) <= {0, 1} and (lengths >= s.lo).all() and (lengths <= t.dims[-1]).all()
        assert (x == (np.arange(t.dims[-1]) < lengths[..., None])).all(), f"{t.name}: ones, then padding"
    elif s.kind in ("uniform", "integers"):
        assert x.min() >= s.lo and x.max() < s.hi, (t.name, x.min(), x.max())
        if s.kind == "integers":
            assert (x == np.round(x)).all(), t.name
    else:
        assert abs(float(x.mean())) < 0.2 and 0.8 < float(x.std()) < 1.2, t.name


@pytest.mark.parametrize("name", PROFILES)
def test_sample_inputs_honour_the_declared_values(name):
    for spec in _networks(PROFILES[name]):
        batch = min(3, spec.max_batch_size)
        inputs = sample_inputs(spec, batch=batch, seed=1)
        assert list(inputs) == [t.name for t in spec.inputs]
        for t in spec.inputs:
            _check_drawn(t, inputs[t.name], batch)


def test_sample_inputs_read_the_declaration_not_the_name():
    """Names that the old guesses keyed on (`*PIXELS`, `TIMESTEP`, `*MASK`) with other declared values."""
    spec = S.ModelSpec("odd", "network", max_batch_size=4, outputs=(), inputs=(
        S.Tensor("PIXELS", "FP32", (2, 5), sample=S.Sample("uniform", -3.0, -2.0)),
        S.Tensor("TIMESTEP", "INT32", (1,), sample=S.Sample("integers", 40, 42)),
        S.Tensor("ATTENTION_MASK", "FP32", (6,), sample=S.Sample("integers", 7, 8)),
        S.Tensor("IDS", "INT64", (9,), sample=S.Sample("mask", 9)),
        S.Tensor("X", "UINT8", (4,), sample=S.BYTE_VALUES),
    ))
    x = sample_inputs(spec, batch=4)
    assert x["PIXELS"].dtype == np.float32 and (-3 <= x["PIXELS"]).all() and (x["PIXELS"] < -2).all()
    assert x["TIMESTEP"].dtype == np.int32 and set(np.unique(x["TIMESTEP"])) <= {40, 41}
    assert (x["ATTENTION_MASK"] == 7).all()
    assert (x["IDS"] == 1).all()  # at least 9 real tokens of 9
    assert x["X"].dtype == np.uint8
    for t in spec.inputs:
        _check_drawn(t, x[t.name], 4)


def test_an_undeclared_input_is_refused():
    spec = S.ModelSpec("odd", "network", inputs=(S.Tensor("X", "FP32", (3,)),), outputs=(), max_batch_size=2)
    with pytest.raises(ValueError, match="X declares no sample values"):
        sample_inputs(spec, batch=1)


def test_token_ids_fit_the_tiny_vocabulary():
    from tokenizers import Tokenizer

    from t2iguard.runtime.lexicon import minilm_dir

    vocab = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json")).get_vocab_size()
    assert vocab == 30522 and S.TOKEN_IDS.hi <= vocab
