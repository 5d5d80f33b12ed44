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
from pathlib import Path

from t2iguard.cli.bench import Load, load, measure
from t2iguard.cli.demo import free_ports
from t2iguard.client import AsyncSafeT2IClient, SafeT2IClient
from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import get_profile
from t2iguard.evaluation.prompt_classifier import load_tsv
from t2iguard.export.build import build_repository
from t2iguard.runtime.runners import LocalRunner, screen_prompts
from t2iguard.triton.server import TritonServer

#: the held-out hand-written prompts (training/data/, never trained on)
TEST_PROMPTS = Path(__file__).resolve().parents[1] / "training" / "data" / "test_prompts.tsv"


async def _screen_load(url: str, prompts: list[str], concurrency: int, seconds: float) -> Load:
    async with AsyncSafeT2IClient(url) as client:
        return await load(lambda i: client.screen([prompts[i % len(prompts)]]), concurrency, duration=seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--n", type=int, default=200, help="single-prompt requests for the p50")
    args = ap.parse_args()
    repo = build_repository("tiny", "cpu", args.repository).path
    prompts = [r.prompt for r in load_tsv(TEST_PROMPTS)]
    profile = get_profile("tiny")
    c = args.concurrency

    # in-process: the same normaliser, ONNX graph and policy, no server
    local = LocalRunner(repo, profile, load_policy(repo / "policy.yaml"))

    def screen_local(batch: list[str]) -> None:
        screen_prompts(local.infer, batch, len(batch))

    screen_local(prompts[:1])
    lat_local = measure(lambda i: screen_local([prompts[i % len(prompts)]]), requests=args.n)
    batches = measure(lambda i: screen_local([prompts[(i * c + j) % len(prompts)] for j in range(c)]),
                      duration=args.seconds)
    tput_local = batches.per_second * c

    server = TritonServer(repo, free_ports())
    server.start()
    try:
        with SafeT2IClient(server.grpc_url) as client:
            client.screen(prompts[:1])
            client.rewrite(prompts[:1])
            lat = measure(lambda i: client.screen([prompts[i % len(prompts)]]), requests=args.n)
            lat_rewrite = measure(lambda i: client.rewrite([prompts[i % len(prompts)]], seed=i), requests=args.n)
        tput = asyncio.run(_screen_load(server.grpc_url, prompts, c, args.seconds)).per_second
    finally:
        server.stop()
    print("| measure | Triton (gRPC, prompt_guard) | in-process onnxruntime | ratio Triton / in-process |")
    print("|---|---|---|---|")
    print(f"| p50 latency, 1 prompt (ms) | {lat.median_ms:.1f} | {lat_local.median_ms:.1f} | "
          f"{lat.median_ms / lat_local.median_ms:.2f} |")
    print(f"| p50 latency of prompt_rewrite, 1 prompt (ms) | {lat_rewrite.median_ms:.1f} | - | - |")
    print(f"| throughput at concurrency {c} (prompts/s) | {tput:.0f} | {tput_local:.0f} "
          f"(batches of {c}) | {tput / tput_local:.2f} |")


if __name__ == "__main__":
    main()
