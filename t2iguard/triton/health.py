"""Deep health and self-healing for a served repository.

Triton's python backend does not restart a stub process that died (an OOM kill, a `kill -9`), and its health
API does not see it: `/v2/health/ready` and the model's own ready state stay 200 while every request to the
model fails with "Stub process ... is not healthy". So:

- `Canary.check()` sends one small request through each guard ensemble (`prompt_guard`, `prompt_rewrite`,
  `image_guard`) and the orchestrator (`safe_t2i`, one denoising step); the result is cached for `cache_s`.
- `Healer.heal(result)` reloads, through Triton's model-control API (the server runs in explicit mode), the
  models the canary's errors name; when they name none it reloads every model the canary exercised.
- `HealthMonitor` runs both every `period_s` in a thread and serves `/ready` (the last canary passed) and
  `/live` (fewer than `max_failures` heals in a row failed) over HTTP, for Kubernetes' readiness and liveness
  probes: a broken replica leaves the Service at once, and a replica that cannot heal is restarted.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from t2iguard.contract import specs as S
from t2iguard.contract.profiles import load_profile

log = logging.getLogger(__name__)

#: model names inside Triton's error texts: "model 'x'", "Stub process 'x_0_1' is not healthy", "of 'x'"
_NAMED = re.compile(r"(?:model|process|instance)\s+'([A-Za-z0-9_]+?)(?:_\d+_\d+)?'")


@dataclass
class CanaryResult:
    """One canary round: per probe, None when it passed, else the error text."""

    checked_at: float
    errors: dict[str, str | None]
    seconds: float

    @property
    def ok(self) -> bool:
        return not any(self.errors.values())


def _bytes(text: str) -> grpcclient.InferInput:
    """`PROMPT` as a batch of one, [1, 1] BYTES (every probed model batches)."""
    data = np.array([[text.encode()]], dtype=np.object_)
    inp = grpcclient.InferInput(S.PROMPT, list(data.shape), "BYTES")
    inp.set_data_from_numpy(data)
    return inp


class Canary:
    """Small requests through every guard ensemble and the BLS of the server at `url`."""

    def __init__(self, url: str, repository: Path, cache_s: float = 5.0, timeout_s: float = 20.0):
        self.client = grpcclient.InferenceServerClient(url)
        self.profile = load_profile(repository)
        self.cache_s, self.timeout_s = cache_s, timeout_s
        self._last: CanaryResult | None = None
        self._lock = threading.Lock()

    def _probes(self) -> dict[str, list[grpcclient.InferInput]]:
        """{model: its inputs}. The requests name no outputs (all come back): Triton 2.51 ensembles report a
        deadlock when a request names only some of their outputs."""
        seed = grpcclient.InferInput(S.SEED, [1, 1], "INT64")
        seed.set_data_from_numpy(np.zeros((1, 1), np.int64))
        side = self.profile.image_size
        image = grpcclient.InferInput(S.IMAGE, [1, side, side, 3], "UINT8")
        image.set_data_from_numpy(np.full((1, side, side, 3), 128, np.uint8))
        steps = grpcclient.InferInput(S.STEPS, [1, 1], "INT32")
        steps.set_data_from_numpy(np.ones((1, 1), np.int32))
        return {
            S.PROMPT_GUARD: [_bytes("a red circle on a blue background")],
            S.PROMPT_REWRITE: [_bytes("a doctor at work"), seed],
            S.IMAGE_GUARD: [image],
            S.SAFE_T2I: [_bytes("a red circle on a blue background"), steps],
        }

    def check(self, fresh: bool = False) -> CanaryResult:
        """The last result when younger than `cache_s` (unless `fresh`), else a new round."""
        with self._lock:
            if not fresh and self._last and time.monotonic() - self._last.checked_at < self.cache_s:
                return self._last
            t0 = time.monotonic()
            errors: dict[str, str | None] = {}
            for model, inputs in self._probes().items():
                try:
                    self.client.infer(model, inputs, client_timeout=self.timeout_s)
                    errors[model] = None
                except InferenceServerException as e:
                    errors[model] = str(e.message() or e)
            self._last = CanaryResult(time.monotonic(), errors, time.monotonic() - t0)
            return self._last


@dataclass
class Healer:
    """Reloads the models a failed canary points at (explicit model control)."""

    client: grpcclient.InferenceServerClient
    failures_in_a_row: int = 0
    reloads: list[tuple[float, list[str], bool]] = field(default_factory=list)

    def suspects(self, result: CanaryResult) -> list[str]:
        """Models named in the canary's errors that the server knows; else the failing probes' own models and
        every python-backend or network model they run (the ensembles' members, the BLS's)."""
        known = {m["name"] for m in self.client.get_model_repository_index(as_json=True).get("models", [])}
        named = {m for text in result.errors.values() if text for m in _NAMED.findall(text)} & known
        ensembles = {m for m in known if self._platform(m) == "ensemble"}
        named -= ensembles  # a Triton ensemble has no process of its own: its members do (on the cpu target the
        # guards are python models with a process each: export/render.py)
        if named:
            return sorted(named)
        return sorted(known - ensembles)

    def _platform(self, model: str) -> str:
        """The model's platform as served ("ensemble", "onnxruntime_onnx", ...; "" for a backend model or one
        not loaded)."""
        try:
            return self.client.get_model_config(model, as_json=True)["config"].get("platform", "")
        except InferenceServerException:
            return ""

    def heal(self, result: CanaryResult) -> list[str]:
        """Reload the suspects; returns them. Counts a heal as failed when a reload raises."""
        suspects = self.suspects(result)
        ok = True
        for model in suspects:
            try:
                log.warning("reloading %s (canary: %s)", model, {k: v for k, v in result.errors.items() if v})
                # unload, then load: a load of an unchanged, loaded model is a no-op, and the dead stub would stay
                self.client.unload_model(model)
                deadline = time.monotonic() + 30
                while self.client.is_model_ready(model) and time.monotonic() < deadline:
                    time.sleep(0.2)
                self.client.load_model(model)
            except InferenceServerException as e:
                log.error("reload of %s failed: %s", model, e)
                ok = False
        self.failures_in_a_row = 0 if ok else self.failures_in_a_row + 1
        self.reloads.append((time.time(), suspects, ok))
        return suspects


class HealthMonitor:
    """Canary every `period_s`, heal on failure, and `/ready` + `/live` on `port` (0: no HTTP)."""

    def __init__(self, url: str, repository: Path, port: int = 0, period_s: float = 5.0, max_failures: int = 3,
                 heal: bool = True):
        self.canary = Canary(url, repository, cache_s=period_s)
        self.healer = Healer(grpcclient.InferenceServerClient(url))
        self.period_s, self.max_failures, self.heal_enabled = period_s, max_failures, heal
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="t2iguard-health", daemon=True)
        self._http = ThreadingHTTPServer(("0.0.0.0", port), self._handler()) if port else None

    @property
    def ready(self) -> bool:
        return self.canary.check().ok

    @property
    def live(self) -> bool:
        return self.healer.failures_in_a_row < self.max_failures

    def start(self) -> HealthMonitor:
        self._thread.start()
        if self._http:
            threading.Thread(target=self._http.serve_forever, name="t2iguard-health-http", daemon=True).start()
        return self

    def wait(self) -> None:
        """Until `stop()`."""
        while self._thread.is_alive():
            self._thread.join(1.0)

    def stop(self) -> None:
        self._stop.set()
        if self._http:
            self._http.shutdown()
            self._http.server_close()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                result = self.canary.check(fresh=True)
                if not result.ok and self.heal_enabled:
                    self.healer.heal(result)
                    self.canary.check(fresh=True)
            except Exception:  # noqa: BLE001 - the server itself is down: /ready says so, the loop goes on
                log.exception("health check failed")

    def _handler(self):
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path.startswith("/ready"):
                    result = monitor.canary.check()
                    code, body = (200 if result.ok else 503), {"ready": result.ok, "errors": result.errors}
                elif self.path.startswith("/live"):
                    code, body = (200 if monitor.live else 503), {
                        "live": monitor.live, "failed_heals_in_a_row": monitor.healer.failures_in_a_row}
                else:
                    code, body = 404, {"error": "GET /ready or /live"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # probes every few seconds: keep the log quiet
                pass

        return Handler
