"""Cold start and single-request latency of the served `tiny` stack on this machine.

    .venv/bin/python benchmarks/latency.py [--screen-n 50] [--generate-n 10] [--steps 20]

Measures, in one run: seconds from `tritonserver` launch to ready (cold start of `t2iguard serve`
on a built repository), p50/p90 of `screen` for one prompt (the prompt_guard ensemble), and
p50/p90 of `generate` for an allowed prompt at the default 20 steps. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from t2iguard.cli.bench import measure
from t2iguard.cli.demo import free_ports
from t2iguard.client import SafeT2IClient
from t2iguard.export.build import build_repository
from t2iguard.triton.server import TritonServer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    ap.add_argument("--screen-n", type=int, default=50)
    ap.add_argument("--generate-n", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    repo = build_repository("tiny", "cpu", args.repository).path
    server = TritonServer(repo, free_ports())
    cold = server.start()
    server_ms: list[float] = []
    try:
        with SafeT2IClient(server.grpc_url) as client:
            client.screen(["warm up"])
            client.generate("warm up", seed=0, steps=args.steps)
            screen = measure(lambda i: client.screen([f"a watercolor of a lighthouse number {i}"]),
                             requests=args.screen_n)

            def generate(i: int) -> None:
                res = client.generate("a red circle on a blue background", seed=i, steps=args.steps)
                server_ms.append(res.report.timings_ms["total"])
                assert res.decision == "allowed"

            gen = measure(generate, requests=args.generate_n)
    finally:
        server.stop()
    print("| measure | value |\n|---|---|")
    print(f"| cold start, launch to ready (s) | {cold:.1f} |")
    print(f"| screen, 1 prompt, p50 / p90 (ms), n={args.screen_n} | {screen.percentile_ms(50):.1f} / "
          f"{screen.percentile_ms(90):.1f} |")
    print(f"| generate, {args.steps} steps, p50 / p90 (ms), n={args.generate_n} | "
          f"{gen.percentile_ms(50):.0f} / {gen.percentile_ms(90):.0f} |")
    print(f"| generate, server-side total p50 (ms) | {statistics.median(server_ms):.0f} |")


if __name__ == "__main__":
    main()
