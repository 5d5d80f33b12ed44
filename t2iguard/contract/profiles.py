"""Profiles: the sizes a family of weights implies (tensor dims of every spec derive from here).

`tiny`'s sizes are built in. The `sd` family (`sd15`, `sd-turbo`) takes its sizes from a Hugging Face-layout
checkpoint directory (`t2iguard.export.sd.profile_from_weights`), and every profile's schedule comes from its
UNet's weights. The builder records the result in the repository's `profile.json`; every served model and
every tool that runs a built repository reads that file (`load_profile`), never the built-in default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

PROFILE_FILE = "profile.json"
PredictionType = Literal["epsilon", "v_prediction"]


@dataclass(frozen=True)
class Profile:
    """Sizes shared by all models of one weight family.

    Attributes:
        name: profile id (`tiny`, `sd15`, `sd-turbo`).
        family: `tiny` (ShapeWorld-trained, MiniLM text encoder) or `sd` (Stable Diffusion checkpoints).
        seq_len: tokens per prompt fed to the text models (padded/truncated).
        text_dim: hidden size of the diffusion text encoder (cross-attention dim of the UNet).
        image_size: generated image side in pixels (square, RGB).
        vae_factor: spatial downsampling of the VAE (image_size / latent side).
        latent_channels: channels of the VAE latent.
        classifier_size: side of the image fed to image/transform classifiers.
        embed_dim: CLIP-style image embedding size.
        max_batch: largest batch a stateless model is configured for (dynamic batching).
        default_steps, default_guidance: request defaults that suit the weights.
        timestep_spacing: DDIM timestep spacing (`leading`; `trailing`: the first step at t = T, for
            few-step distilled models and zero terminal SNR).
        prediction_type, zero_terminal_snr: what the UNet predicts (`epsilon` or `v_prediction`) and whether
            its noise schedule ends in pure noise (t2iguard/runtime/scheduler.py); both as the weights were trained.
        nude_detector: image_guard also runs NudeNet's detector (`t2iguard build --nudenet`).
    """

    name: str
    family: Literal["tiny", "sd"] = "tiny"
    seq_len: int = 77
    text_dim: int = 384
    image_size: int = 256
    vae_factor: int = 16
    latent_channels: int = 8
    classifier_size: int = 128
    embed_dim: int = 128
    max_batch: int = 16
    default_steps: int = 20
    default_guidance: float = 5.0
    timestep_spacing: Literal["leading", "trailing"] = "leading"
    prediction_type: PredictionType = "epsilon"
    zero_terminal_snr: bool = False
    nude_detector: bool = False

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_factor

    @property
    def unet_max_batch(self) -> int:
        """UNet batch: 3 rows per request (uncond, cond, safety concept) times max_batch."""
        return 3 * self.max_batch

    @property
    def trained_image_side(self) -> bool:
        """The tiny family trains its own transform classifier, latent guard and edit decoder; real checkpoints
        have none."""
        return self.family == "tiny"

    @property
    def inpaint_channels(self) -> int:
        """Extra UNet input channels for inpainting (source latent + mask); 0 for plain SD UNets."""
        return self.latent_channels + 1 if self.family == "tiny" else 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


#: the built-in profiles' sizes. The schedule a repository samples with is the one its UNet was trained with:
#: the builder reads it from the weights (`t2iguard.export`) and records it in the repository's profile.json
PROFILES: dict[str, Profile] = {"tiny": Profile(name="tiny")}
#: request defaults per Stable Diffusion checkpoint kind
SD_KINDS: dict[str, dict] = {
    "sd15": {"default_steps": 30, "default_guidance": 7.5, "timestep_spacing": "leading"},
    "sd-turbo": {"default_steps": 1, "default_guidance": 0.0, "timestep_spacing": "trailing"},
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join([*PROFILES, *SD_KINDS])
        hint = " (sd profiles need --weights DIR)" if name in SD_KINDS else ""
        raise ValueError(f"unknown profile {name!r}{hint}; known: {known}") from None


def load_profile(repository: Path, name: str | None = None) -> Profile:
    """The profile a built repository recorded in profile.json: the one truth a server reads (its sizes,
    schedule and detectors are what the builder exported). `name`, when given, must match it."""
    path = Path(repository) / PROFILE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: {repository} is not a built repository (`t2iguard build`)")
    data = json.loads(path.read_text())
    if name is not None and data["name"] != name:
        raise ValueError(f"{path} records profile {data['name']!r}, not {name!r}")
    return Profile(**data)
