"""Two built repositories served in alternation on this machine: what a change to the rendered configs or the
python models did, with the machine's drift hitting both sides alike.

    .venv/bin/python deploy/perf/ab_repos.py A_REPOSITORY B_REPOSITORY [--rounds 2] [--json OUT]

One server at a time, A then B, `--rounds` times. Per server:

- the screen at concurrency 1: `--screens` prompt_guard calls back to back (the sync client, one caption each):
  p50, p99, max, and the calls over 250 ms (a stall: Triton's batcher sleeping its 500 ms idle wait);
- prompt_guard at concurrency 32 (one prompt per request, `t2iguard bench`'s load generator), prompts/s;
- the UNet and the prompt classifier each called back to back `--calls` times (as the BLS calls the UNet, one
  denoising step after another; here over gRPC, on their declared sample inputs): p50, max, stalls;
- `--requests` allowed safe_t2i requests at 20 steps: p50 and max of the whole request.

Prints a Markdown table (A and B: the median over rounds of each figure; stalls: the sum) and writes the
figures per round as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from hot_path import captions  # the hot path's 512 caption-length prompts (this folder)

from t2iguard.cli.bench import load, measure
from t2iguard.client import AsyncSafeT2IClient, SafeT2IClient
from t2iguard.contract import specs as S
from t2iguard.contract.profiles import load_profile
from t2iguard.export.onnx_export import sample_inputs
from t2iguard.triton.server import TritonServer, free_ports

ALLOWED = "a red circle on a blue background"
STALL_MS = 250.0


def back_to_back(client: grpcclient.InferenceServerClient, spec: S.ModelSpec, n: int) -> dict[str, float]:
    """`n` calls of the model one after the other (as the BLS calls the UNet, step after step) on one row of its
    declared sample inputs (`export.onnx_export.sample_inputs`), after 5 unmeasured ones: the latency tail."""
    inputs = []
    for name, value in sample_inputs(spec, 1).items():
        x = grpcclient.InferInput(name, list(value.shape), spec.input(name).dtype)
        x.set_data_from_numpy(value)
        inputs.append(x)
    calls = []
    for k in range(n + 5):
        t0 = time.perf_counter()
        client.infer(spec.name, inputs)
        if k >= 5:
            calls.append((time.perf_counter() - t0) * 1000)
    return _tail(calls)


def _tail(latencies_ms: list[float]) -> dict[str, float]:
    a = np.asarray(latencies_ms)
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)), "max": float(a.max()),
            "stalls": int((a > STALL_MS).sum()), "n": len(a)}


async def _c32(url: str, prompts: list[str], seconds: float) -> float:
    async with AsyncSafeT2IClient(url) as client:
        return (await load(lambda i: client.screen([prompts[i % len(prompts)]]), 32, duration=seconds,
                           warmup=2.0)).per_second


def serve_and_measure(repo: Path, prompts: list[str], args) -> dict:
    server = TritonServer(repo, free_ports())
    server.start()
    try:
        with SafeT2IClient(server.grpc_url) as client:
            for k in range(20):
                client.screen(prompts[k:k + 1])
            screens = measure(lambda i: client.screen([prompts[i % len(prompts)]]), requests=args.screens)
            fig = {"screen": _tail([u / 1000 for u in screens.latencies_us])}
            fig["c32_per_s"] = asyncio.run(_c32(server.grpc_url, prompts, args.seconds))
            raw = grpcclient.InferenceServerClient(server.grpc_url)
            specs = S.build_specs(load_profile(repo))
            fig["unet"] = back_to_back(raw, specs[S.UNET], args.calls)
            fig["classifier"] = back_to_back(raw, specs[S.PROMPT_CLASSIFIER], args.calls)
            for k in range(8):  # every safe_t2i instance's first requests are slow
                client.generate(ALLOWED, seed=100 + k, steps=20)
            totals = [client.generate(ALLOWED, seed=k, steps=20).report.timings_ms["total"]
                      for k in range(args.requests)]
            fig["request"] = {"p50": statistics.median(totals), "max": max(totals), "n": len(totals)}
    finally:
        server.stop()
    return fig


def table(runs: dict[str, list[dict]]) -> str:
    def med(side: str, *keys: str) -> float:
        values = []
        for f in runs[side]:
            for k in keys:
                f = f[k]
            values.append(f)
        return statistics.median(values)

    def total(side: str, group: str) -> str:
        return f"{sum(f[group]['stalls'] for f in runs[side])} of {sum(f[group]['n'] for f in runs[side])}"

    rows = [("`screen` p50, c1 (ms)", lambda s: f"{med(s, 'screen', 'p50'):.1f}"),
            ("`screen` p99 / max, c1 (ms)", lambda s: f"{med(s, 'screen', 'p99'):.1f} / {med(s, 'screen', 'max'):.0f}"),
            (f"screens over {STALL_MS:.0f} ms", lambda s: total(s, "screen")),
            ("`prompt_guard` c32 (prompts/s)", lambda s: f"{med(s, 'c32_per_s'):.0f}"),
            ("UNet back to back p50 / max (ms)",
             lambda s: f"{med(s, 'unet', 'p50'):.1f} / {med(s, 'unet', 'max'):.0f}"),
            (f"UNet calls over {STALL_MS:.0f} ms", lambda s: total(s, "unet")),
            ("`prompt_classifier` back to back p50 / max (ms)",
             lambda s: f"{med(s, 'classifier', 'p50'):.1f} / {med(s, 'classifier', 'max'):.0f}"),
            (f"`prompt_classifier` calls over {STALL_MS:.0f} ms", lambda s: total(s, "classifier")),
            ("allowed request p50 / max (ms)",
             lambda s: f"{med(s, 'request', 'p50'):.0f} / {med(s, 'request', 'max'):.0f}")]
    out = ["| measure | A | B |", "|---|---|---|"]
    out += [f"| {name} | {fn('A')} | {fn('B')} |" for name, fn in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="repository A (e.g. built before a change)")
    ap.add_argument("b", type=Path, help="repository B")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--screens", type=int, default=400)
    ap.add_argument("--calls", type=int, default=300, help="back-to-back calls of the UNet and of the classifier")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0, help="the c32 run's duration")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    prompts = captions()
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    for r in range(args.rounds):
        for side, repo in (("A", args.a), ("B", args.b)):
            runs[side].append(serve_and_measure(repo, prompts, args))
            print(f"round {r + 1}, {side}: {json.dumps(runs[side][-1])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), "date": time.strftime("%Y-%m-%d %H:%M"),
                                         "runs": runs}, indent=2))
    print(table(runs))


if __name__ == "__main__":
    main()
