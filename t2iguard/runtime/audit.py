"""The audit trail: one JSON event per request (who, decision, categories, scores, policy version, timings).

The sink appends JSON lines to a file. Each event is one `write` on a file opened with O_APPEND (concurrent
orchestrator instances do not interleave lines) followed by `fsync`, and the orchestrator writes the event
before it answers: an answered request's event is on disk even if the server is killed the next moment.
A `kill -9` in the middle of a write can leave a torn last line; `read_events` skips it and says so, and the
next write starts on a fresh line. Images are never audited; the prompt is kept as the retention setting says.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from t2iguard.contract.policy import PromptRetention
from t2iguard.contract.report import SafetyReport


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit_event(report: SafetyReport | None, *, request_id: str, client: str, outcome: str,
                latency_ms: float, error: str | None = None, prompt: PromptRetention = "sha256") -> dict:
    """The event for one request; `report` is None when the request ended in an error.

    `scores` is each category's highest score over the prompt screen and every image attempt;
    `timings_ms` the report's per-stage timings."""
    event = {"ts": _now(), "request_id": request_id, "client": client, "outcome": outcome,
             "latency_ms": round(latency_ms, 1)}
    if report is not None:
        scores = dict(report.prompt_scores)
        for attempt in report.attempts:
            for c, s in attempt.image_scores.items():
                scores[c] = max(scores.get(c, 0.0), s)
        event.update(
            decision=report.decision,
            categories=sorted(set(report.prompt_flagged) | {c for a in report.attempts for c in a.flagged}),
            scores={c: round(s, 4) for c, s in sorted(scores.items())},
            attempts=len(report.attempts),
            regenerated=len(report.attempts) > 1,
            policy_version=report.policy_version,
            timings_ms=report.timings_ms,
        )
        if prompt == "sha256":
            event["prompt_sha256"] = hashlib.sha256(report.prompt.encode("utf-8")).hexdigest()
        elif prompt == "full":
            event["prompt"] = report.prompt
    if error is not None:
        event["error"] = error
    return event


class JsonlAuditSink:
    """Durable JSON-lines sink: `write` returns once the event is on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fresh_line = not _ends_torn(self.path)

    def write(self, event: dict) -> None:
        line = (json.dumps(event, sort_keys=True) + "\n").encode("utf-8")
        if not self._fresh_line:  # a torn line left by a killed writer: end it, so this event parses
            line, self._fresh_line = b"\n" + line, True
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _ends_torn(path: Path) -> bool:
    """The file's last byte is not a newline (a write cut short)."""
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:  # missing or empty
        return False


@dataclass
class AuditLog:
    """Events read back from an audit file, and the lines that did not parse (torn by a kill)."""

    events: list[dict]
    torn: int


def read_events(path: str | Path, since: datetime | None = None) -> AuditLog:
    """Every event of `path` (at or after `since`, UTC, when given), in file order."""
    events, torn = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                torn += 1
                continue
            if since is None or _parse_ts(event["ts"]) >= since:
                events.append(event)
    return AuditLog(events, torn)


def _parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
