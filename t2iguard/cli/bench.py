"""`t2iguard bench` and the project's one load generator (`load`, `measure`), which benchmarks/ and
deploy/perf/ use too.

`load`: N workers call `send(i)` back to back, for `duration` seconds or until `requests` have been
measured (after an optional warm-up), and the latency of each call is recorded at the caller.

`bench`: for each concurrency level, `load` over gRPC, each request taking the next row of a
perf_analyzer `--input-data` JSON file. Latency percentiles are measured at the client; queue and
compute times come from Triton's own statistics (deltas over the window, per request), like
perf_analyzer's server-side columns.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import triton_to_np_dtype

CSV_COLUMNS = ("Concurrency", "Inferences/Second", "Server Queue", "Server Compute Input", "Server Compute Infer",
               "Server Compute Output", "p50 latency", "p90 latency", "p95 latency", "p99 latency", "Avg latency")


@dataclass(frozen=True)
class Load:
    """What one `load` run measured: the latency of each call sent after the warm-up (microseconds), and
    the seconds from the end of the warm-up to the last response."""

    latencies_us: list[float]
    seconds: float

    @property
    def requests(self) -> int:
        return len(self.latencies_us)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_us), q)) / 1000.0

    @property
    def median_ms(self) -> float:
        return self.percentile_ms(50)


async def load(send: Callable[[int], object], concurrency: int = 1, *, duration: float | None = None,
               requests: int | None = None, warmup: float = 0.0) -> Load:
    """The load generator: `concurrency` workers call `send(i)` back to back, worker k with i = k, k + concurrency,
    k + 2 * concurrency, ... A call that returns an awaitable is awaited; a plain function runs inline (it holds
    the event loop, so use it at concurrency 1: sequential latencies, in-process work).

    Calls that start in the first `warmup` seconds are not measured. It stops when calls would start after
    `warmup + duration` seconds, or once `requests` calls have been measured, whichever comes first."""
    if duration is None and requests is None:
        raise ValueError("load needs a duration, a number of requests, or both")
    latencies: list[float] = []
    claimed = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration if duration is not None else float("inf")

    async def worker(k: int) -> None:
        nonlocal claimed
        i = k
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            measured = t0 >= measure_from
            if measured:
                if requests is not None and claimed >= requests:
                    return
                claimed += 1
            result = send(i)
            if inspect.isawaitable(result):
                await result
            if measured:
                latencies.append((time.perf_counter() - t0) * 1e6)
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return Load(latencies, max(time.perf_counter() - measure_from, 0.0))


def measure(send: Callable[[int], object], concurrency: int = 1, **limits) -> Load:
    """`load` from synchronous code (its own event loop): `measure(lambda i: client.screen([...]), requests=50)`."""
    return asyncio.run(load(send, concurrency, **limits))


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


async def _run_level(url: str, model: str, rows, concurrency: int, duration: float, warmup: float) -> Load:
    async with grpcaio.InferenceServerClient(url) as client:
        return await load(lambda i: client.infer(model, rows[i % len(rows)]), concurrency, duration=duration,
                          warmup=warmup)


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
        measured = asyncio.run(_run_level(url, model, rows, c, duration, warmup))
        after = _server_totals(sync, model)
        done = max(after["count"] - before["count"], 1.0)
        server = {k: (after[k] - before[k]) / done / 1000.0 for k in ("queue", "compute_input", "compute_infer",
                                                                      "compute_output")}
        levels.append(Level(c, measured.requests, duration, measured.latencies_us or [float("nan")], server))
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
