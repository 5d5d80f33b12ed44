"""Profiles: the sizes a family of weights implies (tensor dims of every spec derive from here).

`tiny` is built in. The `sd` family (`sd15`, `sd-turbo`) takes its sizes from a Hugging Face-layout
checkpoint directory (`profile_from_weights`); a built repository records its profile in
`profile.json`, which the served python models read (`load_profile`).
"""

from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from t2iguard.scheduler import DDIMConfig, PredictionType

PROFILE_FILE = "profile.json"


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
            its noise schedule ends in pure noise (t2iguard/scheduler.py); both as the weights were trained.
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
    def schedule(self) -> DDIMConfig:
        """The DDIM configuration the UNet was trained with (and is sampled with)."""
        return DDIMConfig(timestep_spacing=self.timestep_spacing, prediction_type=self.prediction_type,
                          zero_terminal_snr=self.zero_terminal_snr)

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


def trained_schedule(unet: Path) -> dict:
    """The schedule a ShapeWorld UNet file records in its metadata (`schedule`, written by `t2iguard train
    shapeworld`), as Profile fields; files without one were trained on the default (eps) schedule."""
    from safetensors import safe_open

    if not unet.exists():
        return {}
    with safe_open(str(unet), "np") as f:  # "np": metadata only, without importing torch in every stub
        recorded = json.loads((f.metadata() or {}).get("schedule", "{}"))
    keys = ("timestep_spacing", "prediction_type", "zero_terminal_snr")
    return {k: recorded[k] for k in keys if k in recorded}


#: tiny: sampled the way its committed UNet was trained (the weights say, as an sd checkpoint's scheduler does)
PROFILES: dict[str, Profile] = {"tiny": Profile(
    name="tiny", **trained_schedule(Path(importlib.import_module("t2iguard.export").__file__).parent / "weights"
                                    / "unet.safetensors"))}
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


def _config(weights: Path, part: str, name: str = "config.json") -> dict:
    path = weights / part / name
    if not path.exists():
        raise ValueError(f"{weights} is not a Hugging Face-layout checkpoint: {part}/{name} is missing")
    return json.loads(path.read_text())


def _schedule_from(weights: Path, kind: dict) -> dict:
    """The kind's schedule defaults overridden by the checkpoint's scheduler/scheduler_config.json, when it
    has one: prediction type (SD 2.x predicts v), zero terminal SNR and spacing. The betas must be the
    scaled-linear 0.00085..0.012 over 1000 steps every Stable Diffusion checkpoint uses (the DDIM here)."""
    path = weights / "scheduler" / "scheduler_config.json"
    if not path.exists():
        return {}
    config, ours = json.loads(path.read_text()), DDIMConfig()
    for key, want in (("beta_schedule", "scaled_linear"), ("beta_start", ours.beta_start),
                      ("beta_end", ours.beta_end), ("num_train_timesteps", ours.num_train_timesteps),
                      ("trained_betas", None)):
        if config.get(key, want) != want:
            raise ValueError(f"{path}: `{key}` is {config[key]!r}; t2iguard's DDIM supports {want!r} only")
    fields = {"prediction_type": config.get("prediction_type", "epsilon"),
              "zero_terminal_snr": bool(config.get("rescale_betas_zero_snr", False)),
              "timestep_spacing": config.get("timestep_spacing", kind["timestep_spacing"])}
    try:
        DDIMConfig(**fields)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return fields


def profile_from_weights(name: str, weights: Path, max_batch: int = 8) -> Profile:
    """An `sd` profile sized from the checkpoint's own configs (unet/, vae/, text_encoder/, tokenizer/,
    safety_checker/, and scheduler/ when present)."""
    if name not in SD_KINDS:
        raise ValueError(f"unknown sd profile {name!r}; known: {', '.join(SD_KINDS)}")
    unet, vae, text = _config(weights, "unet"), _config(weights, "vae"), _config(weights, "text_encoder")
    tokenizer = _config(weights, "tokenizer", "tokenizer_config.json")
    checker = _config(weights, "safety_checker")
    factor = 2 ** (len(vae["block_out_channels"]) - 1)
    if unet["cross_attention_dim"] != text["hidden_size"]:
        raise ValueError(f"unet cross_attention_dim {unet['cross_attention_dim']} != text encoder hidden_size "
                         f"{text['hidden_size']}")
    return Profile(
        name=name, family="sd", seq_len=int(tokenizer.get("model_max_length", 77)), text_dim=text["hidden_size"],
        image_size=unet["sample_size"] * factor, vae_factor=factor, latent_channels=vae["latent_channels"],
        classifier_size=checker["vision_config"]["image_size"], embed_dim=checker["projection_dim"],
        max_batch=max_batch, **{**SD_KINDS[name], **_schedule_from(weights, SD_KINDS[name])})


def load_profile(name: str, repository: Path | None = None) -> Profile:
    """A built-in profile, or the one a built repository recorded in profile.json."""
    if name in PROFILES:
        return PROFILES[name]
    path = (repository or Path(".")) / PROFILE_FILE
    if not path.exists():
        return get_profile(name)  # raises with the known names
    data = json.loads(path.read_text())
    if data["name"] != name:
        raise ValueError(f"{path} records profile {data['name']!r}, not {name!r}")
    return Profile(**data)
