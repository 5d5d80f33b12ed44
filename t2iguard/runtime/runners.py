"""Runners: how the pipeline calls a model by name. The served runner (Triton BLS) lives in
`t2iguard.triton.backend`; `LocalRunner` runs the same built repository in-process (onnxruntime for
networks, `t2iguard.runtime.stages` for python models, spec steps for ensembles), so the pipeline can be
driven with or without a server and the two compared."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from t2iguard.contract.policy import Policy
from t2iguard.contract.profiles import Profile
from t2iguard.contract.specs import ModelSpec, build_specs
from t2iguard.runtime.stages import STAGES


class ModelCallError(Exception):
    """A model call failed; `model` names it, `status` is the Triton error kind if known."""

    def __init__(self, model: str, message: str, status: str = "INTERNAL"):
        super().__init__(f"{model}: {message}")
        self.model, self.status = model, status


class Runner(Protocol):
    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        """Run `model` on a batch; raises ModelCallError."""
        ...


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class LocalRunner:
    """In-process execution of a built repository (see `t2iguard build`)."""

    def __init__(self, repository: Path, profile: Profile, policy: Policy):
        self.specs = build_specs(profile)
        self._sessions = {}
        self._stages = {name: cls(profile, policy) for name, cls in STAGES.items()}
        self.repository = Path(repository)

    def _session(self, spec: ModelSpec):
        if spec.name not in self._sessions:
            self._sessions[spec.name] = ort_session(self.repository / spec.name / "1" / "model.onnx", spec.threads)
        return self._sessions[spec.name]

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        spec = self.specs[model]
        try:
            if spec.kind == "network":
                values = self._session(spec).run(outputs, {k: v for k, v in inputs.items()})
                return dict(zip(outputs, values, strict=True))
            if spec.kind == "python":
                result = self._stages[model](inputs)
                return {k: result[k] for k in outputs}
        except ModelCallError:
            raise
        except Exception as e:  # the served runner reports these as per-request errors
            code = getattr(getattr(e, "kind", None), "triton_code", None) or "INTERNAL"
            raise ModelCallError(model, str(e), code) from e
        tensors = dict(inputs)
        for step in spec.steps:
            tensors.update(self.infer(step.model, {n: tensors[n] for n in step.inputs}, list(step.outputs)))
        return {k: tensors[k] for k in outputs}
