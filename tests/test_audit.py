"""The audit trail is durable: every request a client saw answered has its event, even after `kill -9`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from typer.testing import CliRunner

from t2iguard.cli.app import app
from t2iguard.runtime.audit import JsonlAuditSink, read_events
from t2iguard.triton.server import TritonServer, free_ports


def test_a_torn_last_line_is_skipped_and_the_next_event_parses(tmp_path):
    path = tmp_path / "audit.jsonl"
    JsonlAuditSink(path).write({"ts": "2026-12-03T10:00:00.000Z", "request_id": "a", "client": "x",
                                "outcome": "ok", "latency_ms": 1.0})
    with open(path, "ab") as f:  # what a kill -9 in the middle of os.write leaves
        f.write(b'{"ts": "2026-12-03T10:00:01.000Z", "request_id": "b", "cli')
    JsonlAuditSink(path).write({"ts": "2026-12-03T10:00:02.000Z", "request_id": "c", "client": "x",
                                "outcome": "ok", "latency_ms": 1.0})
    log = read_events(path)
    assert [e["request_id"] for e in log.events] == ["a", "c"] and log.torn == 1


def test_report_counts_decisions_categories_and_clients(tmp_path):
    path = tmp_path / "audit.jsonl"
    sink = JsonlAuditSink(path)
    rows = [("u1", "refused", ["violence"], False), ("u1", "refused", ["hate"], False),
            ("u2", "allowed", [], True), ("u2", "rewritten", [], False)]
    for i, (client, decision, cats, regen) in enumerate(rows):
        sink.write({"ts": f"2026-12-03T10:00:0{i}.000Z", "request_id": str(i), "client": client, "outcome": "ok",
                    "latency_ms": 10.0 * (i + 1), "decision": decision, "categories": cats, "regenerated": regen,
                    "policy_version": "v1"})
    sink.write({"ts": "2026-12-03T10:00:09.000Z", "request_id": "9", "client": "u3", "outcome": "bad-input",
                "latency_ms": 0.1, "error": "`PROMPT` is empty"})
    res = CliRunner().invoke(app, ["report", "--audit", str(path), "--json", "--csv", str(tmp_path / "c.csv"),
                                   "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["decisions"] == {"refused": 2, "allowed": 1, "rewritten": 1}
    assert summary["categories"] == {"violence": 1, "hate": 1} and summary["errors"] == {"bad-input": 1}
    assert summary["refusal_rate"] == 0.5 and summary["regeneration_rate"] == 0.25
    assert summary["clients"][0] == {"client": "u1", "requests": 2, "refused": 2}
    assert (tmp_path / "c.csv").read_text().splitlines()[1] == "u1,2,2"
    assert (tmp_path / "p.png").stat().st_size > 1000
    later = CliRunner().invoke(app, ["report", "--audit", str(path), "--json", "--since", "2026-12-03T10:00:03Z"])
    assert json.loads(later.output)["events"] == 2
    bad = CliRunner().invoke(app, ["report", "--audit", str(path), "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since" in bad.output


def test_every_answered_request_is_audited_after_kill_9(repository):
    """Load of N requests on a server of its own; kill -9 (server and stubs) once a third are answered."""
    from t2iguard.client import AsyncSafeT2IClient

    n, audit = 24, repository / "audit.jsonl"
    answered: list[str] = []
    server = TritonServer(repository, free_ports())
    server.start()
    try:
        async def load() -> None:
            async with AsyncSafeT2IClient(server.grpc_url, timeout_s=120, client_id="kill-test") as client:
                async def one(i: int) -> None:
                    rid = f"kill-{os.getpid()}-{time.time_ns()}-{i}"
                    try:
                        res = await client.generate("a red circle on a blue background", seed=i, steps=2,
                                                    request_id=rid)
                    except Exception:  # noqa: BLE001 - cut off by the kill: not answered, nothing promised
                        return
                    answered.append(res.report.request_id)
                    if len(answered) == n // 3:
                        os.killpg(server.proc.pid, signal.SIGKILL)

                sem = asyncio.Semaphore(6)

                async def bounded(i: int) -> None:
                    async with sem:
                        await one(i)

                await asyncio.gather(*(bounded(i) for i in range(n)))

        asyncio.run(load())
    finally:
        server.stop()
    assert n // 3 <= len(answered) < n, "the kill came too late to cut the load"
    seen = {e["request_id"] for e in read_events(audit).events}
    assert set(answered) <= seen, f"answered but not audited: {sorted(set(answered) - seen)}"
