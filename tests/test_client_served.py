"""Against the real server over the tiny repository: the clients send requests of exactly the served
ensembles' max_batch_size (from their config), as Triton's own statistics count them."""

from __future__ import annotations

import asyncio
import time

import pytest

from t2iguard.contract import specs as S


def _counts(triton, model: str) -> tuple[int, int]:
    """(requests, prompts) that `model` has answered so far."""
    stats = triton.get_inference_statistics(model).model_stats[0]
    return stats.inference_stats.success.count, stats.inference_count


def _since(triton, model: str, before: tuple[int, int], want: tuple[int, int]) -> tuple[int, int]:
    """(requests, prompts) answered since `before`; Triton records a request's statistics just after its
    response, so wait (2 s at most) for them to reach `want`."""
    deadline = time.monotonic() + 2.0
    while True:
        now = _counts(triton, model)
        got = (now[0] - before[0], now[1] - before[1])
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def _config_batch(triton, model: str) -> int:
    return triton.get_model_config(model).config.max_batch_size


@pytest.mark.parametrize("model", [S.PROMPT_GUARD, S.PROMPT_REWRITE])
def test_sync_client_batches_by_the_served_config(client, triton, model):
    batch = _config_batch(triton, model)
    assert batch > 1 and client.max_batch(model) == batch
    prompts = [f"a red circle number {i}" for i in range(2 * batch + 3)]
    before = _counts(triton, model)
    results = client.screen(prompts) if model == S.PROMPT_GUARD else client.rewrite(prompts)
    assert [r.prompt for r in results] == prompts
    assert _since(triton, model, before, (3, len(prompts))) == (3, len(prompts))


def test_async_client_batches_by_the_served_config(url, triton):
    from t2iguard.client import AsyncSafeT2IClient

    batch = _config_batch(triton, S.PROMPT_GUARD)
    prompts = [f"a blue square number {i}" for i in range(batch + 1)]

    async def run():
        async with AsyncSafeT2IClient(url) as client:
            return await client.max_batch(S.PROMPT_GUARD), await client.screen(prompts)

    before = _counts(triton, S.PROMPT_GUARD)
    used, results = asyncio.run(run())
    assert used == batch and [r.screen.decision for r in results] == ["allow"] * len(prompts)
    assert _since(triton, S.PROMPT_GUARD, before, (2, len(prompts))) == (2, len(prompts))
