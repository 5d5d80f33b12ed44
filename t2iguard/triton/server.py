"""Run the real `tritonserver` that the `nvidia-pytriton` wheel ships (Triton 2.51, python backend).

The wheel's python backend needs the stub built for this interpreter's version
(`python_backend_stubs/3.X`) next to `libtriton_python.so`; we lay that out in a private
backends directory. The stub runs this interpreter's environment (the venv's `bin` first on PATH),
so python models import `t2iguard` and numpy<2 from it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ports:
    grpc: int = 8001
    http: int = 8000
    metrics: int = 8002


def _dist() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent / "tritonserver"


def _libs() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"


def prepare_backends(workdir: Path) -> Path:
    """Copy the python backend beside this interpreter's stub; returns the backends directory."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = _dist() / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"nvidia-pytriton ships no python backend stub for Python {version}")
    backends = workdir / "backends"
    shutil.copytree(_dist() / "backends", backends, dirs_exist_ok=True)
    shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
    return backends


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    libdirs = [str(_libs())]
    libpython = sysconfig.get_config_var("LIBDIR")
    if libpython and any(Path(libpython).glob("libpython3*.so*")):
        libdirs.insert(0, libpython)  # this interpreter's own libpython for the stub
    env["LD_LIBRARY_PATH"] = ":".join(libdirs + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p])
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


#: Where the python backend's stubs exchange tensors with the server (one region per stub, 8 MB to start)
SHM_DIR = Path("/dev/shm")


def shm_free() -> str:
    """`/dev/shm` space, for errors: a stub that cannot map its region dies with a boost lock_exception."""
    st = os.statvfs(SHM_DIR)
    return f"{SHM_DIR}: {st.f_bavail * st.f_frsize >> 20} MiB free of {st.f_blocks * st.f_frsize >> 20} MiB"


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM tritonserver when its parent dies, so a killed
    `t2iguard serve` (or test run) never leaves an orphan server holding the ports."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class TritonServer:
    """A running tritonserver over `repository`. Use as a context manager; `stop()` is idempotent.

    `explicit=True` starts in explicit model-control mode with every model loaded, so models can
    be unloaded/reloaded over gRPC (tests use this to exercise fail-closed behaviour)."""

    def __init__(self, repository: Path | str, ports: Ports = Ports(), log_path: Path | None = None,
                 explicit: bool = False, verbose: bool = False):
        self.repository = Path(repository).resolve()
        self.ports, self.explicit, self.verbose = ports, explicit, verbose
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self._workdir: Path | None = None
        #: this server's python-backend shared-memory regions are named `<shm_prefix><uuid>`: `stop()` removes
        #: them, since a stub or server that was killed (SIGKILL, OOM) leaves its regions in /dev/shm, and a
        #: test run that kills servers would otherwise fill it until a new stub cannot start
        self.shm_prefix = f"t2iguard_{uuid.uuid4().hex[:12]}_"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.ports.grpc}"

    def start(self, timeout_s: float = 300.0) -> float:
        """Start and wait until ready; returns seconds to ready. Raises RuntimeError with the log tail."""
        t0 = time.perf_counter()
        self._workdir = Path(tempfile.mkdtemp(prefix="t2iguard-triton-"))
        backends = prepare_backends(self._workdir)
        cmd = [
            str(_dist() / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--cache-directory={_dist() / 'caches'}",
            f"--grpc-port={self.ports.grpc}", f"--http-port={self.ports.http}",
            f"--metrics-port={self.ports.metrics}",
            "--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
            "--exit-timeout-secs=10", "--backend-config=python,shm-default-byte-size=8388608",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--log-verbose=1" if self.verbose else "--log-verbose=0",
        ]
        if self.explicit:
            cmd += ["--model-control-mode=explicit", "--load-model=*"]
        self.log_path = self.log_path or self._workdir / "tritonserver.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=server_env(),
                                     start_new_session=True, preexec_fn=_die_with_parent)
        import tritonclient.grpc as grpcclient

        client = grpcclient.InferenceServerClient(self.grpc_url)
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.proc.returncode} ({shm_free()}):\n"
                                   f"{self.log_tail()}")
            try:
                if client.is_server_ready():
                    return time.perf_counter() - t0
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"tritonserver not ready after {timeout_s:.0f}s ({shm_free()}):\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait(self) -> int:
        return self.proc.wait() if self.proc else 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            for region in SHM_DIR.glob(f"{self.shm_prefix}*"):
                region.unlink(missing_ok=True)
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def free_ports() -> Ports:
    """Three free loopback ports (HTTP, gRPC, metrics) for a server of this process's own."""
    socks = [socket.socket() for _ in range(3)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = Ports(*(s.getsockname()[1] for s in socks))
    for s in socks:
        s.close()
    return ports
