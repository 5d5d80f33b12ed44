import numpy as np
import pytest

from t2iguard.runtime.guidance import SLD_PRESETS, SLDGuidance, cfg, regeneration_step, sld_warmup
from t2iguard.runtime.pipeline import Guidance, strength_steps


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


def test_a_warmup_of_50_replaces_the_presets():
    """A warm-up stated of 50 steps (the policy's `regeneration.sld_warmup`) scales like the paper's and holds
    the guidance off for exactly that many steps."""
    u, t, s = _eps(4)
    assert [sld_warmup("strong", 50, w) for w in (None, 0, 15, 50)] == [7, 0, 15, 50]
    assert sld_warmup("strong", 20, 15) == 6 and sld_warmup("strong", 20) == 3
    sld = SLDGuidance("strong", num_steps=20, warmup_of_50=15)
    assert sld.warmup == 6
    for step in range(6):
        np.testing.assert_allclose(sld(step, u, t, s, 7.5), cfg(u, t, 7.5), atol=1e-5)
    assert not np.allclose(sld(6, u, t, s, 7.5), cfg(u, t, 7.5))


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


def test_classifier_guidance_descends_the_flagged_class():
    """The served latent guard's gradient (written-out backprop) equals autograd's, and a step along
    classifier guidance lowers the weighted class's logit."""
    import torch

    from t2iguard.export.modules import LatentGuard, LatentGuardGrad
    from t2iguard.runtime.guidance import classifier_guided

    torch.manual_seed(0)
    guard = LatentGuard(9, 14).eval()
    x = torch.randn(3, 4, 16, 16, requires_grad=True)
    t, cond = torch.tensor([[50.0], [500.0], [950.0]]), torch.randn(3, 5, 16, 16)
    weights = torch.zeros(3, 14)
    weights[:, 2] = 1.0
    objective = (weights * torch.nn.functional.logsigmoid(-guard(x, t, cond))).sum()
    objective.backward()
    with torch.no_grad():
        grad, scores = LatentGuardGrad(guard, 4)(x.detach(), t, cond, weights)
    assert torch.allclose(grad, x.grad, atol=1e-7, rtol=1e-4)
    assert torch.allclose(scores, torch.sigmoid(guard(x, t, cond)).detach())
    # eps' = eps - s sqrt(1 - a) g moves x0 = (x - sqrt(1 - a) eps) / sqrt(a) along +g: the class gets less likely
    eps = np.zeros((3, 4, 16, 16), np.float32)
    shifted = classifier_guided(eps, grad.numpy(), alpha_bar=0.5, preset="weak")
    step = torch.from_numpy(-(shifted - eps))
    step = 0.05 * step / step.flatten(1).norm(dim=1)[:, None, None, None]
    with torch.no_grad():
        assert (guard(x + step, t, cond)[:, 2] < guard(x, t, cond)[:, 2]).all()
    with pytest.raises(ValueError, match="unknown classifier-guidance preset"):
        classifier_guided(eps, grad.numpy(), 0.5, "extreme")


@pytest.mark.parametrize("preset", ["medium", "max"])
def test_guidance_on_v_means_guidance_on_eps(preset):
    """For a v-predicting UNet, SLD (its threshold and scale read eps differences) and classifier guidance
    on v give the v that means the eps-space guidance's eps: eps = sqrt(a) v + sqrt(1 - a) x_t."""
    from t2iguard.runtime.guidance import classifier_guided

    a = 0.3
    x = np.random.default_rng(9).standard_normal((1, 4, 8, 8)).astype(np.float32)
    vs = _eps(4)
    to_eps = [np.sqrt(a) * v + np.sqrt(1 - a) * x for v in vs]
    on_eps = SLDGuidance(preset, num_steps=50)(20, *to_eps, 5.0)
    on_v = SLDGuidance(preset, num_steps=50)(20, *vs, 5.0, eps_per_output=np.sqrt(a))
    np.testing.assert_allclose(np.sqrt(a) * on_v + np.sqrt(1 - a) * x, on_eps, atol=1e-4)
    assert not np.allclose(on_eps, cfg(*to_eps[:2], 5.0), atol=1e-3)  # the guidance acted
    grad = _eps(5)[0]
    on_eps = classifier_guided(to_eps[1], grad, a, "strong")
    on_v = classifier_guided(vs[1], grad, a, "strong", eps_per_output=np.sqrt(a))
    np.testing.assert_allclose(np.sqrt(a) * on_v + np.sqrt(1 - a) * x, on_eps, atol=1e-4)
    with pytest.raises(ValueError, match="zero SNR"):
        classifier_guided(vs[1], grad, 0.0, "strong", eps_per_output=0.0)


