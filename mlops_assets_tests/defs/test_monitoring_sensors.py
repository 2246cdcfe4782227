"""Retrain and alert sensors against a real DagsterInstance whose event log holds real check evaluations."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import pytest

from mlops_assets.defs.monitoring.resources import MonitoringResource
from mlops_assets.defs.monitoring.sensors import (
    check_failure_alert_sensor,
    retrain_sensor,
    run_failure_alert_sensor,
)
from mlops_assets.lib import monitoring
from mlops_assets_tests.fake_apis import Reply, serve

DRIFT = dg.AssetKey(["monitoring", "data_drift"])


def _evaluate_drift(
    instance, passed: bool, severity=dg.AssetCheckSeverity.ERROR, data_version: str = "100@2026-10-30"
):
    """Materialize monitoring/data_drift's check with a given outcome: a real evaluation event in the instance."""

    @dg.asset(key=DRIFT, check_specs=[dg.AssetCheckSpec(monitoring.DRIFT_CHECK, asset=DRIFT)])
    def data_drift():
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    passed=passed,
                    severity=severity,
                    metadata={
                        "data_version": data_version,
                        "drift_share": 0.4,
                        "reason": "40% of monitored features drifted",
                    },
                )
            ]
        )

    assert dg.materialize([data_drift], instance=instance).success


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _tick(instance, cursor, policy: MonitoringResource):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"monitoring": policy})
    result = retrain_sensor.evaluate_tick(context)
    return result, context.cursor


def test_one_failed_drift_check_requests_exactly_one_retraining_run(instance):
    policy = MonitoringResource(retrain_cooldown_s=3600, retrain_trials=2)
    _evaluate_drift(instance, passed=True)
    result, cursor = _tick(instance, None, policy)
    assert not result.run_requests and "no failed drift" in result.skip_message

    _evaluate_drift(instance, passed=False)
    result, cursor = _tick(instance, cursor, policy)
    [request] = result.run_requests
    assert retrain_sensor.job_name == "retrain_job"
    assert request.tags["mlops/trigger"] == "retrain"
    assert request.tags["mlops/warehouse"] == "write"  # queued behind other warehouse writers
    assert request.run_config["ops"]["models__late_risk_candidate"]["config"]["n_trials"] == 2

    # the same failure is consumed: the next tick asks for nothing
    result, cursor = _tick(instance, cursor, policy)
    assert not result.run_requests

    # a new failure inside the cool-down (e.g. drift measured again after the retraining) is ignored
    _evaluate_drift(instance, passed=False, data_version="900@2026-10-31")
    result, cursor = _tick(instance, cursor, policy)
    assert not result.run_requests
    assert result.skip_message.startswith("cool-down")


def test_after_the_cool_down_only_new_data_triggers_another_retraining(instance):
    policy = MonitoringResource(retrain_cooldown_s=0)
    _evaluate_drift(instance, passed=False, data_version="100@a")
    result, cursor = _tick(instance, None, policy)
    assert len(result.run_requests) == 1
    _evaluate_drift(instance, passed=False, data_version="100@a")
    result, cursor = _tick(instance, cursor, policy)
    assert not result.run_requests and "already retrained on this data" in result.skip_message
    _evaluate_drift(instance, passed=False, data_version="200@b")
    result, cursor = _tick(instance, cursor, policy)
    assert len(result.run_requests) == 1
    assert result.run_requests[0].run_key != "retrain-0"


def test_warn_failures_are_never_retrained_on(instance):
    _evaluate_drift(instance, passed=False, severity=dg.AssetCheckSeverity.WARN)
    result, _ = _tick(instance, None, MonitoringResource(retrain_cooldown_s=0))
    assert not result.run_requests


def test_a_garbled_cursor_does_not_crash_the_tick(instance):
    _evaluate_drift(instance, passed=False)
    result, cursor = _tick(instance, "not json", MonitoringResource())
    assert len(result.run_requests) == 1
    assert json.loads(cursor)["last_request_at"] > 0


def test_failed_checks_are_posted_as_json_to_the_webhook(instance, caplog):
    received = []

    def handler(req):
        received.append(req.json())
        return Reply(204)

    _evaluate_drift(instance, passed=True)
    _evaluate_drift(instance, passed=False)
    with serve(handler) as url:
        policy = MonitoringResource(alert_webhook=f"{url}/hook")
        context = dg.build_sensor_context(instance=instance, resources={"monitoring": policy})
        check_failure_alert_sensor.evaluate_tick(context)
        again = dg.build_sensor_context(
            instance=instance, cursor=context.cursor, resources={"monitoring": policy}
        )
        check_failure_alert_sensor.evaluate_tick(again)  # nothing new: nothing posted twice
    assert len(received) == 1
    [alert] = received
    assert alert["kind"] == "asset_check_failed"
    assert alert["asset"] == "monitoring/data_drift" and alert["check"] == monitoring.DRIFT_CHECK
    assert alert["severity"] == "ERROR"
    assert alert["metadata"]["drift_share"] == 0.4


