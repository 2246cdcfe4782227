"""Retraining and alerting sensors, and the sensor that runs the eager automation conditions.

Each tick runs in the code server: this module imports no ML library (mlflow, evidently, lightgbm).
Failed asset checks do not fail runs, so they are read from the instance's event log after a cursor
(storage id); failed runs come through a run-failure sensor.
"""

from __future__ import annotations

import logging
import time

import dagster as dg

from mlops_assets.lib import monitoring as mon
from mlops_assets.lib.redact import redact
from mlops_assets.resources import MLflowResource

from ..schedule_env import sensor_interval_s
from ..shared import DATA_DRIFT, MODEL_PERFORMANCE, MODELS, WAREHOUSE_WRITE_TAGS, champion_key
from ..training.jobs import retrain_job
from .jobs import monitor_job
from .resources import MonitoringResource

log = logging.getLogger("mlops_assets.alerts")
MAX_EVENTS_PER_TICK = 500
INTERVAL_S = sensor_interval_s()  # MLOPS_SENSOR_INTERVAL_S
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


RETRAIN_CHECK_KEYS = [
    dg.AssetCheckKey(DATA_DRIFT, mon.DRIFT_CHECK),
    *(dg.AssetCheckKey(MODEL_PERFORMANCE, name) for name in mon.PERFORMANCE_CHECKS),
]


def check_failures(instance: dg.DagsterInstance, keys, after_id: int) -> tuple[list[mon.CheckFailure], int]:
    """Failed evaluations of the checks `keys` recorded after execution id `after_id`, and the last id seen.

    Read from the instance's asset-check execution index, which every event-log storage keeps (the default
    SQLite storage is sharded by run, so a global event query after a storage id is not available there).
    """
    failures, last, pending = [], after_id, []
    for key in keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(
            key, limit=MAX_EVENTS_PER_TICK
        ):
            if record.id <= after_id:
                break  # newest first
            if record.status.value == "PLANNED":
                run = instance.get_run_by_id(record.run_id)
                if run is not None and not run.is_finished:
                    pending.append(record.id)  # ids are assigned when planned: read it once it has a result
                continue
            last = max(last, record.id)
            evaluation = record.evaluation
            if evaluation is None or evaluation.passed:
                continue
            failures.append(
                mon.CheckFailure(
                    storage_id=record.id,
                    run_id=record.run_id,
                    asset=key.asset_key.to_user_string(),
                    check=key.name,
                    severity=evaluation.severity.value,
                    timestamp=mon.check_evaluated_at(record),
                    metadata={k: v.value for k, v in evaluation.metadata.items()},
                )
            )
    if pending:  # never move the cursor past a check that is still running
        last = min(last, min(pending) - 1)
        failures = [f for f in failures if f.storage_id <= last]
    return sorted(failures, key=lambda f: f.storage_id), last


@dg.sensor(
    job=retrain_job, minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING
)
def retrain_sensor(context: dg.SensorEvaluationContext, monitoring: MonitoringResource):
    """Request one retraining run when a drift or performance check fails (ERROR), with a cool-down."""
    cursor = mon.RetrainCursor.parse(context.cursor)
    failures, last = check_failures(context.instance, RETRAIN_CHECK_KEYS, cursor.after_storage_id)
    running = bool(
        context.instance.get_run_ids(dg.RunsFilter(job_name=retrain_job.name, statuses=IN_FLIGHT), limit=1)
    )
    decision = mon.decide_retrain(
        failures,
        cursor,
        last_storage_id=last,
        now=time.time(),
        cooldown_s=monitoring.retrain_cooldown_s,
        retrain_running=running,
    )
    context.update_cursor(decision.cursor.dump())
    if not decision.request:
        if decision.triggers:
            context.log.info(f"no retraining: {decision.reason}")
        return dg.SkipReason(decision.reason)
    context.log.info(f"requesting a retraining run: {decision.reason}")
    checks = ",".join(sorted({t.check for t in decision.triggers}))
    return dg.RunRequest(
        run_key=decision.run_key,
        run_config=monitoring.retrain_run_config(),
        tags={**WAREHOUSE_WRITE_TAGS, "mlops/trigger": "retrain", "mlops/failed_checks": checks},
    )


def send_alert(context, monitoring: MonitoringResource, payload: dict) -> None:
    """A log line always; a JSON POST to the webhook when one is configured (a failed POST is logged, never raised)."""
    context.log.warning(f"ALERT {payload['text']}")
    log.warning("ALERT %s", payload["text"])
    if not monitoring.alert_webhook:
        return
    try:
        mon.post_json(monitoring.alert_webhook, payload)
    except OSError as exc:
        message = (
            f"alert not delivered: {redact(str(exc))}"  # the webhook URL is a secret: post_json masks it
        )
        context.log.error(message)
        log.error(message)


@dg.sensor(minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, monitoring: MonitoringResource):
    """Alert on every failed asset check (they do not fail runs, so run-failure sensors miss them)."""
    after = int(context.cursor) if (context.cursor or "").isdigit() else 0
    keys = (
        sorted(context.repository_def.asset_graph.asset_check_keys)
        if context.repository_def
        else RETRAIN_CHECK_KEYS
    )
    failures, last = check_failures(context.instance, keys, after)
    for failure in failures:
        send_alert(context, monitoring, mon.check_alert(failure))
    context.update_cursor(str(last))
    return dg.SkipReason(f"{len(failures)} failed check(s) alerted" if failures else "no failed checks")


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, monitoring: MonitoringResource):
    """Alert on every failed run of this code location."""
    message = context.failure_event.message or "no message"
    send_alert(
        context, monitoring, mon.run_alert(context.dagster_run.job_name, context.dagster_run.run_id, message)
    )


