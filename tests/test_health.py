"""Self-healing against the real server: a python stub killed with -9 is noticed and reloaded."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from t2iguard.contract.errors import T2IGuardError
from t2iguard.export.render import parse_pbtxt
from t2iguard.triton.health import HealthMonitor
from t2iguard.triton.server import TritonServer, free_ports


def _stub_pids(server: TritonServer, model: str) -> list[int]:
    """The python-backend stub processes serving `model` for `server`, one per instance (their command lines name
    the model's model.py; they run in the server's process group, not in another server's over the same
    repository)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            group = os.getpgid(int(pid))
        except (OSError, ProcessLookupError):
            continue
        if group == server.proc.pid and any(part.endswith(f"/{model}/1/model.py".encode()) for part in cmd):
            pids.append(int(pid))
    if not pids:
        raise LookupError(f"no stub process for {model} in server {server.proc.pid}")
    return pids


def _probe(port: int, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def healing(repository):
    """One server (explicit model control) with its health monitor, shared by the kills below: each test leaves it
    healed (or fails), so the next kill starts from a healthy server."""
    from t2iguard.client import SafeT2IClient

    port = free_ports().http
    with TritonServer(repository, free_ports(), explicit=True) as server, \
            SafeT2IClient(server.grpc_url, timeout_s=60) as client:
        monitor = HealthMonitor(server.grpc_url, repository, port=port, period_s=2.0, heal=False).start()
        try:
            yield server, client, monitor, port
        finally:
            monitor.stop()


@pytest.mark.parametrize("model", ["prompt_guard", "watermark"])  # the screen (two processes on cpu), a stage
def test_a_killed_stub_fails_closed_is_seen_and_is_reloaded(healing, model):
    server, client, monitor, port = healing
    monitor.heal_enabled = False
    t0 = time.monotonic()
    while _probe(port, "/ready")[0] != 200 and time.monotonic() - t0 < 30:  # the canary's cache of a kill before
        time.sleep(0.5)
    assert _probe(port, "/ready")[0] == 200 and _probe(port, "/live")[0] == 200
    pids = _stub_pids(server, model)
    config = parse_pbtxt((server.repository / model / "config.pbtxt").read_text())
    assert len(pids) == config.instance_group[0].count
    for pid in pids:  # every instance: the model is down (one of two down fails every other request: docs)
        os.kill(pid, signal.SIGKILL)
    time.sleep(1.0)
    with pytest.raises(T2IGuardError):  # fails closed: no screen, no image
        client.generate("a red circle on a blue background", seed=1, steps=2)
    assert client.ready()  # Triton's own health does not see the dead stub ...
    code, body = _probe(port, "/ready")  # ... the canary does
    assert code == 503 and not body["ready"] and any(body["errors"].values())
    monitor.heal_enabled = True
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        try:
            if client.screen(["a cat on a sofa"])[0].decision == "allow" and \
                    client.generate("a red circle", seed=1, steps=2).image_png is not None:
                break
        except T2IGuardError:
            pass
        time.sleep(0.5)
    healed = time.monotonic() - t0
    assert healed < 30, f"not served again within 30 s of healing being on ({model})"
    assert any(model in suspects and ok for _, suspects, ok in monitor.healer.reloads)
    assert _probe(port, "/ready")[0] == 200