def test_an_unreachable_webhook_is_logged_not_raised(instance):
    _evaluate_drift(instance, passed=False)
    policy = MonitoringResource(alert_webhook="http://127.0.0.1:9/nothing-listens")
    context = dg.build_sensor_context(instance=instance, resources={"monitoring": policy})
    result = check_failure_alert_sensor.evaluate_tick(context)
    assert "1 failed check(s) alerted" in result.skip_message


def test_failed_runs_are_posted_as_json(instance):
    @dg.asset
    def broken():
        raise ValueError("the warehouse file is locked")

    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    received = []
    with serve(lambda req: (received.append(req.json()), Reply(200))[1]) as url:
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
            resources={"monitoring": MonitoringResource(alert_webhook=url)},
        )
        run_failure_alert_sensor(context)
    [alert] = received
    assert alert["kind"] == "run_failed" and alert["run_id"] == result.run_id
    assert "failed" in alert["text"]


def test_the_sensor_module_imports_no_ml_library():
    code = (
        "import sys, mlops_assets.defs.monitoring.sensors, mlops_assets.definitions; "
        "print([m for m in ('mlflow', 'evidently', 'lightgbm', 'optuna') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_definitions_hold_the_monitoring_objects():
    from mlops_assets.definitions import defs

    for name in (
        "retrain_sensor",
        "check_failure_alert_sensor",
        "run_failure_alert_sensor",
        "champion_alias_sensor",
        "automation_condition_sensor",
    ):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING, name
    assert defs.resolve_schedule_def("daily_monitoring_schedule")
    assert defs.resolve_job_def("monitor_job")
    train = defs.resolve_job_def("retrain_job")
    assert dg.AssetKey(["serving", "task_risk_scores"]) in train.asset_layer.executable_asset_keys


@pytest.mark.parametrize("status", [500, None])  # the webhook answers an error, or nothing listens
def test_a_failed_alert_logs_the_webhook_without_its_secrets(instance, caplog, status):
    """Issue 20 item 3: MLOPS_ALERT_WEBHOOK's user, password and path (Slack's token) never reach the log."""
    _evaluate_drift(instance, passed=False)
    with serve(lambda req: Reply(status or 500)) as url:
        port = url.rsplit(":", 1)[1] if status else "9"
        hook = f"http://alerts:hunter2pw@127.0.0.1:{port}/services/T0001/B0002/XXsecretXX?token=abc123def"
        bare = f"http://127.0.0.1:{port}/services/T0001/B0002/XXsecretXX"
        for webhook in (hook, bare):
            with pytest.raises(OSError) as raised:
                monitoring.post_json(webhook, {"text": "x"}, timeout_s=2)
            assert "127.0.0.1" in str(raised.value)
            for secret in ("hunter2pw", "XXsecretXX", "abc123def", "T0001"):
                assert secret not in str(raised.value)
            caplog.clear()
            context = dg.build_sensor_context(
                instance=instance, resources={"monitoring": MonitoringResource(alert_webhook=webhook)}
            )
            with caplog.at_level("WARNING"):
                check_failure_alert_sensor.evaluate_tick(context)
            assert "alert not delivered" in caplog.text
            for secret in ("hunter2pw", "XXsecretXX", "abc123def"):
                assert secret not in caplog.text


def _version(client, name: str, source) -> str:
    return str(client.create_model_version(name, source=str(source)).version)


def test_a_rollback_shows_on_the_champion_asset(instance, mlflow_uri, tmp_path):
    """Issue 22 item 1: after `mlops-assets rollback` models/<m>_champion shows the version the registry serves."""
    from mlops_assets.defs.monitoring.sensors import MODELS, champion_alias_sensor, shown_champion
    from mlops_assets.lib import registry, scoring
    from mlops_assets.resources import MLflowResource

    assert MODELS == scoring.MODEL_NAMES
    client = registry.get_client(mlflow_uri)
    client.create_registered_model("late_risk")
    first, second = _version(client, "late_risk", tmp_path), _version(client, "late_risk", tmp_path)
    client.set_model_version_tag("late_risk", second, "previous_champion", first)
    client.set_registered_model_alias("late_risk", "champion", second)
    key = dg.AssetKey(["models", "late_risk_champion"])
    instance.report_runless_asset_event(dg.AssetMaterialization(key, metadata={"champion_version": second}))
    resources = {"mlflow": MLflowResource(tracking_uri=mlflow_uri)}

    def tick():
        return champion_alias_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources=resources)
        )

    assert "show the served champions (late_risk v2, cycle_time vnone)" in tick().skip_message
    assert registry.rollback("late_risk", client) == (second, first)
    [event] = tick().asset_events
    assert event.asset_key == key and event.metadata["champion_version"].value == first
    assert event.metadata["decision"].value == f"rolled back from v{second}"
    instance.report_runless_asset_event(event)  # what the daemon does with a sensor's asset events
    assert shown_champion(instance, key) == first
    assert not tick().asset_events


