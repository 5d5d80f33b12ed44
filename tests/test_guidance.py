import numpy as np
import pytest

from t2iguard.guidance import SLD_PRESETS, SLDGuidance, cfg


def _eps(seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 4, 8, 8)).astype(np.float32) for _ in range(3)]


def test_cfg():
    u, t, _ = _eps(0)
    np.testing.assert_allclose(cfg(u, t, 1.0), t, atol=1e-6)
    np.testing.assert_allclose(cfg(u, t, 0.0), u, atol=1e-6)


def test_sld_is_cfg_during_warmup():
    u, t, s = _eps(1)
    sld = SLDGuidance("strong", num_steps=50)
    assert sld.warmup == SLD_PRESETS["strong"].warmup_steps
    np.testing.assert_allclose(sld(0, u, t, s, 7.5), cfg(u, t, 7.5), atol=1e-5)


def test_sld_moves_away_from_the_concept():
    u, t, s = _eps(2)
    sld = SLDGuidance("max", num_steps=20)  # no warm-up
    guided = sld(0, u, t, s, 7.5)
    plain = cfg(u, t, 7.5)
    # the correction is (eps_s - eps_u) * scale with scale in [0, 1], subtracted where the concept
    # estimate is not already far below the text estimate
    direction = (s - u).ravel()
    assert np.dot((guided - plain).ravel(), direction) < 0
    assert not np.allclose(guided, plain)


def test_sld_with_identical_concept_and_prompt_scales_towards_uncond():
    u, t, _ = _eps(3)
    sld = SLDGuidance("max", num_steps=10)
    # eps_s == eps_t: diff = 0 < threshold (1.0) -> scale = min(0, 1) = 0 -> no correction
    np.testing.assert_allclose(sld(0, u, t, t.copy(), 5.0), cfg(u, t, 5.0), atol=1e-5)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown SLD preset"):
        SLDGuidance("extreme", 10)
