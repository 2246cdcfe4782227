"""/metrics of the real scoring service, read by monitoring/serving_telemetry, judged, and alerted on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from mlops_assets.lib import registry, scoring, telemetry, training
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.reliability.service import ServiceProcess
from mlops_assets.serving import sandbox

pytestmark = pytest.mark.slow
KEY = dg.AssetKey(["monitoring", "serving_telemetry"])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, sandbox.Sandbox]]:
    root = tmp_path_factory.mktemp("telemetry")
    box = sandbox.empty_sandbox(root / "box")
    registry.get_client(box.tracking_uri).search_experiments()
    tasks = sandbox.clean_tasks(500, seed=7)
    sandbox.write_tasks(box, tasks)
    for name in scoring.MODEL_NAMES:
        sandbox.train_and_register(box, tasks, training.get_spec(name))
    with ServiceProcess(box, root / "service.log") as running:
        running.wait_ready()
        yield running, box


def _materialize(root: Path, url: str, instance: dg.DagsterInstance, **config) -> dg.ExecuteInJobResult:
    from mlops_assets.defs.monitoring.telemetry import serving_telemetry
    from mlops_assets.resources import ServingTelemetryResource, WarehouseResource

    return dg.materialize(
        [serving_telemetry],
        instance=instance,
        resources={
            "warehouse": WarehouseResource(path=str(root / "warehouse_of_monitoring.duckdb")),
            "serving_telemetry": ServingTelemetryResource(url=url),
        },
        run_config=dg.RunConfig(ops={"monitoring__serving_telemetry": {"config": config}})
        if config
        else None,
    )


def test_metrics_count_the_traffic_and_monitoring_judges_it(service):
    running, box = service
    records = scoring.task_records(Warehouse(box.warehouse).read_table("clean.tasks").head(40))
    bands: Counter[str] = Counter()
    with httpx.Client(base_url=running.url, timeout=30) as http:
        for record in records[:30]:
            answer = http.post("/predict", json=record, params={"unknown_categories": "missing"})
            assert answer.status_code == 200, answer.text
            bands[answer.json()["prediction"]["risk_band"] or "none"] += 1
        batch = http.post(
            "/predict/batch", json={"tasks": records[30:]}, params={"unknown_categories": "missing"}
        )
        assert batch.status_code == 200
        bands.update(p["risk_band"] or "none" for p in batch.json()["predictions"])
        for _ in range(3):
            assert http.post("/predict", json={"task_id": "x", "colour": "red"}).status_code == 422
        assert http.post("/predict", content=b"{not json").status_code == 400
        assert http.get("/nowhere/at/all").status_code == 404
        text = http.get("/metrics")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    scrape = telemetry.parse(text.text)
    assert scrape.requests[("/predict", "200")] == 30 and scrape.requests[("/predict/batch", "200")] == 1
    assert scrape.requests[("/predict", "422")] == 3 and scrape.requests[("/predict", "400")] == 1
    assert scrape.requests[("other", "404")] == 1  # a scan of random paths stays one label
    assert scrape.buckets["/predict"][float("inf")] == 34
    assert {k.split("/")[1]: v for k, v in scrape.predictions.items() if k.startswith("late_risk/")} == bands
    assert scrape.predictions["cycle_time/all"] == 40
    assert scrape.versions == {"late_risk": "1", "cycle_time": "1"}
    assert scrape.seconds_since_reload is not None and scrape.seconds_since_reload >= 0
    assert 'mlops_serve_errors_total{endpoint="/predict",status="422"} 3.0' in text.text

    instance = dg.DagsterInstance.ephemeral()
    # 4 errors of 35 scoring requests: within 1% counting 5xx only, over it counting 4xx too
    first = _materialize(box.root, running.url, instance, include_client_errors=True, max_p99_ms=10_000.0)
    checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
    assert checks["serving_p99_latency_ok"].passed
    assert not checks["serving_error_rate_ok"].passed
    assert checks["serving_error_rate_ok"].metadata["error_rate"].value == pytest.approx(4 / 35)
    meta = first.asset_materializations_for_node("monitoring__serving_telemetry")[0].metadata
    assert meta["requests"].value == 35 and 0 < meta["p99_ms"].value <= 10_000
    history = Warehouse(Path(box.root) / "warehouse_of_monitoring.duckdb").read_table(
        "monitoring.serving_telemetry_history"
    )
    assert history.height == 1 and history["requests"][0] == 35 and history["client_errors"][0] == 4

    # the next reading judges only what happened since: 25 good requests, against a p99 limit of 0 ms
    with httpx.Client(base_url=running.url, timeout=30) as http:
        for record in records[:25]:
            assert (
                http.post("/predict", json=record, params={"unknown_categories": "missing"}).status_code
                == 200
            )
    second = _materialize(box.root, running.url, instance, include_client_errors=True, max_p99_ms=0.0)
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert (
        checks["serving_error_rate_ok"].passed
        and checks["serving_error_rate_ok"].metadata["error_rate"].value == 0
    )
    assert not checks["serving_p99_latency_ok"].passed  # no request answers in 0 ms

    from mlops_assets.definitions import defs
    from mlops_assets.defs.monitoring.resources import MonitoringResource
    from mlops_assets.defs.monitoring.sensors import check_failure_alert_sensor

    # the alert sensor watches every check of the code location, these two included
    context = dg.build_sensor_context(
        instance=instance,
        resources={"monitoring": MonitoringResource()},
        repository_def=defs.get_repository_def(),
    )
    result = check_failure_alert_sensor.evaluate_tick(context)
    assert "2 failed check(s) alerted" in result.skip_message


def test_an_unreachable_service_fails_both_checks_and_no_url_judges_nothing(tmp_path):
    from mlops_assets.devtools.ports import free_port

    instance = dg.DagsterInstance.ephemeral()
    down = _materialize(tmp_path, f"http://127.0.0.1:{free_port()}", instance)
    checks = {e.check_name: e for e in down.get_asset_check_evaluations()}
    assert not any(c.passed for c in checks.values())
    assert "/metrics failed" in checks["serving_p99_latency_ok"].metadata["reason"].value
    unset = _materialize(tmp_path, "", instance)
    assert all(e.passed and e.metadata["judged"].value is False for e in unset.get_asset_check_evaluations())


def test_quantiles_follow_prometheus_histogram_quantile():
    buckets = {0.01: 50.0, 0.02: 90.0, 0.05: 100.0, float("inf"): 100.0}
    assert telemetry.quantile(0.5, buckets) == pytest.approx(0.01)
    assert telemetry.quantile(0.7, buckets) == pytest.approx(0.015)
    assert telemetry.quantile(0.99, buckets) == pytest.approx(0.047)
    assert telemetry.quantile(0.99, {}) is None
