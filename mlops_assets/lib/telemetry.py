"""The scoring service's /metrics read into numbers monitoring can judge (no Dagster here).

A scrape gives cumulative counters since the service process started. :func:`window` turns two
consecutive scrapes into what happened between them (or since the process started, when it restarted
or there is no earlier scrape): requests and errors of the scoring endpoints, their p50/p99 latency
from the histogram (linear interpolation inside a bucket, as Prometheus' ``histogram_quantile``), and
predictions by risk band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCORING_ENDPOINTS = ("/predict", "/predict/batch")


@dataclass
class Scrape:
    """The cumulative numbers of one GET /metrics."""

    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (endpoint, status) -> count
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)  # endpoint -> {le: cumulative count}
    predictions: dict[str, float] = field(default_factory=dict)  # "model/band" -> count
    versions: dict[str, str] = field(default_factory=dict)
    seconds_since_reload: float | None = None
    process_start: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": {f"{e} {s}": v for (e, s), v in self.requests.items()},
            "buckets": {e: {repr(le): c for le, c in b.items()} for e, b in self.buckets.items()},
            "predictions": self.predictions,
            "versions": self.versions,
            "seconds_since_reload": self.seconds_since_reload,
            "process_start": self.process_start,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scrape:
        return cls(
            requests={tuple(k.rsplit(" ", 1)): v for k, v in data.get("requests", {}).items()},
            buckets={e: {float(le): c for le, c in b.items()} for e, b in data.get("buckets", {}).items()},
            predictions=dict(data.get("predictions", {})),
            versions=dict(data.get("versions", {})),
            seconds_since_reload=data.get("seconds_since_reload"),
            process_start=data.get("process_start"),
        )


def parse(text: str) -> Scrape:
    """A :class:`Scrape` from the Prometheus text format the service exposes."""
    from prometheus_client.parser import text_string_to_metric_families

    out = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "mlops_serve_requests_total":
                key = (labels["endpoint"], labels["status"])
                out.requests[key] = out.requests.get(key, 0.0) + sample.value  # summed over methods
            elif sample.name == "mlops_serve_request_duration_seconds_bucket":
                out.buckets.setdefault(labels["endpoint"], {})[float(labels["le"])] = sample.value
            elif sample.name == "mlops_serve_predictions_total":
                out.predictions[f"{labels['model']}/{labels['risk_band']}"] = sample.value
            elif sample.name == "mlops_serve_model" and sample.value == 1:
                out.versions[labels["model"]] = labels["version"]
            elif sample.name == "mlops_serve_seconds_since_reload":
                out.seconds_since_reload = None if sample.value < 0 else sample.value
            elif sample.name == "process_start_time_seconds":
                out.process_start = sample.value
    return out


@dataclass
class Window:
    """What the service did between two scrapes (``since_start``: since its process started)."""

    since_start: bool
    requests: int
    errors_by_status: dict[str, int]
    server_errors: int
    client_errors: int
    p50_ms: float | None
    p99_ms: float | None
    predictions: dict[str, int]

    def error_rate(self, include_client_errors: bool = False) -> float | None:
        """Share of scoring requests answered 5xx (and 4xx when asked); None without requests."""
        if not self.requests:
            return None
        return (self.server_errors + (self.client_errors if include_client_errors else 0)) / self.requests


def window(current: Scrape, previous: Scrape | None) -> Window:
    """The scoring endpoints' activity from ``previous`` to ``current`` (from the start when it restarted)."""
    restarted = (
        previous is None
        or previous.process_start != current.process_start
        or any(v < previous.requests.get(k, 0.0) for k, v in current.requests.items())
    )
    base = Scrape() if restarted else previous

    def delta(a: float, b: float) -> float:
        return max(0.0, a - b)

    by_status: dict[str, int] = {}
    for (endpoint, status), value in current.requests.items():
        if endpoint in SCORING_ENDPOINTS:
            n = round(delta(value, base.requests.get((endpoint, status), 0.0)))
            if n:
                by_status[status] = by_status.get(status, 0) + n
    buckets: dict[float, float] = {}
    for endpoint in SCORING_ENDPOINTS:
        before = base.buckets.get(endpoint, {})
        for le, value in current.buckets.get(endpoint, {}).items():
            buckets[le] = buckets.get(le, 0.0) + delta(value, before.get(le, 0.0))
    errors = {s: n for s, n in by_status.items() if s[:1] in ("4", "5")}
    return Window(
        since_start=restarted,
        requests=sum(by_status.values()),
        errors_by_status=errors,
        server_errors=sum(n for s, n in errors.items() if s.startswith("5")),
        client_errors=sum(n for s, n in errors.items() if s.startswith("4")),
        p50_ms=_ms(quantile(0.5, buckets)),
        p99_ms=_ms(quantile(0.99, buckets)),
        predictions={
            k: round(delta(v, base.predictions.get(k, 0.0)))
            for k, v in current.predictions.items()
            if delta(v, base.predictions.get(k, 0.0))
        },
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram {upper bound: count}, as Prometheus' histogram_quantile."""
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):  # in the open top bucket: the highest finite bound is all we know
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return ordered[-1][0]
