"""The repository builder: `t2iguard build --profile tiny --target cpu|onnx|trt [--out DIR]`.

Exports every network model to ONNX (checked against its torch module, max abs difference under
`PARITY_TOLERANCE`), renders each spec's `config.pbtxt` for the target, copies the python models
and the policy. Outputs are build artefacts; a rebuild with unchanged sources reuses the ONNX files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from t2iguard.export.onnx_export import PARITY_TOLERANCE, export_onnx, parity
from t2iguard.export.render import render, to_pbtxt
from t2iguard import specs as S
from t2iguard.policy import DEFAULT_POLICY, load_policy
from t2iguard.profiles import get_profile

BUILD_INFO = "build.json"
POLICY_FILE = "policy.yaml"


@dataclass
class BuildResult:
    path: Path
    exported: list[str]
    parity: dict[str, float]
    weights: dict[str, str]
    seconds: float


def _sources_dir() -> Path:
    return Path(str(resources.files("t2iguard.model_repository")))


def _fingerprint(profile: str, seed: int) -> str:
    """Changes whenever anything that shapes the exported graphs changes."""
    h = hashlib.sha256(f"{profile}:{seed}:{torch.__version__}".encode())
    for pkg in ("t2iguard.export", "t2iguard"):
        root = Path(str(resources.files(pkg)))
        for f in sorted(root.glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_repository(profile_name: str = "tiny", target: str = "cpu", out: Path | str = "build/repository/cpu",
                     policy: Path | None = None, audit_log: str = "audit.jsonl", seed: int = 0,
                     force: bool = False, progress=None) -> BuildResult:
    """Build (or refresh) a Triton model repository at `out`. `progress(msg)` reports each step."""
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    out = Path(out).resolve()
    profile = get_profile(profile_name)
    specs = S.build_specs(profile)
    policy_path = Path(policy) if policy else DEFAULT_POLICY
    load_policy(policy_path)  # refuse to build with an invalid policy
    fingerprint = _fingerprint(profile_name, seed)
    info_path = out / BUILD_INFO
    previous = json.loads(info_path.read_text()) if info_path.exists() else {}
    networks = [s for s in specs.values() if s.kind == "network"]
    reuse = (not force and previous.get("fingerprint") == fingerprint
             and all((out / s.name / "1" / "model.onnx").exists() for s in networks))

    exported, parities, weights = [], dict(previous.get("parity", {})), dict(previous.get("weights", {}))
    if not reuse:
        if profile_name != "tiny":
            raise ValueError(f"profile {profile_name!r} has no builder yet")
        from t2iguard.export.tiny import build_tiny

        say("building torch modules (tiny profile)")
        modules = build_tiny(profile, seed)
        for spec in networks:
            path = out / spec.name / "1" / "model.onnx"
            say(f"exporting {spec.name} -> ONNX")
            export_onnx(modules[spec.name].module, spec, path)
            diff = parity(modules[spec.name].module, spec, path)
            if diff > PARITY_TOLERANCE:
                raise RuntimeError(f"{spec.name}: ONNX differs from torch by {diff:.2e} > {PARITY_TOLERANCE:.0e}")
            parities[spec.name], weights[spec.name] = diff, modules[spec.name].weights
            exported.append(spec.name)

    say(f"rendering {len(specs)} model configs for target {target}")
    sources = _sources_dir()
    image_weights = "random-init" if "random-init" in weights.values() else "trained"
    common = {"profile": profile_name, "policy": POLICY_FILE}
    for spec in specs.values():
        version = out / spec.name / "1"
        version.mkdir(parents=True, exist_ok=True)
        params: dict[str, str] = {}
        if spec.kind == "python":
            params = dict(common)
            shutil.copyfile(sources / spec.source / "model.py", version / "model.py")
            if spec.name == S.SAFE_T2I:
                params.update(weights=image_weights, audit_log=audit_log)
        elif spec.kind == "network":
            params = {"profile": profile_name}
            stale = version / "model.py"
            if target == "cpu":
                shutil.copyfile(sources / "_network_cpu" / "model.py", stale)
            elif stale.exists():
                stale.unlink()
        (out / spec.name / "config.pbtxt").write_text(to_pbtxt(render(spec, target, params)))
    shutil.copyfile(policy_path, out / POLICY_FILE)
    info = {"profile": profile_name, "target": target, "fingerprint": fingerprint, "seed": seed,
            "parity": parities, "parity_tolerance": PARITY_TOLERANCE, "weights": weights,
            "torch": torch.__version__, "models": sorted(specs)}
    if target == "trt":
        info["engines"] = "not built: run the TensorRT engine build on a GPU machine (model.onnx -> model.plan)"
    info_path.write_text(json.dumps(info, indent=2))
    return BuildResult(out, exported, parities, weights, time.perf_counter() - t0)
