"""DDIM sampling in numpy (eta = 0), so the serve-time orchestrator needs no torch.

Numerically equivalent to diffusers' `DDIMScheduler` with the same configuration
(`tests/test_scheduler.py` checks both against each other): scaled-linear betas,
`timestep_spacing="leading"` (or `"trailing"`), `set_alpha_to_one=False`, epsilon prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DDIMConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    steps_offset: int = 1
    timestep_spacing: str = "leading"  # "trailing" for few-step distilled models (SD-Turbo)


class DDIM:
    """DDIM (Song et al. 2021), deterministic. Latents float32 [B, C, H, W]."""

    def __init__(self, config: DDIMConfig = DDIMConfig()):
        self.config = config
        betas = np.linspace(config.beta_start**0.5, config.beta_end**0.5, config.num_train_timesteps,
                            dtype=np.float64) ** 2
        self.alphas_cumprod = np.cumprod(1.0 - betas)
        self.final_alpha_cumprod = self.alphas_cumprod[0]  # set_alpha_to_one=False

    def timesteps(self, num_inference_steps: int) -> np.ndarray:
        """Descending int64 timesteps: `leading` spacing plus `steps_offset` (diffusers' default), or
        `trailing` (ends at the last training timestep: one step starts from pure noise)."""
        n = self.config.num_train_timesteps
        if self.config.timestep_spacing == "trailing":
            return np.round(np.arange(n, 0, -n / num_inference_steps)).astype(np.int64) - 1
        ratio = n // num_inference_steps
        ts = (np.arange(0, num_inference_steps) * ratio).round()[::-1].astype(np.int64)
        return ts + self.config.steps_offset

    def _alpha_prev(self, t: int, num_inference_steps: int) -> float:
        prev = t - self.config.num_train_timesteps // num_inference_steps
        return self.alphas_cumprod[prev] if prev >= 0 else self.final_alpha_cumprod

    def step(self, eps: np.ndarray, t: int, latents: np.ndarray, num_inference_steps: int) -> np.ndarray:
        """One DDIM update x_t -> x_{t-1} from the predicted noise `eps` (same shape as latents)."""
        a_t = self.alphas_cumprod[t]
        a_prev = self._alpha_prev(t, num_inference_steps)
        x0 = (latents - np.sqrt(1.0 - a_t) * eps) / np.sqrt(a_t)
        return (np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps).astype(np.float32)

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, t: int) -> np.ndarray:
        """q(x_t | x_0): used by inpainting to re-noise the kept region to the current step."""
        a = self.alphas_cumprod[t]
        return (np.sqrt(a) * x0 + np.sqrt(1.0 - a) * noise).astype(np.float32)
