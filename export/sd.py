"""The `sd` family: Stable Diffusion checkpoints in Hugging Face layout, from a local directory.

    DIR/unet/            UNet2DConditionModel (4 latent channels)
    DIR/vae/             AutoencoderKL
    DIR/text_encoder/    CLIPTextModel         DIR/tokenizer/  CLIPTokenizer
    DIR/safety_checker/  StableDiffusionSafetyChecker (CLIP ViT-L/14 tower + concept embeddings)

are wrapped in the same modules as `tiny` (`export/modules.py`) and exported by the same code.
The prompt classifier and rewrite tagger are the project's MiniLM models (as in `tiny`). The image
classifier is the safety checker's CLIP tower with its concept embeddings as the head for sexual and
nudity; real checkpoints carry no transform classifier and no latent guard, so `sd` profiles serve
text-to-image only (edits are refused with a clear error) and regenerate with SLD concept guidance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from t2iguard.contract import specs as S
from t2iguard.contract.profiles import SD_KINDS, Profile
from t2iguard.contract.taxonomy import CATEGORIES
from t2iguard.export import modules as M
from t2iguard.export.tiny import Built, build_text_guards
from t2iguard.runtime.scheduler import DDIMConfig

CHECKER_CATEGORIES = ("sexual", "nudity")
TOKENIZER_DIR = "tokenizer"  # under text_encoder/1/ in a built repository


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


def build_sd(profile: Profile, weights: Path) -> dict[str, Built]:
    """Every network model of an `sd` profile, keyed by model name, in eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPTextModel

    def load(cls, part: str):
        return cls.from_pretrained(str(weights / part), local_files_only=True).eval()

    unet, vae = load(UNet2DConditionModel, "unet"), load(AutoencoderKL, "vae")
    if unet.config.in_channels != profile.latent_channels:
        raise ValueError(f"unet has {unet.config.in_channels} input channels; the sd profiles take plain "
                         f"{profile.latent_channels}-channel UNets")
    checker = load(StableDiffusionSafetyChecker, "safety_checker")
    source = f"pretrained ({weights.name})"
    out = build_text_guards()
    out.update({
        S.TEXT_ENCODER: Built(M.CLIPTextHidden(load(CLIPTextModel, "text_encoder")), source),
        S.UNET: Built(M.UNetEps(unet), source),
        S.VAE_ENCODER: Built(M.VAEEncode(vae), source),
        S.VAE_DECODER: Built(M.VAEDecode(vae), source),
        S.IMAGE_CLASSIFIER: Built(M.SafetyCheckerScorer(checker, [CATEGORIES.index(c) for c in CHECKER_CATEGORIES],
                                                        len(CATEGORIES)), f"safety checker ({weights.name})"),
    })
    for b in out.values():
        b.module.eval()
    return out


def copy_tokenizer(weights: Path, repository: Path) -> Path:
    """The CLIP tokenizer files next to the text encoder, where the orchestrator loads them."""
    dst = repository / S.TEXT_ENCODER / "1" / TOKENIZER_DIR
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(weights / "tokenizer", dst)
    return dst
