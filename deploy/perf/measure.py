"""Measure the tiny profile on this machine's CPU and write deploy/perf/RESULTS.md.

    .venv/bin/python deploy/perf/measure.py [--duration 10]

One run, one server: `t2iguard bench` levels for prompt_guard, image_guard and safe_t2i (end to
end, 20 steps), the dynamic-batching gain (throughput at concurrency 32 over 1, prompt_guard), and
the safety stack's overhead over bare generation on allowed requests, from safe_t2i's own
per-stage timings (text encoding + denoising + decoding vs the whole request).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import time
from pathlib import Path

from t2iguard.cli import bench as B
from t2iguard.client import SafeT2IClient
from t2iguard.contract.policy import load_policy
from t2iguard.export.build import build_repository
from t2iguard.triton.server import TritonServer, free_ports

HERE = Path(__file__).parent
LEVELS = {"prompt_guard": [1, 4, 16, 32], "image_guard": [1, 4, 16], "safe_t2i": [1, 2, 4]}
#: the heading of the hot path's section (deploy/perf/hot_path.py), which a rewrite of RESULTS.md keeps
HOT_PATH = "## Hot path"


def _inputs(out: Path) -> tuple[dict[str, Path], tuple[str, ...]]:
    """The input-data files by model, and the safe_t2i prompts in them (seed i for prompt i)."""
    spec = importlib.util.spec_from_file_location("perf_inputs", HERE / "inputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {p.stem: p for p in mod.write(out)}, mod.PROMPTS


def _table(model: str, levels: list[B.Level]) -> list[str]:
    cols = ["Concurrency", "Inferences/Second", "p50 latency", "p95 latency", "p99 latency", "Server Queue",
            "Server Compute Infer"]
    lines = [f"### {model}", "", "| concurrency | inferences/s | p50 ms | p95 ms | p99 ms | server queue ms | "
             "server compute ms |", "|---|---|---|---|---|---|---|"]
    for lv in levels:
        r = lv.row()
        vals = [r[c] for c in cols]
        lines.append(f"| {vals[0]} | {vals[1]:.1f} | " + " | ".join(f"{v / 1000:.1f}" for v in vals[2:]) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"))
    args = ap.parse_args()
    repo = build_repository("tiny", "cpu", args.repository).path
    files, prompts = _inputs(Path("build/perf-inputs"))
    server = TritonServer(repo, free_ports())
    server.start()
    results = {}
    try:
        for model, levels in LEVELS.items():
            results[model] = B.bench(server.grpc_url, model, files[model], levels, args.duration)
        with SafeT2IClient(server.grpc_url) as client:
            gen, total = [], []
            for i in range(8):
                rep = client.generate("a red circle on a blue background", seed=i, steps=20).report
                assert rep.decision == "allowed"
                gen.append(rep.timings_ms["text_encoder"] + rep.timings_ms["generate"])
                total.append(rep.timings_ms["total"])
            attempts = [len(client.generate(p, seed=i, steps=20).report.attempts) for i, p in enumerate(prompts)]
    finally:
        server.stop()
    pg = {lv.concurrency: lv.row()["Inferences/Second"] for lv in results["prompt_guard"]}
    g, t = statistics.median(gen), statistics.median(total)
    lines = ["# Measured on CPU: the tiny profile", "",
             f"`.venv/bin/python deploy/perf/measure.py --duration {args.duration:g}` on {platform.machine()}, "
             f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, policy {load_policy().version}, the weights in "
             "export/weights/ at the time; the real tritonserver (cpu target: python backend "
             "+ onnxruntime), one run. Latencies in milliseconds, measured at the client by `t2iguard bench`; "
             "server times from Triton's statistics (an ensemble's queueing is counted in its composing models, "
             "so prompt_guard and image_guard show 0 queue).", ""]
    for model, levels in results.items():
        lines += _table(model, levels)
    regenerated = sum(a > 1 for a in attempts)
    lines += [f"safe_t2i's input data: {len(prompts)} prompts, {regenerated} of them flagged by the image guard "
              f"and regenerated (attempts per prompt: {', '.join(map(str, attempts))}; at most 1 + max_attempts)"
              + (": its p95 and p99 are those regenerations." if regenerated else "."), ""]
    lines += ["## Dynamic batching", "",
              f"prompt_guard throughput at concurrency 32 over concurrency 1: {pg[32]:.1f} / {pg[1]:.1f} = "
              f"{pg[32] / pg[1]:.2f}x (one prompt per request; Triton's dynamic batcher forms the batches).", "",
              "## Safety overhead over bare generation (allowed requests, 20 steps, n=8, medians)", "",
              "| generation path (text encoding + denoising + decoding) | whole safe_t2i request | overhead |",
              "|---|---|---|",
              f"| {g:.0f} ms | {t:.0f} ms | {t - g:.0f} ms ({100 * (t - g) / g:.0f}%) |", "",
              "The overhead is prompt screening, rewriting, the image check and the watermark.", ""]
    results = HERE / "RESULTS.md"
    kept = results.read_text().split(HOT_PATH, 1) if results.exists() else []
    if len(kept) == 2:  # deploy/perf/hot_path.py's section (its before/after table) is written by hand: kept
        lines += [HOT_PATH + kept[1].rstrip("\n"), ""]
    results.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
