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

import shutil
from pathlib import Path

from t2iguard import specs as S
from t2iguard.export import modules as M
from t2iguard.export.tiny import Built, build_text_guards
from t2iguard.profiles import Profile
from t2iguard.taxonomy import CATEGORIES

CHECKER_CATEGORIES = ("sexual", "nudity")
TOKENIZER_DIR = "tokenizer"  # under text_encoder/1/ in a built repository


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