def _ladder(method, preset, ceiling, n, seed=7):
    return [regeneration_step(method, preset, ceiling, k, seed) for k in range(n)]


def test_regeneration_escalates_then_reseeds():
    ladder = _ladder("sld", "strong", "max", 4)
    assert [p for p, _ in ladder] == ["strong", "max", "max", "max"]
    seeds = [s for _, s in ladder]
    # escalation keeps the request's seed (the same composition, steered); a repeat of `max` on that seed
    # would draw the same image again, so those attempts draw fresh noise, each its own
    assert seeds[:2] == [7, 7] and len({7, *seeds[2:]}) == 3
    assert all(0 <= s < 2**63 for s in seeds)
    assert _ladder("sld", "strong", "max", 4) == ladder  # reproducible
    assert regeneration_step("classifier", "max", "max", 0, seed=7) == ("max", 7)
    capped = _ladder("sld", "medium", "strong", 3)
    assert [p for p, _ in capped] == ["medium", "strong", "strong"] and [s for _, s in capped][:2] == [7, 7]
    assert capped[2][1] == ladder[2][1]  # attempt 4's fresh noise, whatever the preset
    with pytest.raises(ValueError, match="below the starting preset"):
        regeneration_step("sld", "max", "strong", 0, seed=7)


def test_fresh_noise_escalates_on_fresh_noise_from_the_first_regeneration():
    """Policy `fresh_noise`: the same presets as the ladder, every regeneration on its own fresh noise (the seeds
    the reseed baseline draws), never the request's."""
    fresh = [regeneration_step("classifier", "strong", "max", k, 7, fresh_noise=True) for k in range(4)]
    assert [p for p, _ in fresh] == [p for p, _ in _ladder("classifier", "strong", "max", 4)]
    assert [s for _, s in fresh] == [s for _, s in _ladder("reseed", "strong", "max", 4)]
    assert 7 not in {s for _, s in fresh} and len({s for _, s in fresh}) == 4


def test_reseed_baseline_has_no_preset_and_fresh_noise_every_attempt():
    ladder = _ladder("reseed", "strong", "max", 3)
    assert [p for p, _ in ladder] == [None] * 3
    assert len({7, *(s for _, s in ladder)}) == 4


def test_edit_strength_runs_the_last_steps_as_diffusers_counts_them():
    assert [strength_steps(s, 20) for s in (1.0, 0.95, 0.9, 0.85, 0.8, 0.6)] == [20, 19, 18, 17, 16, 12]
    assert strength_steps(0.9, 15) == 13  # int(13.5), as diffusers' get_timesteps (round would give 14)
    assert strength_steps(0.01, 20) == 1  # a regeneration always draws


def test_guidance_names_its_strength_and_refuses_one_out_of_range():
    assert Guidance("classifier", "medium", ["unintended-edit"], 0.9).label == "classifier-medium@0.9"
    assert Guidance("classifier", "strong", ["nudity"]).label == "classifier-strong"
    assert Guidance("reseed", None, [], 0.8).label == "reseed@0.8"
    assert Guidance("classifier", "medium", ["unintended-edit"], 0.9, True).label == (
        "classifier-medium@0.9+identity-kept")
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="guidance strength must be in"):
            Guidance("reseed", None, [], bad)


def test_fresh_seeds_are_a_function_of_the_request_seed_and_the_attempt():
    from t2iguard.runtime.guidance import fresh_seed

    for method, preset, ceiling in (("sld", "strong", "max"), ("classifier", "strong", "strong"),
                                    ("reseed", "strong", "max")):
        for k, (_, s) in enumerate(_ladder(method, preset, ceiling, 5, seed=7)):
            assert s == 7 or s == fresh_seed(7, k + 2), (method, k)
    assert fresh_seed(7, 4) == int(np.random.SeedSequence([7, 4]).generate_state(1, np.uint64)[0]) >> 1
    assert len({fresh_seed(7, a) for a in range(2, 10)} | {fresh_seed(8, a) for a in range(2, 10)}) == 16
