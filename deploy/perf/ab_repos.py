"""Two built repositories served in alternation on this machine: what a change to the rendered configs or the
python models did, with the machine's drift hitting both sides alike.

    .venv/bin/python deploy/perf/ab_repos.py A_REPOSITORY B_REPOSITORY [--rounds 2] [--json OUT]

One server at a time, A then B, `--rounds` times. Per server:

- the screen at concurrency 1: `--screens` prompt_guard calls back to back (the sync client, one caption each):
  p50, p99, max, and the calls over 250 ms (a stall: Triton's batcher sleeping its 500 ms idle wait);
- prompt_guard at concurrency 32 (one prompt per request, `t2iguard bench`'s load generator), prompts/s;
- the UNet called back to back `--unet-calls` times (as the BLS calls it, one denoising step after another, here
  over gRPC): p50, max, stalls;
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
from t2iguard.triton.server import TritonServer, free_ports

ALLOWED = "a red circle on a blue background"
STALL_MS = 250.0


def _unet_inputs(client: grpcclient.InferenceServerClient) -> list[grpcclient.InferInput]:
    """One row of every required UNet input, random normal floats (a timestep of 500)."""
    cfg = client.get_model_config(S.UNET, as_json=True)["config"]
    rng = np.random.default_rng(0)
    inputs = []
    for t in cfg["input"]:
        if t.get("optional"):
            continue
        dims = [1, *(int(d) for d in t["dims"])]
        value = np.full(dims, 500.0, np.float32) if t["name"] == S.TIMESTEP else rng.normal(size=dims).astype(
            np.float32)
        x = grpcclient.InferInput(t["name"], dims, "FP32")
        x.set_data_from_numpy(value)
        inputs.append(x)
    return inputs


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
            unet = _unet_inputs(raw)
            for _ in range(5):
                raw.infer(S.UNET, unet)
            calls = []
            for _ in range(args.unet_calls):
                t0 = time.perf_counter()
                raw.infer(S.UNET, unet)
                calls.append((time.perf_counter() - t0) * 1000)
            fig["unet"] = _tail(calls)
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
    ap.add_argument("--unet-calls", type=int, default=300)
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
