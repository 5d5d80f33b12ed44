"""The numpy DDIM the orchestrator runs equals diffusers' DDIMScheduler."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from t2iguard.scheduler import DDIM, DDIMConfig


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 4, 20, 50])
def test_ddim_matches_diffusers(steps, spacing):
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                        set_alpha_to_one=False, steps_offset=1, timestep_spacing=spacing)
    ref.set_timesteps(steps)
    ours = DDIM(DDIMConfig(timestep_spacing=spacing))
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
