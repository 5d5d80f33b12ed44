"""DDIM sampling in numpy (eta = 0), so the serve-time orchestrator needs no torch.

Numerically equivalent to diffusers' `DDIMScheduler` with the same configuration
(`tests/test_scheduler.py` checks both against each other): scaled-linear betas, optionally rescaled
to zero terminal SNR (`rescale_betas_zero_snr`), `timestep_spacing="leading"` (or `"trailing"`),
`set_alpha_to_one=False`, epsilon or v prediction.

With zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
Flawed") the last training timestep is pure noise, so the model learns the whole layout from the
prompt instead of reading it from the residual signal training leaves at t = T; the noise can then
no longer be recovered from an epsilon prediction there (x0 = (x - sqrt(1 - a) eps) / sqrt(a) at
a = 0), hence v prediction (Salimans & Ho 2022) and trailing timesteps that start at t = T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from t2iguard.contract.profiles import PredictionType, Profile


@dataclass(frozen=True)
class DDIMConfig:
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    steps_offset: int = 1
    timestep_spacing: Literal["leading", "trailing"] = "leading"  # "trailing": starts at t = T
    prediction_type: PredictionType = "epsilon"
    zero_terminal_snr: bool = False

    def __post_init__(self):
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type {self.prediction_type!r}: supported epsilon, v_prediction")
        if self.timestep_spacing not in ("leading", "trailing"):
            raise ValueError(f"timestep_spacing {self.timestep_spacing!r}: supported leading, trailing")
        if self.zero_terminal_snr and self.prediction_type == "epsilon":  # x0 from eps divides by sqrt(0) at t = T
            raise ValueError("zero_terminal_snr needs prediction_type v_prediction (an eps prediction carries no "
                             "image at t = T)")


def schedule_of(profile: Profile) -> DDIMConfig:
    """The DDIM configuration a profile's UNet was trained with (and is sampled with)."""
    return DDIMConfig(timestep_spacing=profile.timestep_spacing, prediction_type=profile.prediction_type,
                      zero_terminal_snr=profile.zero_terminal_snr)


def alphas_cumprod(config: DDIMConfig) -> np.ndarray:
    """alpha_bar_t float64 [T] of the scaled-linear schedule; with `zero_terminal_snr`, sqrt(alpha_bar)
    shifted to end at 0 and rescaled to keep its first value (Lin et al. 2023, Algorithm 1)."""
    betas = np.linspace(config.beta_start**0.5, config.beta_end**0.5, config.num_train_timesteps,
                        dtype=np.float64) ** 2
    bar = np.cumprod(1.0 - betas)
    if config.zero_terminal_snr:
        root = np.sqrt(bar)
        root = (root - root[-1]) * root[0] / (root[0] - root[-1])
        bar = root**2
    return bar


class DDIM:
    """DDIM (Song et al. 2021), deterministic. Latents and model outputs float32 [B, C, H, W]."""

    def __init__(self, config: DDIMConfig = DDIMConfig()):
        self.config = config
        self.alphas_cumprod = alphas_cumprod(config)
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

    def split(self, model_output: np.ndarray, t: int, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted x0, predicted eps) from the model's output at timestep t (its prediction type)."""
        a = self.alphas_cumprod[t]
        if self.config.prediction_type == "v_prediction":
            return (np.sqrt(a) * latents - np.sqrt(1.0 - a) * model_output,
                    np.sqrt(a) * model_output + np.sqrt(1.0 - a) * latents)
        return (latents - np.sqrt(1.0 - a) * model_output) / np.sqrt(a), model_output

    def eps_per_output(self, t: int) -> float:
        """d eps / d model output at fixed x_t: 1 for eps prediction, sqrt(alpha_bar_t) for v (0 at zero SNR,
        where no output changes the predicted noise). Guidance stated on eps differences reads them through it."""
        return 1.0 if self.config.prediction_type == "epsilon" else float(np.sqrt(self.alphas_cumprod[t]))

    def step(self, model_output: np.ndarray, t: int, latents: np.ndarray, num_inference_steps: int) -> np.ndarray:
        """One DDIM update x_t -> x_{t-1} from the model's output (same shape as latents)."""
        x0, eps = self.split(model_output, t, latents)
        a_prev = self._alpha_prev(t, num_inference_steps)
        return (np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps).astype(np.float32)

    def add_noise(self, x0: np.ndarray, noise: np.ndarray, t: int) -> np.ndarray:
        """q(x_t | x_0): used by inpainting to re-noise the kept region to the current step."""
        a = self.alphas_cumprod[t]
        return (np.sqrt(a) * x0 + np.sqrt(1.0 - a) * noise).astype(np.float32)
