"""Guidance math on the UNet's predictions (numpy, float32 [B, C, H, W]; eps or v, see scheduler.py).

Classifier-free guidance; classifier guidance (Dhariwal & Nichol 2021, as the DALL-E 3 system card
describes for steering away from a flagged class): with g = d/dx_t log p(not flagged | x_t) from a
noise-aware latent classifier,

    eps = eps_cfg - s_c * sqrt(1 - alpha_bar_t) * g

and Safe Latent Diffusion's concept guidance (Schramm et al. 2023,
"Safe Latent Diffusion: Mitigating Inappropriate Degeneration in Diffusion Models"), which
steers each denoising step away from a safety concept's noise estimate:

    g     = eps_text - eps_uncond
    scale = min(|eps_text - eps_safety| * s_S, 1), zeroed where eps_text - eps_safety >= lambda
    g_s   = (eps_safety - eps_uncond) * scale + s_m * v
    v     = beta_m * v + (1 - beta_m) * g_s
    eps   = eps_uncond + s_g * (g - g_s)          (g_s only after the warm-up steps)

The presets are the paper's hyperparameters; warm-up is stated for 50 steps and scaled to the
actual number of steps. Both are stated on noise predictions; for a v-predicting UNet they read the
eps differences, sqrt(alpha_bar_t) times the v differences (at fixed x_t eps = sqrt(a) v + sqrt(1 - a) x_t,
so the guided v means the guided eps), `eps_per_output` below. CFG is the same in either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from t2iguard.contract.taxonomy import GUIDANCE_PRESETS


@dataclass(frozen=True)
class SLDPreset:
    warmup_steps: int  # of 50
    guidance_scale: float  # s_S
    threshold: float  # lambda
    momentum_scale: float  # s_m
    momentum_beta: float  # beta_m


SLD_PRESETS: dict[str, SLDPreset] = {
    "weak": SLDPreset(15, 20.0, 0.0, 0.0, 0.0),
    "medium": SLDPreset(10, 1000.0, 0.01, 0.3, 0.4),
    "strong": SLDPreset(7, 2000.0, 0.025, 0.5, 0.7),
    "max": SLDPreset(0, 5000.0, 1.0, 0.5, 0.7),
}


#: classifier-guidance scales s_c, escalating like SLD's presets. strong/max chosen on ShapeWorld seeds
#: 9000+ (40 + 40 requests, 2 regenerations; never the reported 7000+): 50/100 left 0% of t2i and 7.5%
#: of edits flagged with colour retention 0.80 / 1.00, against 2.5%, 10% and 0.50 / 0.91 for the first
#: guesses 100/200 (and for 100/100); weak/medium scaled alike
CLASSIFIER_SCALES: dict[str, float] = {"weak": 10.0, "medium": 25.0, "strong": 50.0, "max": 100.0}
PRESETS: tuple[str, ...] = GUIDANCE_PRESETS
assert tuple(SLD_PRESETS) == tuple(CLASSIFIER_SCALES) == PRESETS, "one strength per policy preset name"


def fresh_seed(seed: int, attempt: int) -> int:
    """The noise seed of a regeneration that draws fresh noise: a function of the request's `seed` and the
    `attempt` number (2 = the first regeneration, as the report counts) alone, in [0, 2**63)."""
    return int(np.random.SeedSequence([seed, attempt]).generate_state(1, np.uint64)[0]) >> 1


def regeneration_step(method: str, preset: str, ceiling: str, k: int, seed: int,
                      fresh_noise: bool = False) -> tuple[str | None, int]:
    """(preset, seed) of regeneration `k` (0-based: attempt k + 2) of a request seeded `seed` (the request's
    own seed, never an earlier attempt's). Guided methods escalate from `preset` to `ceiling` on the
    request's seed (on fresh noise with `fresh_noise`); a regeneration that would repeat the one before it
    (same seed, same preset: the same image) draws fresh noise instead, `fresh_seed(seed, k + 2)`. `reseed` is
    the unguided baseline: no preset, fresh noise every time."""
    start, top = PRESETS.index(preset), PRESETS.index(ceiling)
    if top < start:
        raise ValueError(f"regeneration ceiling {ceiling!r} is below the starting preset {preset!r}")
    if method != "reseed" and start + k <= top:
        return PRESETS[start + k], fresh_seed(seed, k + 2) if fresh_noise else seed
    return (None if method == "reseed" else PRESETS[top]), fresh_seed(seed, k + 2)


def classifier_guided(pred: np.ndarray, gradient: np.ndarray, alpha_bar: float, preset: str,
                      eps_per_output: float = 1.0) -> np.ndarray:
    """Shift a (CFG) prediction along the latent guard's gradient of log p(not flagged): the eps shift
    divided by `eps_per_output` (1 for eps; sqrt(alpha_bar) for v, which must then be > 0)."""
    if preset not in CLASSIFIER_SCALES:
        raise ValueError(f"unknown classifier-guidance preset {preset!r}; known: {', '.join(CLASSIFIER_SCALES)}")
    if eps_per_output <= 0.0:
        raise ValueError("classifier guidance cannot act at zero SNR (the prediction does not change eps there)")
    shift = CLASSIFIER_SCALES[preset] * np.sqrt(1.0 - alpha_bar) * gradient / eps_per_output
    return (pred - shift).astype(np.float32)


def sld_warmup(preset: str, num_steps: int, of_50: int | None = None) -> int:
    """How many of `num_steps` steps SLD at `preset` runs before its guidance acts: `of_50` steps of 50 (None:
    the preset's own, the paper's), scaled to `num_steps`."""
    if preset not in SLD_PRESETS:
        raise ValueError(f"unknown SLD preset {preset!r}; known: {', '.join(SLD_PRESETS)}")
    return round((SLD_PRESETS[preset].warmup_steps if of_50 is None else of_50) * num_steps / 50)


def cfg(eps_uncond: np.ndarray, eps_text: np.ndarray, scale: float) -> np.ndarray:
    """Classifier-free guidance."""
    return eps_uncond + scale * (eps_text - eps_uncond)


class SLDGuidance:
    """Stateful (momentum) safety guidance for one generation of `num_steps` steps; `warmup_of_50` replaces the
    preset's warm-up (`sld_warmup`)."""

    def __init__(self, preset: str, num_steps: int, warmup_of_50: int | None = None):
        self.warmup = sld_warmup(preset, num_steps, warmup_of_50)
        self.p = SLD_PRESETS[preset]
        self.momentum: np.ndarray | None = None

    def __call__(self, step: int, eps_uncond: np.ndarray, eps_text: np.ndarray, eps_safety: np.ndarray,
                 scale: float, eps_per_output: float = 1.0) -> np.ndarray:
        """The guided prediction from the unconditional, prompt and safety-concept rows (eps or v; for v
        pass `eps_per_output` = sqrt(alpha_bar_t), so threshold and scale read eps differences)."""
        p = self.p
        g = eps_text - eps_uncond
        diff = (eps_text - eps_safety) * eps_per_output
        concept_scale = np.where(diff >= p.threshold, 0.0, np.minimum(np.abs(diff) * p.guidance_scale, 1.0))
        g_safety = (eps_safety - eps_uncond) * concept_scale
        if self.momentum is None:
            self.momentum = np.zeros_like(g_safety)
        g_safety = g_safety + p.momentum_scale * self.momentum
        self.momentum = p.momentum_beta * self.momentum + (1.0 - p.momentum_beta) * g_safety
        if step >= self.warmup:
            g = g - g_safety
        return (eps_uncond + scale * g).astype(np.float32)
