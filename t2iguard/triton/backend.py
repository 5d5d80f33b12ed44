"""Triton python-backend adapters: what the thin `model_repository/*/model.py` files subclass.

Only importable inside Triton's python stub (`triton_python_backend_utils`). Each request gets
its own response; one bad request never fails the batch (per-request `TritonError`).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from t2iguard.contract.errors import T2IGuardError
from t2iguard.contract.policy import load_policy
from t2iguard.contract.profiles import load_profile
from t2iguard.contract.specs import SAFE_T2I, ModelSpec, build_specs
from t2iguard.runtime.audit import JsonlAuditSink, audit_event
from t2iguard.runtime.limits import Limiter, open_store
from t2iguard.runtime.pipeline import SafeT2IPipeline, parse_request
from t2iguard.runtime.runners import LocalRunner, ModelCallError, ort_session
from t2iguard.runtime.stages import Stage
from t2iguard.runtime.tensors import bytes_column
from t2iguard.runtime.text import encoder_tokenizer
from t2iguard.triton.metrics import SafetyMetrics

_CODES = ("INVALID_ARG", "INTERNAL", "UNAVAILABLE", "NOT_FOUND", "UNSUPPORTED", "UNKNOWN", "CANCELLED",
          "ALREADY_EXISTS")


def _error(message: str, code: str | None) -> pb_utils.TritonError:
    return pb_utils.TritonError(message, getattr(pb_utils.TritonError, code or "INTERNAL"))


def _code_name(code) -> str:
    return next((n for n in _CODES if getattr(pb_utils.TritonError, n, None) == code), "INTERNAL")


class _Configured:
    """Reads the model's config parameters and its spec (profile, policy, paths)."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.root = Path(args["model_repository"]).parent  # the repository (args give the model dir)
        self.version_dir = Path(args["model_repository"]) / args["model_version"]
        self.profile = load_profile(self.root, self.params.get("profile"))
        self.spec: ModelSpec = build_specs(self.profile)[args["model_name"]]

    def path_param(self, key: str, default: str) -> Path:
        """A path parameter of the config, ${VAR}s expanded (e.g. the pod's name), relative to the repository."""
        p = Path(os.path.expandvars(self.params.get(key, default)))
        return p if p.is_absolute() else self.root / p

    def inputs(self, request) -> dict[str, np.ndarray | None]:
        out = {}
        for t in self.spec.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, t.name)
            out[t.name] = None if tensor is None else tensor.as_numpy()
        return out


class StageModel(_Configured):
    """A python stage from `t2iguard.runtime.stages`; subclasses set `stage`."""

    stage: type[Stage]

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.fn = self.stage(self.profile, load_policy(self.path_param("policy", "policy.yaml")))

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                out = self.fn(self.inputs(request))
                tensors = [pb_utils.Tensor(t.name, np.asarray(out[t.name], dtype=t.numpy_dtype))
                           for t in self.spec.outputs]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except T2IGuardError as e:
                responses.append(pb_utils.InferenceResponse(error=_error(str(e), e.kind.triton_code)))
            except Exception as e:  # noqa: BLE001 - reported per request, the model stays up
                responses.append(pb_utils.InferenceResponse(error=_error(f"{self.spec.name}: {e}", "INTERNAL")))
        return responses


class _BatchedModel(_Configured):
    """A dynamically batched model whose requests of one shape run as one batch: the requests concatenated on
    the batch axis through `run`, the result split back. A batch that fails runs again request by request, so
    that one request at fault gets its own error and the others their outputs."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.output_names = [t.name for t in self.spec.outputs]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """One batch, {input name: array [B, ...]} -> one array [B, ...] per output, in spec order."""
        raise NotImplementedError

    def execute(self, requests):
        batches = [self.inputs(r) for r in requests]
        responses: list = [None] * len(batches)
        # Triton's dynamic batcher gathers equal shapes only, but a model with variable (token) axes is handed
        # requests one by one when it is not batching: group them by shape
        groups: dict[tuple, list[int]] = {}
        for i, b in enumerate(batches):
            groups.setdefault(tuple(b[t.name].shape[1:] for t in self.spec.inputs), []).append(i)
        for members in groups.values():
            try:
                results = self.run({t.name: np.concatenate([batches[i][t.name] for i in members])
                                    for t in self.spec.inputs})
            except Exception:  # noqa: BLE001 - one request at fault must not fail the others of its batch
                for i in members:
                    responses[i] = self._one(batches[i])
                continue
            start = 0
            for i in members:
                n = next(iter(batches[i].values())).shape[0]
                tensors = [pb_utils.Tensor(name, r[start:start + n])
                           for name, r in zip(self.output_names, results, strict=True)]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
                start += n
        return responses

    def _one(self, inputs: dict[str, np.ndarray]):
        """A request of a failed batch on its own: its outputs, or its own error."""
        try:
            results = self.run(inputs)
        except ModelCallError as e:  # a step of a fused ensemble: its error kind
            return pb_utils.InferenceResponse(error=_error(f"{self.spec.name}: {e}", e.status))
        except Exception as e:  # noqa: BLE001 - reported on this request, the model stays up
            return pb_utils.InferenceResponse(error=_error(f"{self.spec.name}: {e}", "INTERNAL"))
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, r) for name, r in
                                                          zip(self.output_names, results, strict=True)])


class NetworkModel(_BatchedModel):
    """`cpu` target: an exported network run by onnxruntime."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.session = ort_session(self.version_dir / "model.onnx", int(self.params.get("intra_op_threads", "1")))

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(self.output_names, inputs)


