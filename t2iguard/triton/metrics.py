"""Safety metrics of the orchestrator, served on Triton's metrics port beside its own (`pb_utils.MetricFamily`).

| metric | kind | labels | counts |
| --- | --- | --- | --- |
| t2iguard_requests_total | counter | outcome: a decision or an error kind (errors.py) | requests |
| t2iguard_flags_total | counter | stage (prompt, image), category | flagged categories |
| t2iguard_refusals_total | counter | stage (prompt, image) | refused requests |
| t2iguard_regenerations_total | counter | attempt (2, 3, ...) | regeneration attempts |
| t2iguard_guard_failures_total | counter | - | requests failed closed by a safety component |
| t2iguard_rate_limited_total | counter | - | requests refused by a rate limit or a suspension |
| t2iguard_strike_points_total | counter | - | strike points given |
| t2iguard_request_seconds | histogram | outcome | request latency |

deploy/monitoring/ holds the Grafana dashboard and the Prometheus alert rules over these.
"""

from __future__ import annotations

from t2iguard.contract.report import SafetyReport

LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]


class SafetyMetrics:
    """The families above, with one `Metric` per label set made on first use. `pb` is the stub's
    `triton_python_backend_utils` module (only a stub has it)."""

    def __init__(self, pb):
        counter = pb.MetricFamily.COUNTER
        self._families = {
            "requests": pb.MetricFamily("t2iguard_requests_total", "safe_t2i requests by outcome", counter),
            "flags": pb.MetricFamily("t2iguard_flags_total", "flagged categories by stage", counter),
            "refusals": pb.MetricFamily("t2iguard_refusals_total", "refused requests by stage", counter),
            "regenerations": pb.MetricFamily("t2iguard_regenerations_total", "regeneration attempts", counter),
            "guard_failures": pb.MetricFamily("t2iguard_guard_failures_total",
                                              "requests failed closed by a safety component", counter),
            "rate_limited": pb.MetricFamily("t2iguard_rate_limited_total",
                                            "requests refused by a rate limit or a suspension", counter),
            "strikes": pb.MetricFamily("t2iguard_strike_points_total", "strike points given", counter),
            "seconds": pb.MetricFamily("t2iguard_request_seconds", "safe_t2i request latency",
                                       pb.MetricFamily.HISTOGRAM),
        }
        self._metrics: dict[tuple, object] = {}

    def _metric(self, family: str, **labels: str):
        key = (family, *sorted(labels.items()))
        if key not in self._metrics:
            extra = {"buckets": LATENCY_BUCKETS} if family == "seconds" else {}
            self._metrics[key] = self._families[family].Metric(labels=labels, **extra)
        return self._metrics[key]

    def request(self, outcome: str, seconds: float, report: SafetyReport | None = None) -> None:
        """One finished request: its outcome (a decision or an error kind), latency and report."""
        self._metric("requests", outcome=outcome).increment(1)
        self._metric("seconds", outcome=outcome).observe(seconds)
        if outcome == "guard-failure":
            self._metric("guard_failures").increment(1)
        elif outcome == "rate-limited":
            self._metric("rate_limited").increment(1)
        if report is None:
            return
        for category in report.prompt_flagged:
            self._metric("flags", stage="prompt", category=category).increment(1)
        for attempt in report.attempts:
            for category in attempt.flagged:
                self._metric("flags", stage="image", category=category).increment(1)
            if attempt.attempt > 1:
                self._metric("regenerations", attempt=str(attempt.attempt)).increment(1)
        if report.refusal is not None:
            self._metric("refusals", stage=report.refusal.stage).increment(1)

    def strike(self, points: float) -> None:
        self._metric("strikes").increment(points)
