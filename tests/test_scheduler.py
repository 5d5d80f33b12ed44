"""The numpy DDIM the orchestrator runs equals diffusers' DDIMScheduler."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from t2iguard.runtime.scheduler import DDIM, DDIMConfig


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 4, 20, 50])
def test_ddim_matches_diffusers(steps, spacing, prediction):
    zero_snr = prediction == "v_prediction"  # the tiny profile's pairing; eps at zero SNR is undefined at t = T
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                        set_alpha_to_one=False, steps_offset=1, timestep_spacing=spacing,
                        prediction_type=prediction, rescale_betas_zero_snr=zero_snr)
    ref.set_timesteps(steps)
    ours = DDIM(DDIMConfig(timestep_spacing=spacing, prediction_type=prediction, zero_terminal_snr=zero_snr))
    np.testing.assert_allclose(ours.alphas_cumprod, ref.alphas_cumprod.numpy(), atol=1e-6)
    np.testing.assert_array_equal(ours.timesteps(steps), ref.timesteps.numpy())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 16, 16)).astype(np.float32)
    x_ref = torch.from_numpy(x.copy())
    for t in ours.timesteps(steps):
        eps = rng.standard_normal(x.shape).astype(np.float32)
        x = ours.step(eps, int(t), x, steps)
        x_ref = ref.step(torch.from_numpy(eps), int(t), x_ref).prev_sample
    assert np.abs(x - x_ref.numpy()).max() < 1e-4


def test_add_noise_matches_diffusers():
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    rng = np.random.default_rng(1)
    x0, noise = rng.standard_normal((2, 1, 4, 4, 4)).astype(np.float32)
    got = DDIM().add_noise(x0, noise, 500)
    want = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), torch.tensor([500])).numpy()
    assert np.abs(got - want).max() < 1e-5


def test_zero_terminal_snr_ends_in_pure_noise():
    """Rescaled, the last timestep keeps no signal (the scaled-linear schedule keeps alpha_bar 0.0047) and
    the first is unchanged; a v prediction still steps there, and eps_per_output says eps cannot move."""
    plain, zero = DDIM(DDIMConfig()), DDIM(DDIMConfig(zero_terminal_snr=True, prediction_type="v_prediction",
                                                      timestep_spacing="trailing"))
    assert plain.alphas_cumprod[-1] > 4e-3 and zero.alphas_cumprod[-1] == 0.0
    assert zero.alphas_cumprod[0] == pytest.approx(plain.alphas_cumprod[0])
    assert np.all(np.diff(zero.alphas_cumprod) < 0)
    x, v = np.random.default_rng(2).standard_normal((2, 1, 4, 4, 4)).astype(np.float32)
    x0, eps = zero.split(v, 999, x)
    np.testing.assert_allclose(x0, -v, atol=1e-6)  # at SNR 0, v = -x0 and the noise is x_t itself
    np.testing.assert_allclose(eps, x, atol=1e-6)
    assert zero.eps_per_output(999) == 0.0 and plain.eps_per_output(999) == 1.0
