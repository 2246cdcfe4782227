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


def _evaluate_drift(instance, passed: bool, severity=dg.AssetCheckSeverity.ERROR, data_version: str = "100@2026-10-30"):
    """Materialize monitoring/data_drift's check with a given outcome: a real evaluation event in the instance."""

    @dg.asset(key=DRIFT, check_specs=[dg.AssetCheckSpec(monitoring.DRIFT_CHECK, asset=DRIFT)])
    def data_drift():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
            passed=passed, severity=severity,
            metadata={"data_version": data_version, "drift_share": 0.4, "reason": "40% of monitored features drifted"})])

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
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor, resources={"monitoring": policy})
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
            sensor_name="run_failure_alert_sensor", dagster_event=failure, dagster_instance=instance,
            dagster_run=run, resources={"monitoring": MonitoringResource(alert_webhook=url)})
        run_failure_alert_sensor(context)
    [alert] = received
    assert alert["kind"] == "run_failed" and alert["run_id"] == result.run_id
    assert "failed" in alert["text"]


def test_the_sensor_module_imports_no_ml_library():
    code = ("import sys, mlops_assets.defs.monitoring.sensors, mlops_assets.definitions; "
            "print([m for m in ('mlflow', 'evidently', 'lightgbm', 'optuna') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_definitions_hold_the_monitoring_objects():
    from mlops_assets.definitions import defs

    for name in ("retrain_sensor", "check_failure_alert_sensor", "run_failure_alert_sensor",
                 "automation_condition_sensor"):
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
            context = dg.build_sensor_context(instance=instance, resources={"monitoring": MonitoringResource(alert_webhook=webhook)})
            with caplog.at_level("WARNING"):
                check_failure_alert_sensor.evaluate_tick(context)
            assert "alert not delivered" in caplog.text
            for secret in ("hunter2pw", "XXsecretXX", "abc123def"):
                assert secret not in caplog.text
