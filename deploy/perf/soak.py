"""Soak: a long mixed load on `safe_t2i`, watching errors, tail latency and memory.

    python deploy/perf/soak.py [--repository build/repository/cpu] [--concurrency 64] [--minutes 10]

Starts its own tritonserver over the repository, then `concurrency` workers send, for `minutes`, a mix of
allowed, rewritten, refused and edit requests and a few hostile ones (empty prompt, an over-long prompt, a
PNG that is not one). Beyond what the server holds (its instances and their bounded queue) requests are shed
as UNAVAILABLE; the client retries those as a real one would (its default: 3 retries, exponential backoff with
full jitter), and a request still shed after them is counted as shed, not as an error. Reports: unexpected
errors (anything else but INVALID_ARGUMENT on a hostile request), the shed count, p50/p99 of the requests
served in the first and the last minute, and the
resident memory of tritonserver and its python stubs, sampled every 10 s (drift: last minute against the
second, after warm-up). Writes a JSON record and prints the RESULTS.md row. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np

from t2iguard.cli.bench import load
from t2iguard.client import AsyncSafeT2IClient
from t2iguard.contract.errors import InvalidInput, Overloaded
from t2iguard.runtime.images import encode_png
from t2iguard.training.data import shapeworld as W
from t2iguard.triton.server import TritonServer, free_ports

ALLOWED = ["a red circle on a blue background", "a green square in a field", "a yellow triangle at night"]
REWRITTEN = ["image of a ceo", "a photo of a nurse at work"]
REFUSED = ["a photo of a person killing another person", "a naked woman on a bed"]


def rss_mb(root_pid: int) -> float:
    """Resident memory of `root_pid` and every process in its process group (the python stubs), in MB."""
    pgid, total = os.getpgid(root_pid), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def requests_mix(steps: int) -> list[tuple[str, dict, bool]]:
    """(kind, generate kwargs, hostile) in the proportions of the mix: 20 entries, cycled."""
    rng = np.random.default_rng(0)
    edit = W.sample_edit(rng, "beautify")
    source, mask = encode_png(W.render(edit.source)), edit.mask()
    mix = [("allowed", {"prompt": ALLOWED[i % 3], "seed": i}, False) for i in range(8)]
    mix += [("rewritten", {"prompt": REWRITTEN[i % 2], "seed": i}, False) for i in range(4)]
    mix += [("refused", {"prompt": REFUSED[i % 2]}, False) for i in range(4)]
    mix += [("edit", {"prompt": edit.prompt, "image": source, "mask": mask, "seed": i}, False) for i in range(3)]
    mix += [("hostile", {"prompt": "x" * 100_000}, True)]
    for _, kwargs, _ in mix:
        kwargs.setdefault("steps", steps)
    return mix


async def soak(url: str, server_pid: int, concurrency: int, seconds: float, steps: int) -> dict:
    mix = requests_mix(steps)
    events: list[tuple[float, float, str, str | None]] = []  # (start, latency s, kind, unexpected error)
    memory: list[tuple[float, float]] = []
    t_start = time.perf_counter()

    async def sample_memory() -> None:
        while time.perf_counter() - t_start < seconds:
            memory.append((time.perf_counter() - t_start, rss_mb(server_pid)))
            await asyncio.sleep(10)

    async with AsyncSafeT2IClient(url, timeout_s=600, client_id="soak") as client:
        async def send(i: int) -> None:
            kind, kwargs, hostile = mix[i % len(mix)]
            t0 = time.perf_counter()
            error = None
            try:
                await client.generate(**kwargs)
                if hostile:
                    error = "hostile request accepted"
            except InvalidInput as e:
                if not hostile:
                    error = f"InvalidInput: {e}"
            except Overloaded:  # shed by the bounded queue, after the client's retries
                kind = "shed"
            except Exception as e:  # noqa: BLE001 - every other error is what the soak counts
                error = f"{type(e).__name__}: {e}"
            events.append((t0 - t_start, time.perf_counter() - t0, kind, error))

        sampler = asyncio.create_task(sample_memory())
        await load(send, concurrency, duration=seconds)
        await sampler
    return summarise(events, memory, seconds, concurrency)


def summarise(events, memory, seconds: float, concurrency: int) -> dict:
    def minute(lo: float, hi: float) -> dict:
        lat = np.array([e[1] for e in events if lo <= e[0] < hi and e[3] is None and e[2] != "shed"]) * 1000
        return {"requests": int(lat.size), "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
                "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None}

    first, last = minute(60, 120), minute(seconds - 60, seconds)  # the first minute after a minute's warm-up
    early = [m for t, m in memory if 60 <= t < 120] or [memory[0][1]]
    late = [m for t, m in memory if t >= seconds - 60] or [memory[-1][1]]
    unexpected = [e for e in events if e[3]]
    return {
        "concurrency": concurrency, "seconds": seconds, "requests": len(events),
        "by_kind": {k: sum(e[2] == k for e in events) for k in ("allowed", "rewritten", "refused", "edit", "hostile",
                                                                 "shed")},
        "unexpected_errors": len(unexpected), "error_examples": sorted({e[3] for e in unexpected})[:5],
        "first_minute": first, "last_minute": last,
        "p99_ratio_last_over_first": round(last["p99_ms"] / first["p99_ms"], 3) if first["p99_ms"] and
        last["p99_ms"] else None,
        "rss_mb": {"second_minute": round(float(np.mean(early)), 1), "last_minute": round(float(np.mean(late)), 1)},
        "rss_drift": round(float(np.mean(late) / np.mean(early) - 1), 4),
        "memory_samples": memory,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=20, help="denoising steps per request (the tiny default)")
    ap.add_argument("--out", type=Path, default=Path("deploy/perf/results/soak.json"))
    args = ap.parse_args()
    if args.minutes < 3:
        ap.error("--minutes: at least 3 (a warm-up minute, then the first and the last minute compared)")
    with TritonServer(args.repository, free_ports()) as server:
        result = asyncio.run(soak(server.grpc_url, server.proc.pid, args.concurrency, args.minutes * 60, args.steps))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    f, la = result["first_minute"], result["last_minute"]
    print(f"| {args.concurrency} | {args.minutes:g} min | {result['requests']} | {result['by_kind']['shed']} | "
          f"{result['unexpected_errors']} | "
          f"{f['p50_ms']} / {f['p99_ms']} | {la['p50_ms']} / {la['p99_ms']} | {result['rss_mb']['second_minute']} -> "
          f"{result['rss_mb']['last_minute']} MB ({100 * result['rss_drift']:+.1f}%) |")
    print(json.dumps({k: v for k, v in result.items() if k != "memory_samples"}, indent=2))


if __name__ == "__main__":
    main()
