"""The repository builder: `t2iguard build --profile tiny|sd15|sd-turbo [--weights DIR] --target cpu|onnx|trt`.

Exports every network model to ONNX (checked against its torch module, max abs difference under
`PARITY_TOLERANCE`), renders each spec's `config.pbtxt` for the target, copies the python models
and the policy. Outputs are build artefacts. Exports are cached per source fingerprint, so the
three targets (and rebuilds with unchanged sources) share one export.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import torch

from t2iguard.contract import specs as S
from t2iguard.contract.policy import DEFAULT_POLICY, load_policy
from t2iguard.contract.profiles import PROFILE_FILE, SD_KINDS, Profile
from t2iguard.export.nudenet import SOURCE, export_detector
from t2iguard.export.onnx_export import PARITY_TOLERANCE, export_onnx, parity
from t2iguard.export.render import TARGETS, render, to_pbtxt
from t2iguard.export.sd import build_sd, copy_tokenizer, profile_from_weights
from t2iguard.export.tiny import build_tiny, tiny_profile
from t2iguard.export.trt import build_engines

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


#: the export modules whose code shapes the exported graphs (rendering, TensorRT and this builder do not)
GRAPH_SOURCES = ("modules.py", "tiny.py", "sd.py", "onnx_export.py")


def _fingerprint(profile: Profile, weights: Path | None) -> str:
    """Changes whenever anything that shapes the exported graphs changes (checkpoint files by path,
    size and modification time: hashing gigabytes on every build would cost more than an export).
    The optional NudeNet detector is cached on its own (`_export_detector`): adding it re-exports nothing."""
    h = hashlib.sha256(f"{replace(profile, nude_detector=False).to_json()}:{torch.__version__}".encode())
    files = sorted(p for p in weights.rglob("*") if p.is_file()) if weights is not None else []
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(weights)}:{st.st_size}:{st.st_mtime_ns}".encode())
    core = Path(str(resources.files("t2iguard")))
    export_dir = Path(str(resources.files("t2iguard.export")))
    shaping = [export_dir / f for f in GRAPH_SOURCES]
    shaping += [core / f for f in ("contract/specs.py", "contract/profiles.py", "contract/taxonomy.py",
                                   "runtime/text.py", "runtime/lexicon.py")]
    shaping += sorted(export_dir.glob("weights/*.safetensors"))
    for f in shaping:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """Where exported ONNX graphs are kept between builds ($T2IGUARD_CACHE or ~/.cache/t2iguard)."""
    return Path(os.environ.get("T2IGUARD_CACHE", Path.home() / ".cache" / "t2iguard"))


def export_networks(profile: Profile, weights: Path | None, force: bool, say,
                    nudenet: Path | None = None) -> tuple[dict[str, Path], dict, list[str]]:
    """Export every network model once per source fingerprint into the cache, parity-checked.

    Returns ({model: its cached `.onnx`}, the export record, models exported now)."""
    networks = [s for s in S.build_specs(profile).values() if s.kind == "network" and s.name != S.NUDE_DETECTOR]
    cache = cache_root() / "onnx" / f"{profile.name}-{_fingerprint(profile, weights)}"
    record_path = cache / "export.json"
    exported = []
    if force or not record_path.exists() or not all((cache / f"{s.name}.onnx").exists() for s in networks):
        say(f"building torch modules ({profile.name} profile)")
        modules = build_sd(profile, weights) if profile.family == "sd" else build_tiny(profile)
        record: dict = {"parity": {}, "weights": {}, "parity_tolerance": PARITY_TOLERANCE,
                        "torch": torch.__version__}
        for spec in networks:
            say(f"exporting {spec.name} -> ONNX")
            export_onnx(modules[spec.name].module, spec, cache / f"{spec.name}.onnx")
            diff = parity(modules[spec.name].module, spec, cache / f"{spec.name}.onnx")
            _check_parity(spec.name, diff)
            record["parity"][spec.name], record["weights"][spec.name] = diff, modules[spec.name].provenance
        record_path.write_text(json.dumps(record, indent=2))
        exported = [s.name for s in networks]
    record = {**json.loads(record_path.read_text()), "onnx_cache": str(cache)}
    paths = {s.name: cache / f"{s.name}.onnx" for s in networks}
    if profile.nude_detector:
        paths[S.NUDE_DETECTOR], diff, fresh = _export_detector(nudenet, profile.image_size, force, say)
        _check_parity(S.NUDE_DETECTOR, diff)
        record["parity"][S.NUDE_DETECTOR], record["weights"][S.NUDE_DETECTOR] = diff, SOURCE
        exported += [S.NUDE_DETECTOR] if fresh else []
    return paths, record, exported


def _check_parity(name: str, diff: float) -> None:
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"{name}: ONNX differs from its source by {diff:.2e} > {PARITY_TOLERANCE:.0e}")


def _export_detector(nudenet: Path, image_size: int, force: bool, say) -> tuple[Path, float, bool]:
    """NudeNet's graph wrapped for `image_size` images (an ONNX graph already: wrapped, checked against the
    original), cached per (file, size, wrapper source). Returns (path, parity, exported now)."""
    st = nudenet.stat()
    h = hashlib.sha256(f"{nudenet}:{st.st_size}:{st.st_mtime_ns}:{image_size}".encode())
    h.update(Path(str(resources.files("t2iguard.export"))).joinpath("nudenet.py").read_bytes())
    cache = cache_root() / "onnx" / f"nudenet-{h.hexdigest()[:16]}"
    path, record_path = cache / f"{S.NUDE_DETECTOR}.onnx", cache / "export.json"
    if not force and path.exists() and record_path.exists():
        return path, json.loads(record_path.read_text())["parity"], False
    say(f"wrapping {nudenet.name} as {S.NUDE_DETECTOR}")
    cache.mkdir(parents=True, exist_ok=True)
    diff = export_detector(nudenet, image_size, path)
    record_path.write_text(json.dumps({"parity": diff, "source": str(nudenet)}))
    return path, diff, True


def _place(src: Path, dst: Path) -> None:
    """Hard-link (or copy across filesystems) a cached artefact into the repository."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build_repository(profile_name: str = "tiny", target: str = "cpu", out: Path | str = "build/repository/cpu",
                     policy: Path | None = None, audit_log: str = "audit.jsonl",
                     force: bool = False, progress=None, weights: Path | None = None,
                     nudenet: Path | None = None) -> BuildResult:
    """Build (or refresh) a Triton model repository at `out`; `sd` profiles load their checkpoint from
    `weights` (Hugging Face layout); `nudenet` (NudeNet's 320n.onnx) adds its detector to image_guard.
    `progress(msg)` reports each step."""
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    out = Path(out).resolve()
    if weights is not None:
        weights = Path(weights).resolve()
        profile = profile_from_weights(profile_name, weights)
    elif profile_name == "tiny":
        profile = tiny_profile()
    else:
        raise ValueError(f"unknown profile {profile_name!r}" + (" (sd profiles need --weights DIR)"
                                                                 if profile_name in SD_KINDS else "; known: tiny, "
                                                                 + ", ".join(SD_KINDS)))
    if nudenet is not None:
        nudenet = Path(nudenet).resolve()
        if not nudenet.is_file():
            raise FileNotFoundError(f"--nudenet: no file {nudenet}")
        profile = replace(profile, nude_detector=True)
    specs = S.build_specs(profile)
    policy_path = Path(policy) if policy else DEFAULT_POLICY
    load_policy(policy_path)  # refuse to build with an invalid policy
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    onnx_paths, record, exported = export_networks(profile, weights, force, say, nudenet)
    provenance = record["weights"]

    say(f"rendering {len(specs)} model configs for target {target}")
    sources = _sources_dir()
    image_weights = provenance.get(S.UNET, "trained")
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
        else:  # a network, or an ensemble: a python model on the cpu target only (export/render.py)
            if spec.kind == "network":
                params = {"profile": profile_name}
                _place(onnx_paths[spec.name], version / "model.onnx")
            else:
                params = dict(common) if target == "cpu" else {}
            stale = version / "model.py"
            if target == "cpu":
                shutil.copyfile(sources / f"_{spec.kind}_cpu" / "model.py", stale)
            elif stale.exists():
                stale.unlink()
        (out / spec.name / "config.pbtxt").write_text(to_pbtxt(render(spec, target, params)))
    shutil.copyfile(policy_path, out / POLICY_FILE)
    (out / PROFILE_FILE).write_text(profile.to_json())
    if profile.family == "sd":
        copy_tokenizer(weights, out)
    info = {"profile": profile_name, "target": target, **record,
            "models": sorted(specs)}
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2))
    if target == "trt":
        networks = [s for s in specs.values() if s.kind == "network"]
        build_engines(out, networks, cache_root() / "trt" / "timing.cache", say)
    return BuildResult(out, exported, record["parity"], provenance, time.perf_counter() - t0)
