"""`t2iguard bench`: an asyncio gRPC load generator with perf_analyzer's inputs and CSV columns.

For each concurrency level, N workers send requests back to back for `duration` seconds (after a
short warm-up), each request taking the next row of a perf_analyzer `--input-data` JSON file.
Latency percentiles are measured at the client; queue and compute times come from Triton's own
statistics (deltas over the window, per request), like perf_analyzer's server-side columns.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import triton_to_np_dtype

CSV_COLUMNS = ("Concurrency", "Inferences/Second", "Server Queue", "Server Compute Input", "Server Compute Infer",
               "Server Compute Output", "p50 latency", "p90 latency", "p95 latency", "p99 latency", "Avg latency")


@dataclass
class Level:
    concurrency: int
    requests: int
    seconds: float
    latencies_us: list[float]
    server_us: dict[str, float]  # queue, compute_input, compute_infer, compute_output per request

    def row(self) -> dict[str, float | int]:
        lat = np.asarray(self.latencies_us)
        return {"Concurrency": self.concurrency, "Inferences/Second": round(self.requests / self.seconds, 2),
                "Server Queue": round(self.server_us["queue"]),
                "Server Compute Input": round(self.server_us["compute_input"]),
                "Server Compute Infer": round(self.server_us["compute_infer"]),
                "Server Compute Output": round(self.server_us["compute_output"]),
                **{f"p{q} latency": round(float(np.percentile(lat, q))) for q in (50, 90, 95, 99)},
                "Avg latency": round(float(lat.mean()))}


def load_input_data(path: Path, metadata: dict, batched: bool) -> list[list[grpcclient.InferInput]]:
    """perf_analyzer `--input-data` JSON -> one list of InferInputs per data row."""
    dtypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    rows = []
    for entry in json.loads(Path(path).read_text())["data"]:
        inputs = []
        for name, value in entry.items():
            if name not in dtypes:
                raise ValueError(f"{path}: input {name!r} is not an input of {metadata['name']}")
            dtype = dtypes[name]
            if isinstance(value, dict) and "b64" in value:
                arr = np.frombuffer(base64.b64decode(value["b64"]), dtype=triton_to_np_dtype(dtype))
                arr = arr.reshape(value["shape"])
            else:
                content = value["content"] if isinstance(value, dict) else value
                np_dtype = np.object_ if dtype == "BYTES" else triton_to_np_dtype(dtype)
                arr = np.array([c.encode() if dtype == "BYTES" else c for c in content], dtype=np_dtype)
                if isinstance(value, dict) and "shape" in value:
                    arr = arr.reshape(value["shape"])
            if batched:
                arr = arr[None]
            i = grpcclient.InferInput(name, list(arr.shape), dtype)
            i.set_data_from_numpy(arr)
            inputs.append(i)
        rows.append(inputs)
    return rows


def _server_totals(client: grpcclient.InferenceServerClient, model: str) -> dict[str, float]:
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"][0]
    s = stats["inference_stats"]
    return {"count": float(s["success"].get("count", 0)),
            **{k: float(s[k].get("ns", 0)) for k in ("queue", "compute_input", "compute_infer", "compute_output")}}


async def _run_level(url: str, model: str, rows, concurrency: int, duration: float, warmup: float) -> tuple:
    latencies: list[float] = []
    counter = [0]
    async with grpcaio.InferenceServerClient(url) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + duration

        async def worker(k: int) -> None:
            i = k
            while True:
                t0 = time.perf_counter()
                if t0 >= stop:
                    return
                await client.infer(model, rows[i % len(rows)])
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append((t1 - t0) * 1e6)
                    counter[0] += 1
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return latencies, counter[0]


def bench(url: str, model: str, input_data: Path, concurrency: list[int], duration: float, warmup: float = 2.0,
          progress=None) -> list[Level]:
    """Measure `model` at each concurrency level; `progress(level_index, total)` after each level."""
    sync = grpcclient.InferenceServerClient(url)
    metadata = sync.get_model_metadata(model, as_json=True)
    batched = sync.get_model_config(model, as_json=True)["config"].get("max_batch_size", 0) > 0
    rows = load_input_data(input_data, metadata, batched)
    levels = []
    for n, c in enumerate(concurrency):
        before = _server_totals(sync, model)
        latencies, count = asyncio.run(_run_level(url, model, rows, c, duration, warmup))
        after = _server_totals(sync, model)
        done = max(after["count"] - before["count"], 1.0)
        server = {k: (after[k] - before[k]) / done / 1000.0 for k in ("queue", "compute_input", "compute_infer",
                                                                      "compute_output")}
        levels.append(Level(c, count, duration, latencies or [float("nan")], server))
        if progress:
            progress(n + 1, len(concurrency))
    sync.close()
    return levels


def write_csv(levels: list[Level], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for level in levels:
            w.writerow(level.row())


def plot(levels: list[Level], model: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [lv.row() for lv in levels]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot([r["Inferences/Second"] for r in rows], [r["p95 latency"] / 1000 for r in rows], "o-")
    for r in rows:
        ax.annotate(f"c={r['Concurrency']}", (r["Inferences/Second"], r["p95 latency"] / 1000), fontsize=8)
    ax.set_xlabel("inferences / second")
    ax.set_ylabel("p95 latency (ms)")
    ax.set_title(f"{model}: throughput vs p95 latency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
