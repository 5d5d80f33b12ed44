"""A new pod's time to ready, both ways, and what it does to the HPA load step (deploy/README.md "Capacity").

    python deploy/perf/startup.py [--repository build/repository/cpu] [--json deploy/perf/results/startup.json]

1. build at start: what a pod whose init container exports the repository pays: `t2iguard build --profile tiny`
   into an empty folder with an empty export cache (`T2IGUARD_CACHE`, as on a fresh node), then tritonserver
   over it until ready;
2. prebuilt: what a pod that mounts (or downloads) a repository built once by the build Job pays: tritonserver
   over `--repository` until ready.
Both on this machine, one after the other, in one run. Each figure then goes to `capacity.py`'s simulation as
`startup_s` (plus `--pull-s` for the image pull and scheduling, which this machine cannot measure), so the
table shows what building once buys when the load steps up. Not a test: a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from capacity import HERE, read_behaviour, read_points, replicas_needed, simulate, summarise

from t2iguard.triton.server import TritonServer, free_ports


def time_to_ready(repository: Path) -> float:
    """Seconds from tritonserver's start to ready over `repository`."""
    server = TritonServer(repository, free_ports())
    try:
        return server.start()
    finally:
        server.stop()


def build_then_serve(workdir: Path) -> dict[str, float]:
    """`t2iguard build --profile tiny` with an empty export cache, then tritonserver until ready (seconds)."""
    env = {**os.environ, "T2IGUARD_CACHE": str(workdir / "cache")}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "t2iguard.cli.app", "build", "--profile", "tiny", "--out",
                    str(workdir / "repository")], env=env, check=True, capture_output=True)
    build_s = time.perf_counter() - t0
    serve_s = time_to_ready(workdir / "repository")
    return {"build_s": round(build_s, 1), "serve_s": round(serve_s, 1), "total_s": round(build_s + serve_s, 1)}


def hpa_step(startup_s: float, rate: float, p95_ms: float) -> dict:
    """capacity.py's load step (rate/4 -> rate at t=60 s) with new pods ready after `startup_s`."""
    points = read_points(HERE / "RESULTS.md")
    cap = replicas_needed(points, rate, p95_ms)
    rows = simulate(lambda t: rate / 4 if t < 60 else rate, cap["per_replica_throughput"],
                    cap["per_replica_concurrency"], read_behaviour(), seconds=1800, startup_s=startup_s)
    return summarise(rows, 60.0, p95_ms / 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repository", type=Path, default=Path("build/repository/cpu"), help="the prebuilt repository")
    ap.add_argument("--pull-s", type=float, default=20.0,
                    help="image pull and scheduling, added to both ways (not measurable here)")
    ap.add_argument("--rate", type=float, default=10.0, help="the load step's target requests per second")
    ap.add_argument("--p95-ms", type=float, default=4000.0)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "startup.json")
    args = ap.parse_args()
    if not (args.repository / "profile.json").exists():
        ap.error(f"--repository {args.repository}: not a built repository (run `t2iguard build` first)")
    with tempfile.TemporaryDirectory(prefix="t2iguard-startup-") as tmp:
        built = build_then_serve(Path(tmp))
    prebuilt = round(time_to_ready(args.repository), 1)
    ways = {"build at start": built["total_s"], "prebuilt": prebuilt}
    result = {"build_at_start": built, "prebuilt_serve_s": prebuilt, "pull_s": args.pull_s,
              "hpa_step": {way: hpa_step(s + args.pull_s, args.rate, args.p95_ms) for way, s in ways.items()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print("| way | build s | tritonserver to ready s | pod to ready s (+ pull) | HPA step: seconds over p95 "
          "| peak latency s | recovered at s |")
    print("|---|---|---|---|---|---|---|")
    for way, s in ways.items():
        h = result["hpa_step"][way]
        build = built["build_s"] if way == "build at start" else 0
        serve = built["serve_s"] if way == "build at start" else prebuilt
        print(f"| {way} | {build} | {serve} | {s + args.pull_s:.1f} | {h['seconds_over_target']} | "
              f"{h['peak_latency_s']} | {h['recovered_at_s']} |")


if __name__ == "__main__":
    main()
