"""Capacity model and HPA load-step simulation for t2iguard (deploy/README.md "Capacity").

Capacity: from one replica's measured throughput/latency per concurrency (a `t2iguard bench` or
perf_analyzer CSV), the replicas needed for a target images/s at a p95 target: use the highest
per-replica concurrency whose p95 meets the target, run replicas at `headroom` of that throughput.

Simulation: a fluid queue per pod (requests split evenly, each pod completes at most its measured
throughput), Triton's queue time per request as the HPA metric (averaged over the adapter's rate
window), and the HorizontalPodAutoscaler v2 algorithm with deploy/k8s/base/hpa.yaml's behaviour:
desired = ceil(current * metric / target) outside a 10% tolerance, scale-up limited per period by
the larger of the Percent/Pods policies, scale-down by the highest recommendation over the
stabilisation window and its Pods policy; new pods serve after `startup_s`.

    python deploy/perf/capacity.py --measured deploy/perf/RESULTS.md --rate 10 --p95-ms 4000
"""

from __future__ import annotations

import argparse
import csv
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
HPA = HERE.parent / "k8s" / "base" / "hpa.yaml"


@dataclass(frozen=True)
class Point:
    concurrency: int
    throughput: float  # requests/s of one replica
    p95_ms: float


def read_points(path: Path, model: str = "safe_t2i") -> list[Point]:
    """One replica's measurements -> points sorted by concurrency: a perf_analyzer/`t2iguard bench` CSV,
    or the `### <model>` table of deploy/perf/RESULTS.md."""
    if path.suffix == ".md":
        text = path.read_text().split(f"### {model}\n", 1)[1]
        table = [line for line in text.strip().split("\n\n", 1)[0].splitlines() if line.startswith("| ") and
                 line[2].isdigit()]
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
        return [Point(int(c[0]), float(c[1]), float(c[3])) for c in cells]
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return sorted((Point(int(r["Concurrency"]), float(r["Inferences/Second"]), float(r["p95 latency"]) / 1000)
                   for r in rows), key=lambda p: p.concurrency)


def replicas_needed(points: list[Point], rate: float, p95_ms: float, headroom: float = 0.8) -> dict:
    """Replicas for `rate` requests/s with every replica's p95 under `p95_ms`."""
    ok = [p for p in points if p.p95_ms <= p95_ms]
    if not ok:
        raise ValueError(f"no measured concurrency meets p95 <= {p95_ms} ms (best {min(p.p95_ms for p in points)} ms)")
    best = max(ok, key=lambda p: p.throughput)
    return {"per_replica_concurrency": best.concurrency, "per_replica_throughput": best.throughput,
            "replicas": max(1, math.ceil(rate / (best.throughput * headroom))), "headroom": headroom}


@dataclass
class Behaviour:
    min_replicas: int
    max_replicas: int
    target_queue_s: float
    target_inflight: float | None  # None: queue time is the only metric
    up_percent: float
    up_pods: int
    up_period_s: float
    down_window_s: float
    down_pods: int
    down_period_s: float


def read_behaviour(path: Path = HPA) -> Behaviour:
    spec = yaml.safe_load(path.read_text())["spec"]
    up = {p["type"]: p for p in spec["behavior"]["scaleUp"]["policies"]}
    down = spec["behavior"]["scaleDown"]
    targets = {m["pods"]["metric"]["name"]: float(m["pods"]["target"]["averageValue"]) for m in spec["metrics"]}
    return Behaviour(
        min_replicas=spec["minReplicas"], max_replicas=spec["maxReplicas"],
        target_queue_s=targets["t2iguard_queue_us_per_request"] / 1e6,
        target_inflight=targets.get("t2iguard_inflight_requests"),
        up_percent=up["Percent"]["value"] / 100, up_pods=up["Pods"]["value"], up_period_s=up["Pods"]["periodSeconds"],
        down_window_s=down["stabilizationWindowSeconds"], down_pods=down["policies"][0]["value"],
        down_period_s=down["policies"][0]["periodSeconds"])


