"""The one load generator (`t2iguard.cli.bench.load` / `measure`) that `t2iguard bench`, benchmarks/ and
deploy/perf/ use: which calls it makes, which it measures, when it stops."""

from __future__ import annotations

import asyncio
import time

import pytest

from t2iguard.cli.bench import Load, load, measure


def test_sequential_calls_of_a_plain_function():
    seen: list[int] = []
    result = measure(lambda i: seen.append(i), requests=7)
    assert seen == list(range(7))
    assert result.requests == 7 and all(us >= 0 for us in result.latencies_us)


def test_workers_take_interleaved_indices_and_overlap():
    seen: list[int] = []
    in_flight = [0, 0]  # now, most

    async def send(i: int) -> None:
        seen.append(i)
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(0.01)
        in_flight[0] -= 1

    result = measure(send, 4, requests=12)
    assert sorted(seen) == list(range(12)) and result.requests == 12
    assert in_flight[1] == 4
    assert min(result.latencies_us) >= 10_000


def test_duration_and_warmup():
    calls: list[float] = []

    async def send(i: int) -> None:
        calls.append(time.perf_counter())
        await asyncio.sleep(0.02)

    t0 = time.perf_counter()
    result = measure(send, 2, duration=0.3, warmup=0.2)
    elapsed = time.perf_counter() - t0
    assert 0.5 <= elapsed < 1.0
    assert result.requests < len(calls)  # the warm-up's calls are not measured
    assert 10 <= result.requests <= 32 and 0.3 <= result.seconds < 0.5
    assert result.per_second == pytest.approx(result.requests / result.seconds)


def test_percentiles_in_milliseconds():
    result = Load([1000.0, 2000.0, 3000.0, 4000.0, 5000.0], seconds=1.0)
    assert result.median_ms == 3.0 and result.percentile_ms(100) == 5.0 and result.per_second == 5.0


def test_needs_a_limit():
    with pytest.raises(ValueError, match="duration"):
        asyncio.run(load(lambda i: None))
