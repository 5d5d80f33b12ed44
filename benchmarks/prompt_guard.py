"""Prompt screening (and rewriting) speed: through Triton (gRPC, prompt_guard ensemble, dynamic batching) and the
same ONNX classifier in-process with onnxruntime, in one run on one machine.

    .venv/bin/python benchmarks/prompt_guard.py [--seconds 20] [--concurrency 32]

Reports p50 latency for one prompt per request (prompt_guard and prompt_rewrite), and
throughput (prompts/s) at the given concurrency with one prompt per request (Triton's dynamic
batcher forms the batches), against in-process onnxruntime on batches of the same size. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import numpy as np

from t2iguard.cli.demo import free_ports
from t2iguard.client import AsyncSafeT2IClient, SafeT2IClient
from t2iguard.contract import specs as S
from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import get_profile
from t2iguard.evaluation.prompt_classifier import DATA, load_tsv
from t2iguard.export.build import build_repository
from t2iguard.runtime.runners import LocalRunner
from t2iguard.triton.server import TritonServer


async def _load(url: str, prompts: list[str], concurrency: int, seconds: float) -> tuple[int, float]:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: AsyncSafeT2IClient, k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < deadline:
            await client.screen([prompts[i % len(prompts)]])
            done += 1
            i += concurrency

    async with AsyncSafeT2IClient(url) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client, k) for k in range(concurrency)))
        return done, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--n", type=int, default=200, help="single-prompt requests for the p50")
    args = ap.parse_args()
    repo = build_repository("tiny", "cpu", args.repository).path
    prompts = [r.prompt for r in load_tsv(DATA / "test_prompts.tsv")]
    profile = get_profile("tiny")

    # in-process: the same normaliser, ONNX graph and policy, no server
    local = LocalRunner(repo, profile, load_policy(repo / "policy.yaml"))

    def screen_local(batch: list[str]) -> None:
        local.infer(S.PROMPT_GUARD, {S.PROMPT: np.array([[p.encode()] for p in batch], dtype=np.object_)},
                    [S.PROMPT_REPORT])

    screen_local(prompts[:1])
    lat_local = []
    for i in range(args.n):
        t0 = time.perf_counter()
        screen_local([prompts[i % len(prompts)]])
        lat_local.append((time.perf_counter() - t0) * 1000)
    n_local, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        screen_local([prompts[(n_local + j) % len(prompts)] for j in range(args.concurrency)])
        n_local += args.concurrency
    tput_local = n_local / (time.perf_counter() - t0)

    server = TritonServer(repo, free_ports())
    server.start()
    try:
        with SafeT2IClient(server.grpc_url) as client:
            client.screen(prompts[:1])
            client.rewrite(prompts[:1])
            lat, lat_rewrite = [], []
            for i in range(args.n):
                t0 = time.perf_counter()
                client.screen([prompts[i % len(prompts)]])
                lat.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                client.rewrite([prompts[i % len(prompts)]], seed=i)
                lat_rewrite.append((time.perf_counter() - t0) * 1000)
        done, secs = asyncio.run(_load(server.grpc_url, prompts, args.concurrency, args.seconds))
    finally:
        server.stop()
    tput = done / secs
    print("| measure | Triton (gRPC, prompt_guard) | in-process onnxruntime | ratio Triton / in-process |")
    print("|---|---|---|---|")
    print(f"| p50 latency, 1 prompt (ms) | {statistics.median(lat):.1f} | {statistics.median(lat_local):.1f} | "
          f"{statistics.median(lat) / statistics.median(lat_local):.2f} |")
    print(f"| p50 latency of prompt_rewrite, 1 prompt (ms) | {statistics.median(lat_rewrite):.1f} | - | - |")
    print(f"| throughput at concurrency {args.concurrency} (prompts/s) | {tput:.0f} | {tput_local:.0f} "
          f"(batches of {args.concurrency}) | {tput / tput_local:.2f} |")


if __name__ == "__main__":
    main()