def shown_champion(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    """The champion version the latest materialization of models/<m>_champion shows (None when never materialized)."""
    event = instance.get_latest_materialization_event(key)
    value = (
        event.asset_materialization.metadata.get("champion_version")
        if event and event.asset_materialization
        else None
    )
    return None if value is None else str(value.value)


def _may_be_gating(instance: dg.DagsterInstance, key: dg.AssetKey) -> bool:
    """A run in flight may be moving the alias itself: its own materialization will show the result."""
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT), limit=50)
    return any(run.asset_selection is None or key in run.asset_selection for run in runs)


@dg.sensor(minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING)
def champion_alias_sensor(context: dg.SensorEvaluationContext, mlflow: MLflowResource):
    """Record on models/<m>_champion a champion the registry serves that no gate recorded (a rollback)."""
    from mlops_assets.lib import registry  # mlflow loads on the first tick, not with the code location

    client, events, seen = mlflow.client(), [], []
    for name in MODELS:
        key = champion_key(name)
        served, shown = registry.champion_version(name, client), shown_champion(context.instance, key)
        seen.append(f"{name} v{served or 'none'}")
        if served is None or served == shown or _may_be_gating(context.instance, key):
            continue
        tags = client.get_model_version(name, served).tags
        if tags.get("restored_from"):
            decision = f"rolled back from v{tags['restored_from']}"
            reason = (
                f"the registry's champion alias was moved back to v{served} at {tags.get('restored_at', '?')} "
                f"(`mlops-assets rollback`); the gate had recorded v{shown or 'none'}"
            )
        else:
            decision = "champion alias moved outside the gate"
            reason = f"the registry serves v{served}; the last gate recorded v{shown or 'none'}"
        context.log.info(f"{name}: {decision}: {reason}")
        events.append(
            dg.AssetMaterialization(
                key,
                description=reason,
                metadata={
                    "decision": decision,
                    "reason": reason,
                    "champion_version": served,
                    "previous_shown_version": shown or "none",
                    "recorded_by": "champion_alias_sensor",
                },
            )
        )
    if not events:
        return dg.SkipReason(f"the materializations show the served champions ({', '.join(seen)})")
    return dg.SensorResult(asset_events=events)


MONITORED = [DATA_DRIFT, MODEL_PERFORMANCE]
RETRAIN_ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
REMEASURE_GRACE_S = 90  # three ticks of the automation sensor: it usually re-measures first


def remeasure_decision(
    instance: dg.DagsterInstance, handled_run_id: str | None, now: float
) -> tuple[bool, str | None, str]:
    """(request a measurement?, the retraining run now handled or None, why). The cursor is that run's id.

    Drift and performance are measured against whichever champion serves, so every finished retraining run
    (a new champion, or a candidate stopped and the champion kept) must be followed by a measurement. The
    eager automation condition normally does it; it can miss it when monitoring was materialized and the
    retraining run updated its parents between the same two ticks (both seen on one tick: the update is
    taken as handled). Then this sensor asks for the measurement, once per retraining run.
    """
    records = instance.get_run_records(
        dg.RunsFilter(job_name=retrain_job.name, statuses=RETRAIN_ENDED), limit=1
    )
    if not records or records[0].dagster_run.run_id == handled_run_id:
        return False, None, "no retraining run ended since the last measurement"
    record = records[0]
    run_id, ended = record.dagster_run.run_id, record.end_time or record.update_timestamp.timestamp()
    event = instance.get_latest_materialization_event(MONITORED[0])
    if event is not None and event.timestamp > ended:
        return False, run_id, f"drift was measured after retraining run {run_id[:8]} (run {event.run_id[:8]})"
    in_flight = instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT), limit=50)
    if any(
        run.job_name == monitor_job.name or MONITORED[0] in (run.asset_selection or ()) for run in in_flight
    ):
        return (
            False,
            None,
            f"waiting: a run that measures drift after retraining run {run_id[:8]} is in flight",
        )
    if now - ended < REMEASURE_GRACE_S:
        return (
            False,
            None,
            (
                f"waiting {REMEASURE_GRACE_S} s after retraining run {run_id[:8]} for the automation "
                "to measure drift"
            ),
        )
    return (
        True,
        run_id,
        f"retraining run {run_id[:8]} ended {now - ended:.0f} s ago and drift was not measured since",
    )


@dg.sensor(
    job=monitor_job, minimum_interval_seconds=INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING
)
def remeasure_after_retrain_sensor(context: dg.SensorEvaluationContext):
    """After every retraining run, drift and performance are measured again against the champion that serves."""
    request, run_id, reason = remeasure_decision(context.instance, context.cursor, time.time())
    if run_id is not None:
        context.update_cursor(run_id)
    if not request:
        return dg.SkipReason(reason)
    context.log.info(f"requesting a monitoring run: {reason}")
    return dg.RunRequest(
        run_key=f"after-retrain-{run_id}",
        asset_selection=MONITORED,
        tags={**WAREHOUSE_WRITE_TAGS, "mlops/trigger": "after-retrain", "mlops/retrain_run": run_id},
    )


# Declared, not left to the default sensor: running from the start, and its runs carry the warehouse-write
# tag so the run queue serializes them with every other run that writes the DuckDB file.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    run_tags=WAREHOUSE_WRITE_TAGS,
    minimum_interval_seconds=30,
    description="Runs the eager automation conditions (clean layer, features, scores, monitoring).",
)
