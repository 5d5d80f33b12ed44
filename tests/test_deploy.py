"""The Kubernetes manifests: every overlay renders with `kubectl kustomize` and validates against
the Kubernetes JSON schemas offline (kubernetes-validate, strict: unknown fields fail)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ["cpu", "gpu"]
K8S_VERSION = "1.32.0"

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed")


def render_all(overlay: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render(overlay: str) -> dict[str, dict]:
    """The t2iguard resource of each kind (the one named `t2iguard`, else the only one), by kind."""
    docs: dict[str, dict] = {}
    for doc in render_all(overlay):
        if doc["kind"] not in docs or doc["metadata"]["name"] == "t2iguard":
            docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_kubernetes_schemas(overlay):
    docs = render_all(overlay)
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor",
            "ConfigMap", "Job", "PersistentVolumeClaim", "NetworkPolicy"} <= {d["kind"] for d in docs}
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a CRD: no core schema; check what Prometheus Operator needs
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert doc["spec"]["endpoints"][0]["port"] == "metrics"
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_container_is_probed_and_exposed(overlay):
    docs = render(overlay)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    triton, health = pod["containers"]
    assert {p["containerPort"] for p in triton["ports"]} == {8000, 8001, 8002}
    assert triton["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert triton["startupProbe"]["periodSeconds"] * triton["startupProbe"]["failureThreshold"] >= 300
    # readiness and liveness ask the health sidecar's canary, which sees a dead python stub (Triton does not)
    assert triton["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8003}
    assert triton["livenessProbe"]["httpGet"] == {"path": "/live", "port": 8003}
    assert health["command"][:2] == ["t2iguard", "health"] and health["ports"][0]["containerPort"] == 8003
    assert "--model-control-mode=explicit" in triton["args"]  # the sidecar reloads models
    selector = docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert docs["Service"]["spec"]["selector"] == selector and docs["PodDisruptionBudget"]["spec"]["selector"][
        "matchLabels"] == selector
    assert {p["port"] for p in docs["Service"]["spec"]["ports"]} == {8000, 8001, 8002}
    job_labels = docs["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= job_labels.items()  # the Service never routes to the build Job's pod


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_once_mounted_read_only_and_hardened(overlay):
    """The repository is built by a Job, never by a serving pod; pods mount it read-only, write only to their
    audit volume and scratch; every container runs non-root, read-only, without privilege or capabilities,
    with requests and limits; the NetworkPolicy admits only the gateway and Prometheus (and the servers to
    Redis)."""
    docs = render_all(overlay)
    pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")}
    server = pods["t2iguard"]
    assert "initContainers" not in server
    build = pods["t2iguard-build-repository"]["containers"][0]
    assert "t2iguard build" in " ".join(build["args"]) and "--audit-log" in " ".join(build["args"])
    volumes = {v["name"]: v for v in server["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"] == {"claimName": "t2iguard-models", "readOnly": True}
    assert volumes["audit"]["persistentVolumeClaim"]["claimName"] == "t2iguard-audit"
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], (name, c["name"])
    triton = server["containers"][0]
    mounts = {m["name"]: m for m in triton["volumeMounts"]}
    assert mounts["models"]["readOnly"] is True and {"audit", "tmp", "dshm"} <= set(mounts)
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")["spec"]
    sources = [(f.get("podSelector", {}).get("matchExpressions", [{}])[0].get("values"),
                f.get("namespaceSelector", {}).get("matchLabels"), sorted(p["port"] for p in rule["ports"]))
               for rule in policy["ingress"] for f in rule["from"]]
    assert sources == [(["gateway"], None, [8000, 8001]), (None, {"kubernetes.io/metadata.name": "monitoring"}, [8002]),
                       (["server"], None, [6379])]


def test_gpu_overlay_requests_a_gpu_and_cpu_does_not():
    gpu = render("gpu")["Deployment"]["spec"]["template"]["spec"]
    cpu = render("cpu")["Deployment"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in str(cpu)
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])


def test_hpa_scales_on_triton_queue_time():
    hpa = render("cpu")["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "t2iguard"}
    metric = hpa["spec"]["metrics"][0]["pods"]
    assert metric["metric"]["name"] == "t2iguard_queue_us_per_request"
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 60
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    rules = yaml.safe_load(render("cpu")["ConfigMap"]["data"]["prometheus-adapter-rules.yaml"])
    assert rules["rules"]["custom"][0]["name"]["as"] == metric["metric"]["name"]


def test_perf_analyzer_inputs_match_the_specs(tmp_path, profile):
    import base64
    import importlib.util
    import json

    from t2iguard.contract.specs import build_specs

    spec_file = ROOT / "deploy" / "perf" / "inputs.py"
    mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location("perf_inputs", spec_file))
    mod.__loader__.exec_module(mod)
    specs = build_specs(profile)
    for path in mod.write(tmp_path):
        model = specs[path.stem]
        rows = json.loads(path.read_text())["data"]
        assert rows
        for row in rows:
            names = {t.name for t in model.inputs}
            assert set(row) <= names and {t.name for t in model.inputs if not t.optional} <= set(row)
            for name, value in row.items():
                t = model.input(name)
                if isinstance(value, dict) and "b64" in value:
                    assert value["shape"] == list(t.dims)
                    assert len(base64.b64decode(value["b64"])) == int(np.prod(t.dims))
                elif t.dtype == "BYTES":
                    content = value["content"] if isinstance(value, dict) else value
                    assert all(isinstance(v, str) for v in content)


def test_bench_writes_perf_analyzer_columns(url, tmp_path):
    """`t2iguard bench` against the real server, on the perf_analyzer input file for prompt_guard."""
    import csv
    import importlib.util
    import subprocess
    import sys

    spec_file = ROOT / "deploy" / "perf" / "inputs.py"
    mod = importlib.util.module_from_spec(importlib.util.spec_from_file_location("perf_inputs", spec_file))
    mod.__loader__.exec_module(mod)
    data = next(p for p in mod.write(tmp_path) if p.stem == "prompt_guard")
    out = tmp_path / "bench.csv"
    r = subprocess.run([sys.executable, "-m", "t2iguard.cli.app", "bench", "--model", "prompt_guard", "--input-data",
                        str(data), "--concurrency", "1,4", "--duration", "2", "--url", url, "--csv", str(out),
                        "--plot", str(tmp_path / "bench.png")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    assert [int(row["Concurrency"]) for row in rows] == [1, 4]
    for row in rows:
        assert float(row["Inferences/Second"]) > 0
        assert 0 < float(row["p50 latency"]) <= float(row["p95 latency"]) <= float(row["p99 latency"])
        assert float(row["Server Compute Infer"]) > 0
    assert (tmp_path / "bench.png").stat().st_size > 0


def _capacity():
    import importlib.util

    spec = importlib.util.spec_from_file_location("capacity", ROOT / "deploy" / "perf" / "capacity.py")
    mod = sys.modules["capacity"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_capacity_model_reads_the_measured_table():
    cap = _capacity()
    points = cap.read_points(ROOT / "deploy" / "perf" / "RESULTS.md")
    assert [p.concurrency for p in points] == sorted(p.concurrency for p in points) and len(points) >= 2
    loose, tight = cap.replicas_needed(points, 10, 1e9), cap.replicas_needed(points, 10, points[0].p95_ms)
    assert loose["replicas"] <= tight["replicas"]
    assert cap.replicas_needed(points, 20, 1e9)["replicas"] >= 2 * loose["replicas"] - 1
    with pytest.raises(ValueError, match="no measured concurrency meets"):
        cap.replicas_needed(points, 10, 1.0)


def test_capacity_cli_names_an_unreachable_target_without_a_traceback(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "deploy" / "perf" / "capacity.py"), "--rate", "2",
                          "--p95-ms", "1", "--plot", str(tmp_path / "hpa.png")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--p95-ms 1: no measured concurrency meets" in out.stderr and "Traceback" not in out.stderr


def test_hpa_simulation_of_the_shipped_manifest_settles_without_oscillating():
    """The base HPA (both metrics, its behaviour) absorbs a 4x load step and then holds a steady size;
    with queue time as the only metric it keeps scaling down into a queue and back up."""
    cap = _capacity()
    behaviour = cap.read_behaviour()
    assert behaviour.target_inflight and behaviour.up_pods == 2 and behaviour.down_window_s == 300

    def run(b):
        rows = cap.simulate(lambda t: 2.5 if t < 60 else 10.0, 1.5, 4, b, seconds=1800, startup_s=70)
        return cap.summarise(rows, 60, 4.0)

    both = run(behaviour)
    behaviour.target_inflight = None
    queue_only = run(behaviour)
    assert both["recovered_at_s"] is not None and len(both["last_10_min_replicas"]) == 1
    assert both["replicas_after"] * 1.5 >= 10.0  # enough capacity for the load
    assert len(queue_only["last_10_min_replicas"]) > 1


def test_gpu_check_script_runs_its_torch_path_on_cpu():
    """deploy/gpu-check.sh without installing the project (its package tree of links), torch path on CPU."""
    import os
    import sys

    env = {**os.environ, "PYTHON": sys.executable, "OUT": ""}
    r = subprocess.run(["bash", str(ROOT / "deploy" / "gpu-check.sh"), "--cpu", "--steps", "2", "--iters", "2"],
                       capture_output=True, text=True, timeout=600, env=env, cwd="/")
    assert r.returncode == 0, r.stderr[-2000:]
    for model in ("unet", "vae_decoder", "image_classifier", "latent_guard"):
        assert f"| {model} |" in r.stdout
    assert "| image path (2 UNet steps + decode + classify) |" in r.stdout
