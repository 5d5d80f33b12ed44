"""Frozen MiniLM sentence embeddings for training heads (the served graphs embed the same way), and batched scoring
of texts by a whole (tokens -> scores) model."""

from __future__ import annotations

import numpy as np
import torch

from t2iguard.export.modules import masked_mean
from t2iguard.runtime.text import tokenize


@torch.no_grad()
def embed(encoder: torch.nn.Module, texts: list[str], seq_len: int, batch: int = 256, progress=None) -> np.ndarray:
    """texts -> float32 [N, D] masked-mean MiniLM embeddings (not normalised), as `SentenceScorer` pools."""
    out = []
    for i in range(0, len(texts), batch):
        ids, mask = (torch.from_numpy(a) for a in tokenize(texts[i:i + batch], seq_len))
        width = int(mask.sum(1).max())  # padding beyond the longest prompt changes nothing but time
        hidden = encoder(input_ids=ids[:, :width], attention_mask=mask[:, :width]).last_hidden_state
        out.append(masked_mean(hidden, mask[:, :width]).numpy())
        if progress:
            progress(min(i + batch, len(texts)))
    return np.concatenate(out).astype(np.float32)


@torch.no_grad()
def score(model: torch.nn.Module, texts: list[str], seq_len: int, batch: int = 128) -> np.ndarray:
    """texts (already normalised) -> float32 [N, C]: `model(input_ids, attention_mask)` (e.g. `SentenceScorer`)
    on batches tokenised at `seq_len` and trimmed to their longest prompt (the served length buckets give the
    same scores within fp rounding)."""
    out = []
    for i in range(0, len(texts), batch):
        ids, mask = (torch.from_numpy(a) for a in tokenize(texts[i:i + batch], seq_len))
        width = int(mask.sum(1).max())
        out.append(model(ids[:, :width], mask[:, :width]).numpy())
    return np.concatenate(out).astype(np.float32)