def test_the_champion_sensor_waits_while_a_run_may_be_gating(instance, mlflow_uri, tmp_path):
    from mlops_assets.defs.monitoring.sensors import champion_alias_sensor
    from mlops_assets.lib import registry
    from mlops_assets.resources import MLflowResource

    client = registry.get_client(mlflow_uri)
    client.create_registered_model("late_risk")
    client.set_registered_model_alias("late_risk", "champion", _version(client, "late_risk", tmp_path))
    instance.add_run(
        dg.DagsterRun(job_name="retrain_job", run_id="a" * 36, status=dg.DagsterRunStatus.STARTED)
    )
    context = dg.build_sensor_context(
        instance=instance, resources={"mlflow": MLflowResource(tracking_uri=mlflow_uri)}
    )
    assert not champion_alias_sensor.evaluate_tick(context).asset_events


def _run_job(instance, job_name: str, keys: list[dg.AssetKey], fail: bool = False) -> str:
    """Execute a tiny asset job of that name in the instance: a real run with its start and end events."""

    def build(key):
        @dg.asset(key=key)
        def _asset():
            if fail:
                raise dg.Failure("candidate stopped")

        return _asset

    job = dg.define_asset_job(job_name, selection=keys)
    defs = dg.Definitions(assets=[build(k) for k in keys], jobs=[job])
    result = defs.get_job_def(job_name).execute_in_process(instance=instance, raise_on_error=False)
    return result.run_id


def test_every_finished_retraining_run_is_followed_by_one_drift_measurement(instance, monkeypatch):
    import time

    from mlops_assets.defs.monitoring import sensors
    from mlops_assets.defs.monitoring.sensors import (
        MONITORED,
        REMEASURE_GRACE_S,
        remeasure_after_retrain_sensor,
        remeasure_decision,
    )

    assert remeasure_decision(instance, None, time.time())[:2] == (False, None)  # no retraining yet
    _evaluate_drift(instance, passed=False)  # measured before the retraining
    # a retraining run whose candidate was stopped (the run fails, the champion stays) still needs a measurement
    retrain = _run_job(instance, "retrain_job", [dg.AssetKey(["features", "task_features"])], fail=True)
    ended = instance.get_run_record_by_id(retrain).end_time
    request, handled, reason = remeasure_decision(instance, None, ended + 5)
    assert (request, handled) == (False, None) and reason.startswith(f"waiting {REMEASURE_GRACE_S} s")

    monkeypatch.setattr(sensors, "REMEASURE_GRACE_S", 0)  # the grace period has passed
    context = dg.build_sensor_context(instance=instance)
    [run_request] = remeasure_after_retrain_sensor.evaluate_tick(context).run_requests
    assert remeasure_after_retrain_sensor.job_name == "monitor_job"
    assert set(run_request.asset_selection) == set(MONITORED)
    assert (
        run_request.run_key == f"after-retrain-{retrain}" and run_request.tags["mlops/warehouse"] == "write"
    )
    assert context.cursor == retrain
    # asked once per retraining run
    again = remeasure_after_retrain_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=retrain)
    )
    assert not again.run_requests and "no retraining run ended" in again.skip_message


def test_no_extra_measurement_when_drift_was_measured_after_the_retraining(instance):
    import time

    from mlops_assets.defs.monitoring.sensors import remeasure_after_retrain_sensor, remeasure_decision

    retrain = _run_job(instance, "retrain_job", [dg.AssetKey(["features", "task_features"])])
    # a monitoring run in flight: wait for it
    instance.add_run(
        dg.DagsterRun(job_name="monitor_job", run_id="b" * 36, status=dg.DagsterRunStatus.STARTED)
    )
    request, handled, reason = remeasure_decision(instance, None, time.time() + 3600)
    assert (request, handled) == (False, None) and "in flight" in reason
    instance.report_run_canceled(instance.get_run_by_id("b" * 36))
    _evaluate_drift(instance, passed=True)  # the automation measured it
    context = dg.build_sensor_context(instance=instance)
    result = remeasure_after_retrain_sensor.evaluate_tick(context)
    assert not result.run_requests and result.skip_message.startswith(
        f"drift was measured after retraining run {retrain[:8]}"
    )
    assert context.cursor == retrain
