"""Render a `ModelSpec` as a Triton `ModelConfig` for a target (`cpu`, `onnx`, `trt`).

| target | network models                          | python models  | ensembles                                   |
|--------|-----------------------------------------|----------------|---------------------------------------------|
| cpu    | python backend running model.onnx (ORT) | python backend | one python model running the steps in-process |
| onnx   | `onnxruntime_onnx`, model.onnx          | python backend | Triton ensemble                             |
| trt    | `tensorrt_plan`, model.plan, KIND_GPU   | python backend | Triton ensemble                             |

On `cpu` every step of an ensemble is a python-backend model, so a Triton ensemble there only adds hops between
stub processes; it runs as one (`t2iguard.triton.backend.EnsembleModel`). Names and tensor signatures are
identical across targets.
"""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from t2iguard.contract.specs import ModelSpec, Tensor

TARGETS = ("cpu", "onnx", "trt")


def _io(t: Tensor, cls):
    """A tensor's config entry: its variable axes (the token axis of the screening models) as -1."""
    dims = [-1 if axis in t.variable else d for axis, d in enumerate(t.dims)]
    msg = cls(name=t.name, data_type=pb.DataType.Value(f"TYPE_{'STRING' if t.dtype == 'BYTES' else t.dtype}"),
              dims=dims)
    if t.optional:
        msg.optional = True
    return msg


def render(spec: ModelSpec, target: str, parameters: dict[str, str] | None = None) -> pb.ModelConfig:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    cfg = pb.ModelConfig(name=spec.name, max_batch_size=spec.max_batch_size)
    cfg.input.extend(_io(t, pb.ModelInput) for t in spec.inputs)
    cfg.output.extend(_io(t, pb.ModelOutput) for t in spec.outputs)
    if spec.kind == "ensemble" and target != "cpu":
        cfg.platform = "ensemble"
        for step in spec.steps:
            s = cfg.ensemble_scheduling.step.add(model_name=step.model, model_version=-1)
            s.input_map.update({n: n for n in step.inputs})
            s.output_map.update({n: n for n in step.outputs})
        return cfg
    if spec.kind == "network" and target == "onnx":
        cfg.platform = "onnxruntime_onnx"
        cfg.default_model_filename = "model.onnx"
    elif spec.kind == "network" and target == "trt":
        cfg.platform = "tensorrt_plan"
        cfg.default_model_filename = "model.plan"
    else:
        cfg.backend = "python"
    kind = pb.ModelInstanceGroup.KIND_CPU
    if spec.kind == "network" and target == "trt":
        kind = pb.ModelInstanceGroup.KIND_GPU
    elif spec.kind == "network" and target == "onnx":
        kind = pb.ModelInstanceGroup.KIND_AUTO  # GPU when the container has one
    group = cfg.instance_group.add(count=spec.instances, kind=kind)
    if spec.kind == "network" and target == "trt" and spec.seq_buckets:
        group.profile.extend(str(i) for i in range(len(spec.seq_buckets)))  # one per length bucket (export/trt.py)
    if spec.kind == "network" and target == "trt":  # CUDA graphs for the batch sizes the profile optimises
        cfg.optimization.cuda.graphs = True
        for b in sorted({1, spec.opt_batch, spec.max_batch_size}):
            cfg.optimization.cuda.graph_spec.add(batch_size=b)
    if spec.batch_delay_us is not None and spec.max_batch_size > 0:
        cfg.dynamic_batching.max_queue_delay_microseconds = spec.batch_delay_us
    if spec.batch_delay_us is not None and spec.max_batch_size > 0 and spec.queue_batches is not None:
        queue = cfg.dynamic_batching.default_queue_policy
        queue.max_queue_size = spec.queue_batches * spec.max_batch_size
        queue.timeout_action = pb.ModelQueuePolicy.REJECT
        queue.default_timeout_microseconds = int(spec.queue_timeout_s * 1e6)
        queue.allow_timeout_override = True
    params = dict(parameters or {})
    if spec.kind == "network" and target == "cpu":
        params["intra_op_threads"] = str(spec.threads)
    if spec.kind == "ensemble" and spec.step_threads is not None:  # cpu: the fused ensemble's step sessions
        params["intra_op_threads"] = str(spec.step_threads)
    for k, v in sorted(params.items()):
        cfg.parameters[k].string_value = v
    return cfg


def to_pbtxt(cfg: pb.ModelConfig) -> str:
    return text_format.MessageToString(cfg)


def parse_pbtxt(text: str) -> pb.ModelConfig:
    return text_format.Parse(text, pb.ModelConfig())
