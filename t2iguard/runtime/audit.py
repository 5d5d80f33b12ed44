"""The audit trail: one JSON event per request (who, decision, categories, latency).

The default sink appends JSON lines to a file; each event is written with a single `write` on
a file opened with O_APPEND, so concurrent orchestrator instances do not interleave lines.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from t2iguard.contract.report import SafetyReport


def audit_event(report: SafetyReport | None, *, request_id: str, client: str, outcome: str,
                latency_ms: float, error: str | None = None) -> dict:
    """The event for one request; `report` is None when the request ended in an error."""
    event = {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "request_id": request_id,
        "client": client,
        "outcome": outcome,
        "latency_ms": round(latency_ms, 1),
    }
    if report is not None:
        event.update(
            decision=report.decision,
            categories=sorted(set(report.prompt_flagged) | {c for a in report.attempts for c in a.flagged}),
            attempts=len(report.attempts),
            policy_version=report.policy_version,
        )
    if error is not None:
        event["error"] = error
    return event


class JsonlAuditSink:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: dict) -> None:
        line = (json.dumps(event, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
