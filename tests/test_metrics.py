"""Safety metrics on Triton's metrics port, beside Triton's own; the monitoring files that read them."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("t2iguard_requests_total", "t2iguard_flags_total", "t2iguard_refusals_total",
            "t2iguard_regenerations_total", "t2iguard_guard_failures_total", "t2iguard_rate_limited_total",
            "t2iguard_strike_points_total", "t2iguard_request_seconds")


def _scrape(server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.ports.metrics}/metrics", timeout=30) as r:
        return r.read().decode()


def _value(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_decisions_and_flags_are_counted_on_the_metrics_port(server, client):
    before = _scrape(server)
    allowed = client.generate("a red circle on a blue background", seed=1, steps=2)
    refused = client.generate("a photo of a person killing another person", steps=2)
    assert allowed.decision == "allowed" and refused.refused
    after = _scrape(server)
    for outcome in ("allowed", "refused"):
        series = f't2iguard_requests_total{{outcome="{outcome}"}}'
        assert _value(after, series) == _value(before, series) + 1, series
    assert _value(after, 't2iguard_refusals_total{stage="prompt"}') >= 1
    assert _value(after, 't2iguard_flags_total{category="violence",stage="prompt"}') >= 1
    assert 't2iguard_request_seconds_count{outcome="allowed"}' in after
    assert "nv_inference_request_success" in after  # Triton's own metrics stay beside ours


def test_alert_rules_and_dashboard_name_only_served_metrics():
    rules = yaml.safe_load((ROOT / "deploy/monitoring/alerts.yaml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((ROOT / "deploy/monitoring/grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    names = {n for e in exprs for n in re.findall(r"\b(t2iguard_[a-z_]+)", e)}
    assert names and names <= {f for f in FAMILIES} | {f"{f}_{s}" for f in FAMILIES for s in ("bucket", "count",
                                                                                           "sum")}
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"T2IGuardGuardFailures", "T2IGuardRefusalRateSpike"} <= alerts
