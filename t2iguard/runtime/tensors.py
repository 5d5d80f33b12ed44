"""Numpy tensors in the layouts Triton models take: what the python models return, what
`LocalRunner` and the clients send. Written once here for every layer that serves or calls a model."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def bytes_column(values: Iterable[str | bytes]) -> np.ndarray:
    """A BYTES column: numpy object array [B, 1], one element per value; str values are UTF-8
    encoded, bytes pass as they are."""
    return np.array([[v.encode("utf-8") if isinstance(v, str) else bytes(v)] for v in values],
                    dtype=np.object_).reshape(-1, 1)


def split_rows(inputs: dict[str, np.ndarray], max_batch: int) -> list[dict[str, np.ndarray]]:
    """One request's inputs (rows along axis 0) as requests of at most `max_batch` rows each: a served
    model takes no more than its config's `max_batch_size`."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    rows = len(next(iter(inputs.values())))
    return [{name: x[i:i + max_batch] for name, x in inputs.items()} for i in range(0, rows, max_batch)]
