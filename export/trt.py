"""TensorRT engines from the exported ONNX, one per network spec (`t2iguard build --target trt`).

Per model: optimisation profiles from its spec (batch 1 .. max_batch_size, optimum at the
rows one request sends: 3 for the UNet with concept guidance), a timing cache shared by all builds,
and `model.plan.json` beside each `model.plan` with what the engine is bound to (TensorRT version,
GPU, profile, ONNX digest). An engine is reused only when all of that still matches; Triton's
tensorrt backend refuses a plan from another TensorRT version, so `check_engine` says why before a
server ever tries.

Precision: engines are built strongly typed from an fp16 copy of the exported graph (weights and
compute float16, float32 inputs and outputs, so the Triton config does not change). TensorRT 10
deprecated the weakly typed FP16 builder flag and TensorRT 11 builds the graph's own types, so the
fp16 graph is what decides precision in both, and it is checked here, on CPU, against the float32
graph before any GPU sees it (`fp16_parity`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from t2iguard.contract.specs import ModelSpec
from t2iguard.export.onnx_export import sample_inputs
from t2iguard.runtime.runners import ort_session

ENGINE_META = "model.plan.json"
WORKSPACE_BYTES = 8 << 30
PRECISION = "fp16"
#: max abs difference accepted between the fp16 graph and its float32 source on the same inputs,
#: relative to the largest float32 output magnitude (at least 1): float16 keeps 11 significant bits
#: (about 3 decimal digits), and errors add up over the layers
FP16_TOLERANCE = 1e-2


class TensorRTUnavailable(RuntimeError):
    """No CUDA GPU or no `tensorrt` package on this machine."""


@dataclass(frozen=True)
class EngineMeta:
    tensorrt: str
    gpu: str
    precision: str
    onnx_sha256: str
    profile: dict[str, list[list[int]]]  # input -> [min, opt, max] shapes (a variable axis at its longest)
    buckets: list[int] = field(default_factory=list)  # one more profile per length bucket (`engine_profiles`)


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


def fp16_onnx(src: Path, dst: Path) -> None:
    """Write a float16 copy of the ONNX graph `src` to `dst` (weights in `dst`.data): initializers and
    compute float16, inputs and outputs still float32 (Cast nodes at the edges)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save_model(half, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{dst.name}.data", size_threshold=1 << 16)


def fp16_parity(fp32: Path, fp16: Path, spec: ModelSpec, batches: tuple[int, ...] = (1, 2)) -> float:
    """Max abs difference between the fp16 and fp32 graphs on onnxruntime (CPU), over the spec's sample
    inputs, divided by max(1, largest |fp32 output|)."""

    a, b = ort_session(fp32, threads=2), ort_session(fp16, threads=2)
    names = [t.name for t in spec.outputs]
    worst = 0.0
    for batch in batches:
        inputs = sample_inputs(spec, batch=batch, seed=batch)
        for want, got in zip(a.run(names, inputs), b.run(names, inputs), strict=True):
            scale = max(1.0, float(np.abs(want).max()))
            worst = max(worst, float(np.abs(got.astype(np.float32) - want).max()) / scale)
    return worst


def profile_shapes(spec: ModelSpec, length: int | None = None) -> dict[str, list[list[int]]]:
    """input -> [min, opt, max] shapes: batch 1, the rows of one request, max_batch_size; a variable (token)
    axis at `length` (None: its declared dim, the longest)."""
    opt = min(spec.opt_batch, spec.max_batch_size)

    def dims(t):
        return [length if axis in t.variable and length is not None else d for axis, d in enumerate(t.dims)]

    return {t.name: [[b, *dims(t)] for b in (1, opt, spec.max_batch_size)] for t in spec.inputs}


def engine_profiles(spec: ModelSpec) -> list[dict[str, list[list[int]]]]:
    """The engine's optimisation profiles, in order: one per length bucket (the tokenisers pad every batch to a
    bucket, so each profile sees one length and Triton picks the profile that fits a batch's shape; the trt
    config lists them all on the instance group), or one for a spec of fixed shapes."""
    return [profile_shapes(spec, b) for b in spec.seq_buckets] or [profile_shapes(spec)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expected_meta(trt_version: str, gpu: str, onnx: Path, spec: ModelSpec, precision: str) -> EngineMeta:
    return EngineMeta(tensorrt=trt_version, gpu=gpu, precision=precision, onnx_sha256=_sha256(onnx),
                      profile=profile_shapes(spec), buckets=list(spec.seq_buckets))


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
    """Convert `onnx` to fp16 (checked against it), build a strongly typed serialized engine for
    `spec`'s profile, write `plan` and its metadata."""
    trt = require_tensorrt()
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / "model.fp16.onnx"
        fp16_onnx(onnx, half)
        diff = fp16_parity(onnx, half, spec)
        if diff > FP16_TOLERANCE:
            raise RuntimeError(f"{spec.name}: the fp16 graph differs from the fp32 one by {diff:.2e} (relative; "
                               f"limit {FP16_TOLERANCE:.0e}): not building an engine from it")
        say(f"{spec.name}: fp16 graph within {diff:.1e} of fp32")
        serialized, config = _build(trt, half, spec, timing_cache, say)
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_bytes(bytes(serialized))
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    meta = expected_meta(trt.__version__, gpu_name() or "unknown", onnx, spec, PRECISION)
    plan.with_name(ENGINE_META).write_text(json.dumps(asdict(meta), indent=2))
    return meta


def _build(trt, onnx: Path, spec: ModelSpec, timing_cache: Path, say):
    """(serialized engine, builder config) of the fp16 graph `onnx`, strongly typed."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{spec.name}: TensorRT cannot parse {onnx}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    shapes = engine_profiles(spec)
    for per_input in shapes:  # one per length bucket; Triton picks the profile that fits a batch's shape
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in per_input.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    say(f"building TensorRT engine for {spec.name} ({PRECISION}, strongly typed, {len(shapes)} profile(s))")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{spec.name}: TensorRT engine build failed (see the TensorRT log above)")
    return serialized, config


def build_engines(repository: Path, specs: list[ModelSpec], timing_cache: Path, say=lambda m: None) -> list[str]:
    """Build (or keep, when still valid) `<model>/1/model.plan` for every network spec. Returns those built."""
    trt = require_tensorrt()
    gpu = gpu_name() or "unknown"
    built = []
    for spec in specs:
        version = repository / spec.name / "1"
        onnx, plan = version / "model.onnx", version / "model.plan"
        reason = check_engine(plan, expected_meta(trt.__version__, gpu, onnx, spec, PRECISION))
        if reason is None:
            continue
        say(f"{spec.name}: {reason}")
        build_engine(onnx, spec, plan, timing_cache, say)
        built.append(spec.name)
    return built
