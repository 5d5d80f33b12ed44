"""`t2iguard report`: the audit trail read back for an operator.

Counts by decision and by category over a time window, refusal and regeneration rates, error outcomes, the
clients refused most, latency percentiles; as a table, JSON, CSV (one row per client) and a plot.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import datetime

import numpy as np

from t2iguard.runtime.audit import AuditLog


def summarise(log: AuditLog, since: datetime | None = None, top: int = 10) -> dict:
    """Figures of `log.events` (already filtered to the window); rates are shares of answered requests
    (those with a decision), errors are counted apart by outcome."""
    events = log.events
    answered = [e for e in events if "decision" in e]
    decisions = Counter(e["decision"] for e in answered)
    categories = Counter(c for e in answered for c in e.get("categories", []))
    errors = Counter(e["outcome"] for e in events if "decision" not in e)
    refused_by_client = Counter(e["client"] for e in answered if e["decision"] == "refused")
    requests_by_client = Counter(e["client"] for e in events)
    latency = np.array([e["latency_ms"] for e in answered], dtype=np.float64)
    n = len(answered)
    return {
        "since": since.isoformat() if since else None,
        "first": events[0]["ts"] if events else None,
        "last": events[-1]["ts"] if events else None,
        "events": len(events),
        "torn_lines": log.torn,
        "answered": n,
        "decisions": dict(decisions.most_common()),
        "categories": dict(categories.most_common()),
        "errors": dict(errors.most_common()),
        "refusal_rate": round(decisions["refused"] / n, 4) if n else None,
        "regeneration_rate": round(sum(bool(e.get("regenerated")) for e in answered) / n, 4) if n else None,
        "latency_ms": {f"p{q}": round(float(np.percentile(latency, q)), 1) for q in (50, 95, 99)} if n else {},
        "policy_versions": dict(Counter(e["policy_version"] for e in answered if "policy_version" in e)),
        "clients": [{"client": c, "requests": requests_by_client[c], "refused": refused_by_client[c]}
                    for c, _ in sorted(requests_by_client.items(),
                                       key=lambda kv: (-refused_by_client[kv[0]], -kv[1], kv[0]))[:top]],
    }


def clients_csv(summary: dict) -> str:
    """One row per client of the summary: client, requests, refused."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["client", "requests", "refused"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary["clients"])
    return out.getvalue()


def plot(summary: dict, path) -> None:
    """Two bar charts: requests by decision (and error outcome), flagged categories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    outcomes = {**summary["decisions"], **{f"error: {k}": v for k, v in summary["errors"].items()}}
    a.bar(list(outcomes), list(outcomes.values()), color="#4c72b0")
    a.set_title(f"requests ({summary['events']})")
    a.tick_params(axis="x", rotation=30)
    b.barh(list(summary["categories"])[::-1], list(summary["categories"].values())[::-1], color="#c44e52")
    b.set_title("flagged categories")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
