"""ONNX export of a network spec, and the parity check against its torch module.

Input/output names and the dynamic batch axis come from the spec; nothing is named here.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from t2iguard.contract.specs import ModelSpec, Tensor
from t2iguard.runtime.runners import ort_session

#: max abs difference accepted between onnxruntime and torch outputs (float32, CPU)
PARITY_TOLERANCE = 1e-3
OPSET = 18


def sample_inputs(spec: ModelSpec, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the spec's shapes and dtypes, each drawn from the values its tensor declares
    (`Tensor.sample`, see `t2iguard.contract.specs.Sample`)."""
    rng = np.random.default_rng(seed)
    return {t.name: draw(t, batch, rng) for t in spec.inputs}


def draw(t: Tensor, batch: int, rng: np.random.Generator) -> np.ndarray:
    """`batch` rows of tensor `t` from its declared `Sample`; ValueError when it declares none."""
    s = t.sample
    if s is None:
        raise ValueError(f"{t.name} declares no sample values: give it `sample=` in t2iguard/contract/specs.py")
    shape = (batch, *t.dims)
    if s.kind == "mask":
        lengths = rng.integers(int(s.lo), t.dims[-1] + 1, size=batch)
        x = np.arange(t.dims[-1])[None, :] < lengths[:, None]
    elif s.kind == "integers":
        x = rng.integers(int(s.lo), int(s.hi), size=shape)
    elif s.kind == "uniform":
        x = s.lo + (s.hi - s.lo) * rng.random(shape, dtype=np.float32)
    else:
        x = rng.standard_normal(shape)
    return x.astype(t.numpy_dtype)


@torch.no_grad()
def torch_outputs(module: torch.nn.Module, spec: ModelSpec, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    res = module(*(torch.from_numpy(inputs[t.name]) for t in spec.inputs))
    res = res if isinstance(res, tuple) else (res,)
    return [r.numpy() for r in res]


def dynamic_shapes(spec: ModelSpec) -> tuple[dict[int, object], ...]:
    """Per input: the batch axis (1..max_batch_size), and each `variable` axis (the token axis: 2..its dim, one
    symbol shared by the inputs, which must agree on it) dynamic."""
    batch = torch.export.Dim("batch", min=1, max=spec.max_batch_size)
    seq = {}
    for t in spec.inputs:
        for axis in t.variable:
            seq.setdefault(t.dims[axis], torch.export.Dim(f"seq{len(seq) or ''}", min=2, max=t.dims[axis]))
    return tuple({0: batch, **{1 + a: seq[t.dims[a]] for a in t.variable}} for t in spec.inputs)


def export_onnx(module: torch.nn.Module, spec: ModelSpec, path: Path) -> None:
    """Export with a dynamic batch axis (1..max_batch_size) on every input and output, and a dynamic token
    axis where the spec declares one (`Tensor.variable`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = sample_inputs(spec, batch=2)
    args = tuple(torch.from_numpy(sample[t.name]) for t in spec.inputs)
    # torch.onnx: "torchvision is not installed" notes, once per export. onnxscript: its constant folder
    # tries nodes whose inputs are symbolic (a text model's reshape to [batch, 77]) and logs
    # "Evaluation failed: cannot reshape array of size 1 into shape (1,77)"; the node is kept unfolded,
    # and the parity check below is what says the graph is right
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(path), dynamo=True, external_data=False, opset_version=OPSET,
                input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
                dynamic_shapes=dynamic_shapes(spec), verbose=False,
            )
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)


def parity(module: torch.nn.Module, spec: ModelSpec, path: Path, batches: tuple[int, ...] = (1, 3)) -> float:
    """Max abs difference between onnxruntime on `path` and the torch module, over batch sizes."""
    sess = ort_session(path, threads=2)
    worst = 0.0
    for b in batches:
        inputs = sample_inputs(spec, batch=b, seed=b)
        got = sess.run([t.name for t in spec.outputs], inputs)
        want = torch_outputs(module, spec, inputs)
        worst = max(worst, *(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True)))
    return worst
