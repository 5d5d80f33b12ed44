"""`t2iguard build` for every target, `t2iguard serve` start/stop, and pipeline parity local vs served."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from t2iguard.contract import specs as S
from t2iguard.contract.specs import build_specs
from t2iguard.export.render import parse_pbtxt
from t2iguard.export.trt import gpu_name
from t2iguard.runtime.pipeline import Guidance, SafeT2IPipeline, parse_request
from t2iguard.runtime.runners import LocalRunner
from t2iguard.triton.server import SHM_DIR, TritonServer, free_ports


@pytest.mark.parametrize("target", ["onnx", "trt"])
def test_build_target_renders_parseable_repository(target, repository, tmp_path, profile):
    out = tmp_path / target
    r = subprocess.run([sys.executable, "-m", "t2iguard.cli.app", "build", "--target", target, "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    if target == "trt" and gpu_name() is None:  # configs rendered, and the command says why no engines
        assert r.returncode == 1 and "TensorRT engines not built" in r.stderr and "no CUDA GPU" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
    platform = {"onnx": "onnxruntime_onnx", "trt": "tensorrt_plan"}[target]
    for name, spec in build_specs(profile).items():
        cfg = parse_pbtxt((out / name / "config.pbtxt").read_text())
        if spec.kind == "network":
            assert cfg.platform == platform and (out / name / "1" / "model.onnx").exists()
            assert not (out / name / "1" / "model.py").exists()
    info = json.loads((out / "build.json").read_text())
    assert info["target"] == target


def test_build_rejects_unknown_target(tmp_path):
    r = subprocess.run([sys.executable, "-m", "t2iguard.cli.app", "build", "--target", "tpu", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown target 'tpu'" in r.stderr


def one_model_repository(repository, out):
    """The built repository's text_normalize alone (and the files the server reads): a server up in seconds, for
    tests of the server's own lifecycle rather than of the stack."""
    shutil.copytree(repository / "text_normalize", out / "text_normalize")
    for name in ("profile.json", "build.json", "policy.yaml"):
        shutil.copy2(repository / name, out / name)
    return out


def test_serve_starts_and_stops_on_sigterm(repository, tmp_path):
    ports = free_ports()
    proc = subprocess.Popen([sys.executable, "-m", "t2iguard.cli.app", "serve", "--repository",
                             str(one_model_repository(repository, tmp_path / "repo")),
                             "--grpc-port", str(ports.grpc), "--http-port", str(ports.http),
                             "--metrics-port", str(ports.metrics), "--health-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # blocks until the CLI logs; it logs once Triton is ready
        while first and not first.startswith("ready in"):
            first = proc.stderr.readline()
        client = grpcclient.InferenceServerClient(f"localhost:{ports.grpc}")
        assert client.is_server_ready()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
        err = first + rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"gRPC localhost:{ports.grpc}" in err and "shutting down" in err
    with pytest.raises(Exception):  # noqa: B017 - the port is closed
        client.is_server_ready()


def test_a_killed_server_s_shared_memory_is_removed_on_stop(repository, tmp_path):
    """Each server names its python-backend shared memory with its own prefix, so a server killed with -9 (its
    stubs with it, as the OOM killer would) leaves nothing in /dev/shm once `stop()` has run: a run that kills
    servers must not fill /dev/shm until a new stub cannot start (CI's `boost::interprocess::lock_exception`)."""
    server = TritonServer(one_model_repository(repository, tmp_path / "repo"), free_ports())
    server.start()
    try:
        regions = sorted(SHM_DIR.glob(f"{server.shm_prefix}*"))
        assert regions, "the python backend's regions carry the server's own prefix"
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=30)
        assert all(r.exists() for r in regions), "a killed server leaves its regions behind ..."
    finally:
        server.stop()
    assert not [r for r in regions if r.exists()], "... and stop() removes them"


def test_local_pipeline_matches_served(repository, profile, policy, client):
    """The same pipeline code driven in-process (onnxruntime) and through Triton agrees."""
    raw = {"PROMPT": np.array([b"image of a ceo"], dtype=np.object_), "SEED": np.array([9], np.int64),
           "STEPS": np.array([4], np.int32)}
    local = SafeT2IPipeline(LocalRunner(repository, profile, policy), profile, policy, "trained (ShapeWorld)")
    png, report = local(parse_request(raw, profile, "local"))
    served = client.generate("image of a ceo", seed=9, steps=4)
    assert report.decision == served.decision == "rewritten"
    assert report.rewritten_prompt == served.report.rewritten_prompt
    assert report.prompt_scores == served.report.prompt_scores
    import io

    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png))).astype(int)
    assert np.abs(a - served.image().astype(int)).max() <= 2  # float summation order only


class _RecordingRunner:
    """A real LocalRunner that also records the UNet's timesteps (instrumentation, not a stand-in)."""

    def __init__(self, runner: LocalRunner):
        self.runner, self.unet_timesteps = runner, []

    def infer(self, model, inputs, outputs):
        if model == S.UNET:
            self.unet_timesteps.append(int(inputs[S.TIMESTEP][0, 0]))
        return self.runner.infer(model, inputs, outputs)


def test_edit_regeneration_strength_starts_from_the_noised_source(repository, profile, policy):
    """Below strength 1 an edit denoises only the last int(strength * steps) steps of the schedule, from the
    source latent noised that far (diffusers' inpainting `strength`): the masked region stays nearer the source."""
    from t2iguard.evaluation.regeneration import edit_requests

    runner = _RecordingRunner(LocalRunner(repository, profile, policy))
    pipe = SafeT2IPipeline(runner, profile, policy, "trained (ShapeWorld)")
    inside = {}
    for (req, _), seed in zip(edit_requests(3, seed=123), range(3), strict=True):
        req = replace(req, steps=15, seed=seed)
        cond, uncond, _ = pipe.encode_prompt(req.prompt, "")
        masked = req.mask > 0
        for strength, runs in ((1.0, 15), (0.9, 13), (0.5, 7), (0.2, 3)):
            runner.unet_timesteps.clear()
            image = pipe.generate(req, cond, uncond, Guidance("reseed", None, [], strength))
            assert runner.unet_timesteps == pipe.scheduler.timesteps(15)[-runs:].tolist()
            diff = np.abs(image[masked].astype(int) - req.init_image[masked]).mean()
            inside.setdefault(strength, []).append(diff)
    mean = {s: float(np.mean(v)) for s, v in inside.items()}
    assert mean[0.2] < mean[0.5] < mean[1.0], mean
