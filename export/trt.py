"""TensorRT engines from the exported ONNX, one per network spec (`t2iguard build --target trt`).

Per model: an optimisation profile from its spec (batch 1 .. max_batch_size, optimum at the
rows one request sends: 3 for the UNet with concept guidance), fp16 where the TensorRT version has
weakly typed fp16 builds (TensorRT 10, the one in Triton 24.10; TensorRT 11 builds the graph's own
types: fp32 from our export), a timing cache shared by all builds, and `model.plan.json` beside each
`model.plan` with what the engine is bound to (TensorRT version, GPU, profile, ONNX digest). An
engine is reused only when all of that still matches; Triton's tensorrt backend refuses a plan from
another TensorRT version, so `check_engine` says why before a server ever tries.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from t2iguard.specs import ModelSpec

ENGINE_META = "model.plan.json"
WORKSPACE_BYTES = 8 << 30


class TensorRTUnavailable(RuntimeError):
    """No CUDA GPU or no `tensorrt` package on this machine."""


@dataclass(frozen=True)
class EngineMeta:
    tensorrt: str
    gpu: str
    precision: str
    onnx_sha256: str
    profile: dict[str, list[list[int]]]  # input -> [min, opt, max] shapes


def gpu_name() -> str | None:
    """The first CUDA GPU's name, or None (nvidia-smi, so no CUDA library is needed to ask)."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    return out.splitlines()[0].strip() if out else None


def require_tensorrt():
    """The `tensorrt` module, or TensorRTUnavailable saying what is missing."""
    gpu = gpu_name()
    if gpu is None:
        raise TensorRTUnavailable("no CUDA GPU is visible (nvidia-smi found none): TensorRT engines are built on "
                                  "the GPU that will run them")
    try:
        import tensorrt
    except ImportError:
        raise TensorRTUnavailable(f"GPU {gpu} found but the `tensorrt` package is not installed: "
                                  "pip install 't2iguard[gpu]' (match the TensorRT of your Triton image)") from None
    return tensorrt


def _precision(trt) -> str:
    """fp16 where TensorRT still builds weakly typed fp16 (10.x); 11.x builds the ONNX graph's types."""
    return "fp16" if hasattr(trt.BuilderFlag, "FP16") else "fp32"


def profile_shapes(spec: ModelSpec) -> dict[str, list[list[int]]]:
    """input -> [min, opt, max] shapes: batch 1, the rows of one request, max_batch_size."""
    opt = min(spec.opt_batch, spec.max_batch_size)
    return {t.name: [[b, *t.dims] for b in (1, opt, spec.max_batch_size)] for t in spec.inputs}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expected_meta(trt_version: str, gpu: str, onnx: Path, spec: ModelSpec, precision: str) -> EngineMeta:
    return EngineMeta(tensorrt=trt_version, gpu=gpu, precision=precision, onnx_sha256=_sha256(onnx),
                      profile=profile_shapes(spec))


def check_engine(plan: Path, want: EngineMeta) -> str | None:
    """None when `plan` was built for exactly `want`, else the reason it must be rebuilt."""
    meta_path = plan.with_name(ENGINE_META)
    if not plan.exists() or not meta_path.exists():
        return "no engine yet"
    have = json.loads(meta_path.read_text())
    for key, value in asdict(want).items():
        if have.get(key) != value:
            return f"{key} changed: engine has {have.get(key)!r}, this machine needs {value!r}"
    return None


def build_engine(onnx: Path, spec: ModelSpec, plan: Path, timing_cache: Path, say=lambda m: None) -> EngineMeta:
    """Parse `onnx`, build a serialized engine for `spec`'s profile, write `plan` and its metadata."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{spec.name}: TensorRT cannot parse {onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    precision = _precision(trt)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    shapes = profile_shapes(spec)
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    say(f"building TensorRT engine for {spec.name} ({precision})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{spec.name}: TensorRT engine build failed (see the TensorRT log above)")
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_bytes(bytes(serialized))
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    meta = expected_meta(trt.__version__, gpu_name() or "unknown", onnx, spec, precision)
    plan.with_name(ENGINE_META).write_text(json.dumps(asdict(meta), indent=2))
    return meta


def build_engines(repository: Path, specs: list[ModelSpec], timing_cache: Path, say=lambda m: None) -> list[str]:
    """Build (or keep, when still valid) `<model>/1/model.plan` for every network spec. Returns those built."""
    trt = require_tensorrt()
    gpu = gpu_name() or "unknown"
    built = []
    for spec in specs:
        version = repository / spec.name / "1"
        onnx, plan = version / "model.onnx", version / "model.plan"
        reason = check_engine(plan, expected_meta(trt.__version__, gpu, onnx, spec, _precision(trt)))
        if reason is None:
            continue
        say(f"{spec.name}: {reason}")
        build_engine(onnx, spec, plan, timing_cache, say)
        built.append(spec.name)
    return built
