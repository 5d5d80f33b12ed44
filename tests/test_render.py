"""Every rendered config parses as a Triton ModelConfig; names and signatures match across targets."""

import pytest
from tritonclient.grpc import model_config_pb2 as pb

from t2iguard.contract.specs import build_specs
from t2iguard.export.render import TARGETS, parse_pbtxt, render, to_pbtxt


@pytest.fixture(scope="module")
def specs(profile):
    return build_specs(profile)


@pytest.mark.parametrize("target", TARGETS)
def test_configs_parse_as_model_config(specs, target):
    for spec in specs.values():
        cfg = parse_pbtxt(to_pbtxt(render(spec, target, {"profile": "tiny"})))
        assert cfg.name == spec.name
        assert [i.name for i in cfg.input] == [t.name for t in spec.inputs]
        assert [o.name for o in cfg.output] == [t.name for t in spec.outputs]
        assert [list(i.dims) for i in cfg.input] == [[-1 if a in t.variable else d for a, d in enumerate(t.dims)]
                                                     for t in spec.inputs]


def test_signatures_identical_across_targets(specs):
    for spec in specs.values():
        sigs = set()
        for target in TARGETS:
            cfg = render(spec, target)
            sigs.add(tuple((i.name, i.data_type, tuple(i.dims)) for i in [*cfg.input, *cfg.output]))
        assert len(sigs) == 1, spec.name


def test_platform_per_target(specs):
    unet = specs["unet"]
    assert render(unet, "cpu").backend == "python"
    assert render(unet, "onnx").platform == "onnxruntime_onnx"
    trt = render(unet, "trt")
    assert trt.platform == "tensorrt_plan" and trt.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert render(specs["safe_t2i"], "trt").backend == "python"
    assert trt.optimization.cuda.graphs and [g.batch_size for g in trt.optimization.cuda.graph_spec] == [
        1, 3, unet.max_batch_size]


def test_tensorrt_profiles_come_from_the_specs(specs):
    from t2iguard.export.trt import profile_shapes

    shapes = profile_shapes(specs["unet"])
    assert shapes["SAMPLE"] == [[1, *specs["unet"].input("SAMPLE").dims], [3, *specs["unet"].input("SAMPLE").dims],
                                [specs["unet"].max_batch_size, *specs["unet"].input("SAMPLE").dims]]
    assert set(shapes) == {t.name for t in specs["unet"].inputs}
    assert all(v[0][0] == 1 and v[1][0] == 1 for v in profile_shapes(specs["image_classifier"]).values())


def test_engine_metadata_is_checked_before_reuse(tmp_path, specs):
    import json
    from dataclasses import asdict

    from t2iguard.export.trt import ENGINE_META, EngineMeta, check_engine, profile_shapes

    want = EngineMeta(tensorrt="10.5.0", gpu="NVIDIA H100", precision="fp16", onnx_sha256="ab",
                      profile=profile_shapes(specs["unet"]))
    plan = tmp_path / "model.plan"
    assert check_engine(plan, want) == "no engine yet"
    plan.write_bytes(b"engine")
    (tmp_path / ENGINE_META).write_text(json.dumps(asdict(want)))
    assert check_engine(plan, want) is None
    other = EngineMeta(**{**asdict(want), "tensorrt": "11.4.0"})
    assert "tensorrt changed" in check_engine(plan, other)


def test_stateless_models_batch_dynamically(specs):
    for spec in specs.values():
        if spec.kind in ("network", "python") and spec.name != "safe_t2i":
            cfg = render(spec, "cpu")
            assert cfg.max_batch_size > 0 and cfg.HasField("dynamic_batching"), spec.name
    bls = render(specs["safe_t2i"], "cpu")
    assert bls.instance_group[0].count >= 2


@pytest.mark.parametrize("target", TARGETS)
def test_only_the_entry_point_sheds_overload(specs, target):
    """The orchestrator bounds its queue and its wait (one request per execution, its queue at most 4 per instance):
    beyond them Triton answers UNAVAILABLE. No model behind it has a queue policy: under one Triton 2.51's batcher
    stops prefetching, and a one-instance model called back to back (the UNet by the BLS, the screen by a client)
    then sleeps 500 ms now and again (deploy/perf/RESULTS.md)."""
    bls = parse_pbtxt(to_pbtxt(render(specs["safe_t2i"], target, {})))
    queue = bls.dynamic_batching.default_queue_policy
    assert bls.max_batch_size == 1 and bls.dynamic_batching.max_queue_delay_microseconds == 0
    assert 0 < queue.max_queue_size <= 4 * bls.instance_group[0].count
    assert queue.timeout_action == pb.ModelQueuePolicy.REJECT and queue.default_timeout_microseconds > 0
    batched = [s for s in specs.values() if s.batch_delay_us is not None and s.max_batch_size > 0
               and s.name != "safe_t2i"]
    assert batched
    for spec in batched:
        cfg = parse_pbtxt(to_pbtxt(render(spec, target, {})))
        assert not cfg.dynamic_batching.HasField("default_queue_policy"), spec.name


def test_ensembles_run_in_one_process_on_the_cpu_target(specs):
    """On `cpu` every step is a python-backend model: an ensemble there is one dynamically batched python model
    running its steps (no hops between stub processes); elsewhere a Triton ensemble of the same steps."""
    ensembles = [s for s in specs.values() if s.kind == "ensemble"]
    assert {s.name for s in ensembles} == {"prompt_guard", "prompt_rewrite", "image_guard"}
    for spec in ensembles:
        cpu = render(spec, "cpu", {"profile": "tiny"})
        assert cpu.backend == "python" and not cpu.platform and cpu.HasField("dynamic_batching"), spec.name
        assert not cpu.HasField("ensemble_scheduling")
        for target in ("onnx", "trt"):
            other = render(spec, target)
            assert other.platform == "ensemble" and [s.model_name for s in other.ensemble_scheduling.step] == [
                step.model for step in spec.steps]


def test_unet_batch_fits_concept_guidance(specs, profile):
    # 3 rows per request (uncond, cond, safety concept) for every request of a full batch
    assert specs["unet"].max_batch_size >= 3 * profile.max_batch


def test_ensembles_are_wired(specs):
    for spec in specs.values():
        if spec.kind != "ensemble":
            continue
        available = {t.name for t in spec.inputs}
        for step in spec.steps:
            inner = specs[step.model]
            assert set(step.inputs) <= available, (spec.name, step.model)
            assert set(step.inputs) == {t.name for t in inner.inputs if not t.optional}
            assert set(step.outputs) <= {t.name for t in inner.outputs}
            available |= set(step.outputs)
        assert {t.name for t in spec.outputs} <= available


def test_unknown_target(specs):
    with pytest.raises(ValueError, match="unknown target"):
        render(specs["unet"], "tpu")


def test_the_fused_screen_runs_two_single_thread_instances_on_cpu(specs):
    """cpu: prompt_guard is two stub processes whose classifier runs a batch of several rows on one intra-op
    thread each (the ensemble's `step_threads`, read by `EnsembleModel`); the other fused ensembles keep their
    steps' threads, and the other targets render a Triton ensemble, which has neither."""
    guard = render(specs["prompt_guard"], "cpu")
    assert guard.instance_group[0].count == 2 and guard.parameters["intra_op_threads"].string_value == "1"
    assert "intra_op_threads" not in render(specs["prompt_rewrite"], "cpu").parameters
    for target in ("onnx", "trt"):
        cfg = render(specs["prompt_guard"], target)
        assert cfg.platform == "ensemble" and not cfg.instance_group and not cfg.parameters