class EnsembleModel(_BatchedModel):
    """`cpu` target: an ensemble as one python model. Its steps run in order in this process, as
    `LocalRunner` runs them: the python stages, and the networks with onnxruntime on the step models' own
    `model.onnx` files, at their specs' threads (a batch of several rows at the ensemble's `step_threads`, where
    it sets them). On this target every step would otherwise be a python-backend model of its own, and each hop
    between their processes (the tensors through shared memory, the ensemble scheduler) cost 0.5-1.5 ms of a
    10 ms screen (deploy/perf/RESULTS.md). Name and signature are the ensemble's; the step models stay in the
    repository for direct calls."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        policy = load_policy(self.path_param("policy", "policy.yaml"))
        self.runner = LocalRunner(self.root, self.profile, policy)
        self.runner.load(self.spec.name)
        # the spec's `step_threads`: a second set of sessions for batches, one prompt keeps its latency
        threads = self.params.get("intra_op_threads")
        self.batch_runner = LocalRunner(self.root, self.profile, policy, int(threads)) if threads else self.runner
        self.batch_runner.load(self.spec.name)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        runner = self.runner if len(next(iter(inputs.values()))) == 1 else self.batch_runner
        out = runner.infer(self.spec.name, inputs, self.output_names)
        return [out[name] for name in self.output_names]


class BlsRunner:
    """`Runner` over Triton BLS: each call is an in-server inference request.

    It asks for every output of the model: Triton 2.51 ensembles report a deadlock when a request
    names only some of their outputs. It sets no timeout: Triton applies a request's timeout only in the queue
    of a model with a queue policy, and only the entry point has one (`ModelSpec.queue_batches`). A called model
    that hangs is found by the health canary, which takes the replica out of the Service and reloads the model
    (t2iguard/triton/health.py); the caller's gRPC deadline ends its request."""

    def __init__(self, specs: dict[str, ModelSpec]):
        self.specs = specs

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=model, requested_output_names=[t.name for t in self.specs[model].outputs],
            inputs=[pb_utils.Tensor(k, v) for k, v in inputs.items()])
        response = request.exec()
        if response.has_error():
            err = response.error()
            raise ModelCallError(model, err.message(), _code_name(err.code()))
        result = {}
        for name in outputs:
            tensor = pb_utils.get_output_tensor_by_name(response, name)
            result[name] = None if tensor is None else tensor.as_numpy()
        return result


class SafeT2IModel(_Configured):
    """The BLS orchestrator: one `SafeT2IPipeline` per instance."""

    def initialize(self, args: dict) -> None:
        super().initialize(args)
        self.audit = JsonlAuditSink(self.path_param("audit_log", "audit.jsonl"))
        runner = BlsRunner(build_specs(self.profile))
        policy = load_policy(self.path_param("policy", "policy.yaml"))
        self.pipeline = SafeT2IPipeline(runner, self.profile, policy, self.params.get("weights", "unknown"),
                                        self.audit, encoder_tokenizer(self.profile, self.root))
        self.limiter = (Limiter(policy.limits, open_store(policy.limits.store, self.root))
                        if policy.limits.enabled else None)
        self.metrics = SafetyMetrics(pb_utils)

    def execute(self, requests):
        return [self._one(r) for r in requests]

    def _one(self, request):
        t0 = time.perf_counter()
        request_id = request.request_id() or secrets.token_hex(8)
        client = str(json.loads(request.parameters() or "{}").get("client", "anonymous"))
        try:
            if self.limiter:
                self.limiter.admit(client, time.time())
            req = parse_request(self.inputs(request), self.profile, request_id, client)
            png, report = self.pipeline.run(req)
            if self.limiter and report.refusal is not None:
                self.metrics.strike(self.limiter.refused(client, report.refusal.categories, time.time()).points)
        except T2IGuardError as e:
            if e.kind.kind in ("bad-input", "rate-limited"):  # never reached the pipeline: audit here
                self.audit.write(audit_event(None, request_id=request_id, client=client, outcome=e.kind.kind,
                                             latency_ms=(time.perf_counter() - t0) * 1000, error=str(e)))
            self.metrics.request(e.kind.kind, time.perf_counter() - t0)
            return pb_utils.InferenceResponse(error=_error(str(e), e.kind.triton_code or "INTERNAL"))
        except Exception as e:  # noqa: BLE001 - fail closed, keep serving
            self.metrics.request("other", time.perf_counter() - t0)
            return pb_utils.InferenceResponse(error=_error(f"{SAFE_T2I}: internal error, no image returned: {e}",
                                                           "INTERNAL"))
        self.metrics.request(report.decision, time.perf_counter() - t0, report)
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(self.spec.outputs[0].name, bytes_column([png or b""]).reshape(1, 1)),  # batch of one
            pb_utils.Tensor(self.spec.outputs[1].name, bytes_column([report.model_dump_json()]).reshape(1, 1)),
        ])
