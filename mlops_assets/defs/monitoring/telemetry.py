"""monitoring/serving_telemetry: the scoring service's /metrics (MLOPS_SERVE_URL) read into a history table,
with checks on its p99 latency and error rate; a schedule reads it every 15 minutes while a URL is set.
"""

import json
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from mlops_assets.lib import telemetry
from mlops_assets.lib.redact import redact
from mlops_assets.lib.settings import env, env_number, is_set
from mlops_assets.resources import ServingTelemetryResource, WarehouseResource

from ..shared import SERVING_TELEMETRY, WAREHOUSE_WRITE_TAGS

KEY = SERVING_TELEMETRY
HISTORY = "monitoring.serving_telemetry_history"
P99_CHECK, ERROR_CHECK = "serving_p99_latency_ok", "serving_error_rate_ok"


class ServingTelemetryConfig(dg.Config):
    """Thresholds of the telemetry checks (defaults from MLOPS_SERVE_MAX_P99_MS, MLOPS_SERVE_MAX_ERROR_RATE,
    MLOPS_SERVE_MIN_REQUESTS); errors are 5xx answers, and 4xx too with include_client_errors.
    """

    max_p99_ms: float = env_number("MLOPS_SERVE_MAX_P99_MS", 20.0, float)
    max_error_rate: float = env_number("MLOPS_SERVE_MAX_ERROR_RATE", 0.01, float)
    min_requests: int = env_number("MLOPS_SERVE_MIN_REQUESTS", 20, int)
    include_client_errors: bool = False


@dg.asset(
    key=KEY,
    group_name="monitoring",
    kinds={"prometheus", "duckdb"},
    tags={"layer": "monitoring"},
    op_tags=WAREHOUSE_WRITE_TAGS,
    check_specs=[
        dg.AssetCheckSpec(
            P99_CHECK,
            asset=KEY,
            description="p99 latency of /predict and /predict/batch "
            "since the previous reading is within max_p99_ms.",
        ),
        dg.AssetCheckSpec(
            ERROR_CHECK,
            asset=KEY,
            description="Share of scoring requests answered with an "
            "error since the previous reading is within max_error_rate.",
        ),
    ],
    description="monitoring.serving_telemetry_history: the scoring service's /metrics (MLOPS_SERVE_URL) per reading: "
    "scoring requests, errors by status, p50/p99 latency and predictions by risk band since the previous reading, "
    "versions served, seconds since the last reload.",
)
def serving_telemetry(
    context: dg.AssetExecutionContext,
    config: ServingTelemetryConfig,
    warehouse: WarehouseResource,
    serving_telemetry: ServingTelemetryResource,
) -> dg.MaterializeResult:
    """Read the service's /metrics into monitoring.serving_telemetry_history and judge latency and errors."""
    service = serving_telemetry
    if not service.url:
        note = "MLOPS_SERVE_URL is not set: no scoring service is watched"
        return dg.MaterializeResult(
            metadata={"status": note},
            check_results=[
                dg.AssetCheckResult(check_name=c, passed=True, metadata={"judged": False, "reason": note})
                for c in (P99_CHECK, ERROR_CHECK)
            ],
        )
    url = redact(service.url)
    try:
        current = telemetry.parse(service.scrape())
    except Exception as exc:  # connection refused, timeout, 5xx: the service is not healthy
        reason = f"GET {url}/metrics failed: {redact(str(exc))[:300]}"
        return dg.MaterializeResult(
            metadata={"status": reason},
            check_results=[
                dg.AssetCheckResult(
                    check_name=c,
                    passed=False,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"judged": True, "reason": reason},
                )
                for c in (P99_CHECK, ERROR_CHECK)
            ],
        )
    wh = warehouse.get()
    previous = None
    if wh.table_exists(HISTORY):
        last = wh.query(f"SELECT scrape FROM {HISTORY} WHERE url = ? ORDER BY read_at DESC LIMIT 1", [url])
        previous = telemetry.Scrape.from_json(json.loads(last["scrape"][0])) if last.height else None
    w = telemetry.window(current, previous)
    rate = w.error_rate(config.include_client_errors)
    row = {
        "read_at": datetime.now(UTC),
        "url": url,
        "since_start": w.since_start,
        "requests": w.requests,
        "server_errors": w.server_errors,
        "client_errors": w.client_errors,
        "error_rate": rate,
        "p50_ms": w.p50_ms,
        "p99_ms": w.p99_ms,
        "errors_by_status": json.dumps(w.errors_by_status),
        "predictions": json.dumps(w.predictions),
        "versions": json.dumps(current.versions),
        "seconds_since_reload": current.seconds_since_reload,
        "scrape": json.dumps(current.to_json()),
    }
    wh.append(
        HISTORY,
        pl.DataFrame(
            [row],
            schema_overrides={
                "error_rate": pl.Float64,
                "p50_ms": pl.Float64,
                "p99_ms": pl.Float64,
                "seconds_since_reload": pl.Float64,
            },
        ),
    )
    judged = w.requests >= config.min_requests
    why = (
        None
        if judged
        else f"{w.requests} scoring requests since the previous reading (< min_requests {config.min_requests})"
    )
    meta = {
        "requests": w.requests,
        "p50_ms": w.p50_ms,
        "p99_ms": w.p99_ms,
        "error_rate": rate,
        "errors_by_status": dg.MetadataValue.json(w.errors_by_status),
        "predictions": dg.MetadataValue.json(w.predictions),
        "versions": dg.MetadataValue.json(current.versions),
        "seconds_since_reload": current.seconds_since_reload,
        "since_process_start": w.since_start,
        "url": url,
    }
    return dg.MaterializeResult(
        metadata={k: v for k, v in meta.items() if v is not None},
        check_results=[
            _check(P99_CHECK, judged, why, w.p99_ms, config.max_p99_ms, "p99_ms", "max_p99_ms"),
            _check(ERROR_CHECK, judged, why, rate, config.max_error_rate, "error_rate", "max_error_rate"),
        ],
    )


def _check(name: str, judged: bool, why: str | None, value, limit: float, what: str, setting: str):
    if not judged or value is None:  # an idle service is not unhealthy; the reading says so
        return dg.AssetCheckResult(
            check_name=name, passed=True, metadata={"judged": False, "reason": why or "no data"}
        )
    return dg.AssetCheckResult(
        check_name=name,
        passed=value <= limit,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"judged": True, what: value, setting: limit},
    )


serving_telemetry_job = dg.define_asset_job(
    name="serving_telemetry_job",
    selection=[KEY],
    tags=WAREHOUSE_WRITE_TAGS,
    description="Read the scoring service's /metrics and judge its latency and error rate.",
)

serving_telemetry_schedule = dg.ScheduleDefinition(
    name="serving_telemetry_schedule",
    job=serving_telemetry_job,
    cron_schedule=env("MLOPS_TELEMETRY_CRON"),
    execution_timezone="UTC",
    default_status=(
        dg.DefaultScheduleStatus.RUNNING if is_set("MLOPS_SERVE_URL") else dg.DefaultScheduleStatus.STOPPED
    ),
    description="The scoring service's telemetry every 15 minutes (MLOPS_TELEMETRY_CRON); running when "
    "MLOPS_SERVE_URL is set when the code location loads.",
)
