"""The clients split prompts into requests of the served model's max_batch_size, read from its config
(an `sd` repository serves batches of 8, `tiny` 16), not a number of their own. A stand-in for tritonclient
answers here; tests/test_client_served.py checks the same against the real server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from t2iguard.client import AsyncSafeT2IClient, SafeT2IClient, wire
from t2iguard.contract import specs as S
from t2iguard.contract.report import PromptScreen
from t2iguard.runtime.runners import screen_prompts
from t2iguard.runtime.tensors import bytes_column, split_rows

PROMPTS = [f"a red circle number {i}" for i in range(20)]


class FakeTriton:
    """tritonclient's InferenceServerClient as the clients call it; inputs stay numpy (no wire encoding)."""

    def __init__(self, max_batch: int):
        self.max_batch, self.configs, self.rows = max_batch, 0, []

    def get_model_config(self, model, as_json=False, client_timeout=None):
        self.configs += 1
        return {"config": {"name": model, "max_batch_size": self.max_batch}}

    def infer(self, model, inputs, client_timeout=None, **_):
        prompts = [bytes(p).decode() for p in inputs[S.PROMPT].reshape(-1)]
        assert inputs[S.PROMPT].shape == (len(prompts), 1)
        if len(prompts) > self.max_batch:  # what Triton answers
            raise AssertionError(f"batch {len(prompts)} > max_batch_size {self.max_batch}")
        self.rows.append(len(prompts))
        return _Response(answer(model, prompts))

    def close(self):
        pass


class AsyncFakeTriton(FakeTriton):
    async def get_model_config(self, *args, **kwargs):
        return super().get_model_config(*args, **kwargs)

    async def infer(self, *args, **kwargs):
        await asyncio.sleep(0)
        return super().infer(*args, **kwargs)

    async def close(self):
        pass


class _Response:
    def __init__(self, outputs):
        self.outputs = outputs

    def as_numpy(self, name):
        return self.outputs[name]


def answer(model: str, prompts: list[str]) -> dict[str, np.ndarray]:
    if model == S.PROMPT_GUARD:
        return {S.PROMPT_REPORT: bytes_column(
            [PromptScreen(normalized_prompt=p, decision="allow", scores={}, flagged=[], policy_version="t")
             .model_dump_json() for p in prompts])}
    assert model == S.PROMPT_REWRITE
    return {S.REWRITTEN_PROMPT: bytes_column([p.upper() for p in prompts]),
            S.REWRITES: bytes_column(["[]"] * len(prompts))}


@pytest.fixture(autouse=True)
def numpy_inputs(monkeypatch):
    monkeypatch.setattr(wire, "infer_inputs", lambda arrays: arrays)


@pytest.mark.parametrize("max_batch", [8, 16, 3])
def test_sync_client_batches_by_the_config(max_batch):
    fake = FakeTriton(max_batch)
    with SafeT2IClient("localhost:1") as client:
        client._client = fake
        screens = client.screen(PROMPTS)
        rewrites = client.rewrite(PROMPTS, seed=3)
        client.screen(PROMPTS[:1])
    full, rest = divmod(len(PROMPTS), max_batch)
    assert fake.rows == ([max_batch] * full + [rest]) * 2 + [1]
    assert fake.configs == 2  # prompt_guard's and prompt_rewrite's, each read once
    assert [r.prompt for r in screens] == [r.screen.normalized_prompt for r in screens] == PROMPTS
    assert [r.rewritten for r in rewrites] == [p.upper() for p in PROMPTS]


def test_async_client_batches_by_the_config():
    fake = AsyncFakeTriton(8)

    async def run():
        async with AsyncSafeT2IClient("localhost:1") as client:
            client._client = fake
            return await client.screen(PROMPTS), await client.rewrite(PROMPTS)

    screens, rewrites = asyncio.run(run())
    assert fake.rows == [8, 8, 4, 8, 8, 4] and fake.configs == 2
    assert [r.screen.normalized_prompt for r in screens] == PROMPTS
    assert [r.rewritten for r in rewrites] == [p.upper() for p in PROMPTS]


def test_screen_prompts_sends_max_batch_rows_per_request():
    rows = []

    def infer(model, inputs, outputs):
        rows.append(len(inputs[S.PROMPT]))
        return answer(model, [bytes(p).decode() for p in inputs[S.PROMPT].reshape(-1)])

    screens = screen_prompts(infer, PROMPTS, 8)
    assert rows == [8, 8, 4] and [s.normalized_prompt for s in screens] == PROMPTS


def test_bytes_column_and_split_rows():
    col = bytes_column(["é", b"\xff"])
    assert col.shape == (2, 1) and col.dtype == np.object_ and col[0, 0] == "é".encode() and col[1, 0] == b"\xff"
    assert bytes_column([]).shape == (0, 1)
    parts = split_rows({"A": np.arange(5)[:, None], "B": np.arange(5)[:, None] * 10}, 2)
    assert [p["A"].ravel().tolist() for p in parts] == [[0, 1], [2, 3], [4]]
    assert [p["B"].ravel().tolist() for p in parts] == [[0, 10], [20, 30], [40]]
    with pytest.raises(ValueError):
        split_rows({"A": np.arange(3)}, 0)


def test_max_batch_size_of_a_config():
    assert wire.max_batch_size({"config": {"max_batch_size": 8}}) == 8
    assert wire.max_batch_size({"config": {}}) == 1  # no batching: one row per request


def test_image_arrays_in_the_diffusers_forms_and_clear_errors():
    """A float mask in [0, 1] (diffusers' form) is the same PNG as its uint8 form; other arrays are refused with
    the field named, before anything is sent (the soak's float mask used to die inside PIL)."""
    from t2iguard.client.wire import generate_request, image_bytes

    mask = np.zeros((256, 256), np.float32)
    mask[64:128, 32:96] = 1.0
    assert image_bytes(mask, "mask") == image_bytes((mask * 255).astype(np.uint8), "mask")
    assert image_bytes(mask > 0.5, "mask") == image_bytes(mask, "mask")
    with pytest.raises(ValueError, match=r"mask: a float array must hold values in \[0, 1\]"):
        generate_request("a cat", None, np.zeros((256, 256, 3), np.uint8), mask * 2, 1, None, None, None)
    with pytest.raises(ValueError, match=r"image: expected uint8 \[H, W, 3\].*uint8 \[256, 256, 4\]"):
        image_bytes(np.zeros((256, 256, 4), np.uint8), "image")
    with pytest.raises(ValueError, match="image: a float array"):
        image_bytes(np.full((8, 8, 3), np.nan, np.float32), "image")
