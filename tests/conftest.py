"""Shared fixtures: the built `tiny` CPU repository and one real tritonserver for the session."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from t2iguard.contract.policy import load_policy
from t2iguard.export.build import build_repository
from t2iguard.export.tiny import tiny_profile
from t2iguard.triton.server import TritonServer, free_ports

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def profile():
    return tiny_profile()


@pytest.fixture(scope="session")
def policy():
    return load_policy()


@pytest.fixture(scope="session")
def repository() -> Path:
    """The tiny CPU repository, built once (reused when its sources are unchanged); $T2IGUARD_TEST_REPOSITORY
    puts it elsewhere (two checkouts testing side by side)."""
    logging.getLogger("torch").setLevel(logging.ERROR)
    out = Path(os.environ.get("T2IGUARD_TEST_REPOSITORY", ROOT / "build" / "repository" / "cpu"))
    return build_repository("tiny", "cpu", out).path


@pytest.fixture(scope="session")
def server(repository: Path, tmp_path_factory):
    """A real tritonserver over the repository, explicit model control (tests unload models)."""
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    srv = TritonServer(repository, free_ports(), log_path=log, explicit=True)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.grpc_url


@pytest.fixture()
def client(url):
    from t2iguard.client import SafeT2IClient

    with SafeT2IClient(url, client_id="pytest") as c:
        yield c


@pytest.fixture()
def triton(url):
    import tritonclient.grpc as grpcclient

    c = grpcclient.InferenceServerClient(url)
    yield c
    c.close()
