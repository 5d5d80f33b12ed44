"""The prompt-classifier soup (`training/prompt_soup.py`): its adapter is exactly the weighted mean of the two
files' updates, its head the weighted mean of their heads, and only files with a shared start are souped."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from t2iguard.export.tiny import PROMPT_CLASSIFIER_CHECKPOINT, load_classifier
from t2iguard.training.prompt_soup import soup_state

pytestmark = pytest.mark.skipif(not PROMPT_CLASSIFIER_CHECKPOINT.exists(), reason="no committed prompt classifier")


def _write_variant(path, seed: str | None = None) -> None:
    """The committed file with other adapter B matrices and head (a second 'training run'), same metadata."""
    with safe_open(str(PROMPT_CLASSIFIER_CHECKPOINT), "pt") as f:
        meta = dict(f.metadata())
    gen = torch.Generator().manual_seed(1)
    state = {k: (v.float() * (1.5 if ".lora_B." in k else 1.0)
                 + (0.01 * torch.randn(v.shape, generator=gen) if k.startswith("head.") else 0.0)).half()
             for k, v in load_file(str(PROMPT_CLASSIFIER_CHECKPOINT)).items()}
    if seed is not None:
        meta["seed"] = seed
    save_file(state, str(path), metadata=meta)


def _soup_file(path, a, b, share: float) -> None:
    adapters, head, config = soup_state(a, b, share)
    with safe_open(str(a), "pt") as f:
        meta = dict(f.metadata())
    state = {f"encoder.{k}": v for k, v in adapters.items()} | {f"head.{k}": v for k, v in head.items()}
    save_file(state, str(path), metadata={**meta, "lora": json.dumps(config)})


def test_soup_is_the_weighted_mean_of_the_updates_and_heads(tmp_path):
    b = tmp_path / "b.safetensors"
    _write_variant(b)
    soup = tmp_path / "soup.safetensors"
    _soup_file(soup, PROMPT_CLASSIFIER_CHECKPOINT, b, 0.25)
    (enc_a, head_a), (enc_b, head_b), (enc_s, head_s) = (load_classifier(p) for p in
                                                         (PROMPT_CLASSIFIER_CHECKPOINT, b, soup))
    with torch.no_grad():
        params_a, params_b = dict(enc_a.named_parameters()), dict(enc_b.named_parameters())
        worst = max(float((p - (0.75 * params_a[n] + 0.25 * params_b[n])).abs().max())
                    for n, p in enc_s.named_parameters())
        assert worst < 1e-5, worst  # merged weights: the mean of the updates, to float32 rounding
        assert float((params_b["encoder.layer.0.attention.self.query.weight"]
                      - params_a["encoder.layer.0.attention.self.query.weight"]).abs().max()) > 1e-3  # they differ
        for (n, p), q, r in zip(head_s.named_parameters(), head_a.parameters(), head_b.parameters(), strict=True):
            assert torch.allclose(p, 0.75 * q + 0.25 * r, atol=1e-6), n


def test_soup_at_the_ends_is_each_file(tmp_path):
    b = tmp_path / "b.safetensors"
    _write_variant(b)
    for share, same in ((0.0, PROMPT_CLASSIFIER_CHECKPOINT), (1.0, b)):
        soup = tmp_path / f"soup{share}.safetensors"
        _soup_file(soup, PROMPT_CLASSIFIER_CHECKPOINT, b, share)
        (enc, _), (ref, _) = load_classifier(soup), load_classifier(same)
        with torch.no_grad():
            assert max(float((p - q).abs().max()) for p, q in zip(enc.parameters(), ref.parameters(),
                                                                  strict=True)) < 1e-5


def test_soup_refuses_files_without_a_shared_start(tmp_path):
    b = tmp_path / "b.safetensors"
    _write_variant(b, seed="7")
    with pytest.raises(ValueError, match="seed"):
        soup_state(PROMPT_CLASSIFIER_CHECKPOINT, b, 0.5)
    trimmed = tmp_path / "trimmed.safetensors"
    with safe_open(str(PROMPT_CLASSIFIER_CHECKPOINT), "pt") as f:
        meta = dict(f.metadata())
    save_file({k: v for k, v in load_file(str(PROMPT_CLASSIFIER_CHECKPOINT)).items() if not k.startswith("head.")},
              str(trimmed), metadata=meta)
    with pytest.raises(ValueError, match="different weights"):
        soup_state(PROMPT_CLASSIFIER_CHECKPOINT, trimmed, 0.5)
    with pytest.raises(ValueError, match="share"):
        soup_state(PROMPT_CLASSIFIER_CHECKPOINT, PROMPT_CLASSIFIER_CHECKPOINT, 1.5)


def _write_low_rank_variant(path, rank: int = 4) -> None:
    """A low-rank file (`--adapter full-r32`'s layout, `low_rank.*`) with the committed file's seed and head width:
    the committed encoder, every block weight moved by a random rank-`rank` change, its biases shifted."""
    from t2iguard.export.tiny import load_minilm, low_rank_change

    with safe_open(str(PROMPT_CLASSIFIER_CHECKPOINT), "pt") as f:
        meta = dict(f.metadata())
    encoder, head = load_minilm(), load_classifier(PROMPT_CLASSIFIER_CHECKPOINT)[1]
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if "embeddings" in name or name.startswith("pooler."):
                continue
            if p.ndim == 2:
                p += 0.02 * torch.randn(p.shape[0], rank, generator=gen) @ torch.randn(rank, p.shape[1], generator=gen)
            else:
                p += 0.01
    state = {f"low_rank.{k}": v for k, v in low_rank_change(encoder, rank).items()}
    state |= {f"head.{k}": 1.1 * v for k, v in head.state_dict().items()}
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(path),
              metadata={**meta, "lora": "null", "low_rank": str(rank)})


def test_a_soup_with_a_low_rank_file_is_the_weighted_mean_of_the_merged_encoders(tmp_path):
    """LoRA + low-rank: the soup's change, cut at the summed rank, gives back the weighted mean of the two merged
    encoders (to float32 rounding of the SVD) and of their heads."""
    from t2iguard.export.tiny import apply_low_rank, load_minilm
    from t2iguard.training.prompt_soup import merged_soup_state

    b = tmp_path / "low-rank.safetensors"
    _write_low_rank_variant(b)
    change, head, rank = merged_soup_state(PROMPT_CLASSIFIER_CHECKPOINT, b, 0.25)
    lora_rank = json.loads(safe_open(str(PROMPT_CLASSIFIER_CHECKPOINT), "pt").metadata()["lora"])["r"]
    assert rank == lora_rank + 4 and all(v.shape[-1 if k.endswith(".a") else 0] == rank
                                         for k, v in change.items() if k.endswith((".a", ".b")))
    soup_encoder = apply_low_rank(load_minilm(), change)
    (enc_a, head_a), (enc_b, head_b) = load_classifier(PROMPT_CLASSIFIER_CHECKPOINT), load_classifier(b)
    with torch.no_grad():
        pa, pb = dict(enc_a.named_parameters()), dict(enc_b.named_parameters())
        worst = max(float((p - (0.75 * pa[n] + 0.25 * pb[n])).abs().max()) for n, p in soup_encoder.named_parameters())
        assert worst < 1e-4, worst
        dense = "encoder.layer.2.output.dense.weight"  # LoRA leaves it; the low-rank file moves it
        assert float((pb[dense] - pa[dense]).abs().max()) > 1e-3
    for (n, p), q, r in zip(head.items(), head_a.state_dict().values(), head_b.state_dict().values(), strict=True):
        assert torch.allclose(p, 0.75 * q + 0.25 * r, atol=1e-6), n
    _write_variant(tmp_path / "seed7.safetensors", seed="7")
    with pytest.raises(ValueError, match="seed"):
        merged_soup_state(tmp_path / "seed7.safetensors", b, 0.5)
