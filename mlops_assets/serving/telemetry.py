"""Prometheus telemetry of the scoring service, served on ``GET /metrics`` (prometheus-client).

Each app has its own registry (several apps in one process, as in tests, do not share counters):

* ``mlops_serve_requests_total{endpoint, method, status}``: every answered request;
* ``mlops_serve_errors_total{endpoint, status}``: the ones answered 4xx/5xx;
* ``mlops_serve_request_duration_seconds{endpoint}``: a latency histogram (buckets around the 20 ms
  budget, so a p99 can be read from it to a few milliseconds);
* ``mlops_serve_predictions_total{model, risk_band}``: scored tasks, late_risk by risk band (``none``:
  no deadline, no late risk), cycle_time under ``all``;
* ``mlops_serve_model_info{model, version}``: 1 for each version served now;
* ``mlops_serve_seconds_since_reload`` and ``mlops_serve_last_reload_timestamp_seconds``: age of the
  loaded champions and history (-1 / 0 before the first load).

Endpoints are labelled by route (``/predict``, ``/reports``...), never by raw path, so a scan of random
URLs cannot grow the label set. The middleware is plain ASGI (no per-request task or body copy):
its cost on the online p99 is measured in docs/BENCHMARKS.md (scripts/bench_telemetry.py).
With ``MLOPS_SERVE_WORKERS`` > 1 each process counts its own requests and ``/metrics`` answers for the
process that serves it: run one worker per container and let Prometheus scrape every replica.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ROUTES = ("/predict/batch", "/predict", "/health", "/ready", "/reload", "/metrics", "/reports", "/exports")


def route_of(path: str) -> str:
    """The route label of a request path: a known route or its mount, else ``other``."""
    for route in ROUTES:
        if path == route or (route in ("/reports", "/exports") and path.startswith(route + "/")):
            return route
    return "other"


class Telemetry:
    """The service's metrics and the ASGI middleware that counts and times every request."""

    def __init__(self, snapshot: Callable[[], Any], enabled: bool = True) -> None:
        self.enabled = enabled  # False: requests and predictions are not counted (MLOPS_SERVE_TELEMETRY=0)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlops_serve_requests",
            "HTTP requests answered",
            ("endpoint", "method", "status"),
            registry=self.registry,
        )
        self.errors = Counter(
            "mlops_serve_errors",
            "HTTP requests answered with a 4xx or 5xx status",
            ("endpoint", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlops_serve_request_duration_seconds",
            "Time from request to the last byte sent",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "mlops_serve_predictions",
            "Tasks scored, late_risk by risk band",
            ("model", "risk_band"),
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlops_serve_model",
            "1 for each model version served now",
            ("model", "version"),
            registry=self.registry,
        )
        self.since_reload = Gauge(
            "mlops_serve_seconds_since_reload",
            "Seconds since the champions and history were loaded (-1: not loaded)",
            registry=self.registry,
        )
        self.reloaded_at = Gauge(
            "mlops_serve_last_reload_timestamp_seconds",
            "Unix time of the last load of champions and history (0: not loaded)",
            registry=self.registry,
        )
        # process_start_time_seconds: monitoring tells a restarted service (counters from zero) by it
        ProcessCollector(registry=self.registry)
        self._snapshot = snapshot
        self._served: dict[str, str] = {}
        self.since_reload.set_function(self._age)
        self.reloaded_at.set_function(lambda: self._loaded_at() or 0.0)

    def _loaded_at(self) -> float | None:
        snap = self._snapshot()
        return None if snap is None else snap.loaded_at.timestamp()

    def _age(self) -> float:
        loaded = self._loaded_at()
        return -1.0 if loaded is None else max(0.0, time.time() - loaded)

    def served(self, versions: dict[str, str]) -> None:
        """Mark the versions served now (the previous ones drop out of ``mlops_serve_model``)."""
        if versions == self._served:
            return
        for model, version in self._served.items():
            self.model_info.remove(model, version)
        for model, version in versions.items():
            self.model_info.labels(model, str(version)).set(1)
        self._served = dict(versions)

    def count_predictions(self, rows: Iterable[dict[str, Any]]) -> None:
        """Count scored rows by risk band (late_risk) and in all (cycle_time)."""
        if not self.enabled:
            return
        bands: dict[str, int] = {}
        n = 0
        for row in rows:
            n += 1
            band = row.get("risk_band") or "none"
            bands[band] = bands.get(band, 0) + 1
        for band, count in bands.items():
            self.predictions.labels("late_risk", band).inc(count)
        if n:
            self.predictions.labels("cycle_time", "all").inc(n)

    def exposition(self) -> tuple[bytes, str]:
        """The text format body and its content type."""
        snap = self._snapshot()
        if snap is not None:
            self.served(snap.versions)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class TelemetryMiddleware:
    """Pure ASGI middleware: status and latency of every HTTP request (``app.add_middleware(..., telemetry=)``)."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            t, route, code = self.telemetry, route_of(scope.get("path", "")), str(status)
            t.latency.labels(route).observe(time.perf_counter() - started)
            t.requests.labels(route, scope.get("method", ""), code).inc()
            if status >= 400:
                t.errors.labels(route, code).inc()