def simulate(rate_at, per_pod: float, concurrency: int, b: Behaviour, seconds: int = 900, startup_s: float = 70.0,
             sync_s: float = 15.0, window_s: float = 60.0, dt: float = 1.0) -> list[dict]:
    """Step the cluster every `dt` s; the HPA syncs every `sync_s`. Returns one row per second.

    A pod completes `per_pod` requests/s with `concurrency` requests in service at full load (so a
    request spends concurrency / per_pod seconds in service; Little's law)."""
    service_s = concurrency / per_pod
    ready, starting = b.min_replicas, []  # starting: times at which pods become ready
    queue = 0.0  # requests waiting, summed over pods
    history: list[tuple[float, float, float]] = []  # (t, queue seconds per request, requests in flight)
    recs: list[tuple[float, int]] = []
    last_up = last_down = -1e9
    rows = []
    t = 0.0
    while t < seconds:
        ready += sum(1 for s in starting if s <= t)
        starting = [s for s in starting if s > t]
        lam = rate_at(t)
        capacity = ready * per_pod
        queue = max(0.0, queue + (lam - capacity) * dt)
        wait = queue / capacity if capacity else float("inf")  # seconds a new request queues
        inflight = queue + min(lam, capacity) * service_s  # waiting + in service (Little's law)
        history.append((t, wait, inflight))
        if t % sync_s == 0 and t > 0:
            recent = [(w, f) for s, w, f in history if s > t - window_s]
            current = ready + len(starting)
            ratios = [sum(w for w, _ in recent) / len(recent) / b.target_queue_s]
            if b.target_inflight:  # per-pod average over the pods serving now
                ratios.append(sum(f for _, f in recent) / len(recent) / max(ready, 1) / b.target_inflight)
            # the HPA computes a recommendation per metric and takes the largest
            desired = max(current if abs(r - 1) <= 0.1 else math.ceil(current * r) for r in ratios)
            desired = min(max(desired, b.min_replicas), b.max_replicas)
            recs.append((t, desired))
            if desired > current and t - last_up >= b.up_period_s:
                limit = max(math.ceil(current * (1 + b.up_percent)), current + b.up_pods)
                add = min(desired, limit) - current
                starting += [t + startup_s] * add
                last_up = t
            elif desired < current:
                stable = max(d for s, d in recs if s > t - b.down_window_s)
                if stable < current and t - last_down >= b.down_period_s and not starting:
                    ready -= min(b.down_pods, current - stable)
                    last_down = t
        latency = wait + service_s
        rows.append({"t": t, "rate": lam, "ready": ready, "starting": len(starting), "queue_s": wait,
                     "latency_s": latency})
        t += dt
    return rows


def summarise(rows: list[dict], step_at: float, latency_target_s: float) -> dict:
    after = [r for r in rows if r["t"] >= step_at]
    over = [r for r in after if r["latency_s"] > latency_target_s]
    recovered = next((r["t"] for r in after if r["t"] > (over[0]["t"] if over else step_at)
                      and r["latency_s"] <= latency_target_s and r["starting"] == 0), None)
    tail = [r for r in rows if r["t"] >= rows[-1]["t"] - 600]
    return {"peak_latency_s": round(max(r["latency_s"] for r in after), 1),
            "last_10_min_replicas": sorted({r["ready"] for r in tail}),
            "last_10_min_seconds_over_target": sum(r["latency_s"] > latency_target_s for r in tail),
            "seconds_over_target": len(over),
            "recovered_at_s": recovered,
            "replicas_after": after[-1]["ready"],
            "first_scale_up_s": next((r["t"] for r in after if r["starting"] > 0), None)}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    ts = [r["t"] for r in rows]
    a.plot(ts, [r["ready"] for r in rows], label="ready replicas")
    a.plot(ts, [r["ready"] + r["starting"] for r in rows], "--", label="ready + starting")
    a.set_ylabel("replicas")
    a.legend()
    a.set_title(title)
    b.plot(ts, [r["latency_s"] for r in rows], color="tab:red", label="latency (queue + service)")
    b.set_yscale("log")
    b.set_ylabel("seconds")
    b.set_xlabel("time (s)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measured", type=Path, default=HERE / "RESULTS.md",
                    help="one replica's measurements: bench/perf_analyzer CSV, or RESULTS.md's safe_t2i table")
    ap.add_argument("--rate", type=float, default=10.0, help="target requests (images) per second")
    ap.add_argument("--p95-ms", type=float, default=4000.0, help="p95 latency target per request")
    ap.add_argument("--base-rate", type=float, default=None, help="load before the step [default: rate / 4]")
    ap.add_argument("--startup-s", type=float, default=70.0, help="pod start to ready (image pull + model load)")
    ap.add_argument("--plot", type=Path, default=HERE / "hpa-step.png")
    ap.add_argument("--seconds", type=int, default=1800, help="simulated time")
    ap.add_argument("--queue-only", action="store_true", help="simulate without the in-flight metric")
    args = ap.parse_args()
    points = read_points(args.measured)
    try:
        cap = replicas_needed(points, args.rate, args.p95_ms)
    except ValueError as e:  # the target is out of the measured range: say so, no traceback
        ap.error(f"--p95-ms {args.p95_ms:g}: {e}")
    per_pod = cap["per_replica_throughput"]
    base = args.base_rate if args.base_rate is not None else args.rate / 4
    step_at = 60.0
    behaviour = read_behaviour()
    if args.queue_only:
        behaviour.target_inflight = None
    rows = simulate(lambda t: base if t < step_at else args.rate, per_pod, cap["per_replica_concurrency"], behaviour,
                    seconds=args.seconds, startup_s=args.startup_s)
    summary = summarise(rows, step_at, args.p95_ms / 1000)
    plot(rows, args.plot, f"load step {base:g} -> {args.rate:g} req/s at t={step_at:g}s")
    print(f"capacity: {cap}")
    print(f"hpa step: {summary}")


if __name__ == "__main__":
    main()
