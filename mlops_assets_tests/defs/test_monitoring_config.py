"""Issue 22 item 5: schedules' cron, sensors' interval and the drift window/thresholds come from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from mlops_assets.defs.monitoring.resources import drift_defaults
from mlops_assets.defs.monitoring.schedules import monitoring_schedule
from mlops_assets.defs.schedule_env import sensor_interval_s


def test_the_variables_set_the_cron_interval_and_thresholds():
    schedule = monitoring_schedule({"MLOPS_MONITOR_CRON": "30 7 * * 1-5"})
    assert schedule.cron_schedule == "30 7 * * 1-5" and "from MLOPS_MONITOR_CRON" in schedule.description
    assert monitoring_schedule({}).cron_schedule == "0 6 * * *"
    assert sensor_interval_s({"MLOPS_SENSOR_INTERVAL_S": "120"}) == 120 and sensor_interval_s({}) == 30
    values = drift_defaults(
        {
            "MLOPS_DRIFT_WINDOW_DAYS": "14",
            "MLOPS_DRIFT_SHARE_THRESHOLD": "0.25",
            "MLOPS_DRIFT_MIN_ROWS": "40",
            "MLOPS_PREDICTION_DRIFT_THRESHOLD": "0.3",
        }
    )
    assert values == {
        "window_days": 14.0,
        "column_threshold": 0.15,
        "drift_share_threshold": 0.25,
        "prediction_threshold": 0.3,
        "min_current_rows": 40,
    }


@pytest.mark.parametrize(
    "environ, message",
    [
        (
            {"MLOPS_MONITOR_CRON": "daily at six"},
            "MLOPS_MONITOR_CRON='daily at six' is not a cron expression",
        ),
        ({"MLOPS_DRIFT_WINDOW_DAYS": "a month"}, "MLOPS_DRIFT_WINDOW_DAYS='a month' is not a number"),
        ({"MLOPS_DRIFT_SHARE_THRESHOLD": "10"}, "MLOPS_DRIFT_SHARE_THRESHOLD=10.0 is a share"),
        ({"MLOPS_SENSOR_INTERVAL_S": "-5"}, "MLOPS_SENSOR_INTERVAL_S='-5' must be positive"),
    ],
)
def test_a_bad_value_names_its_variable(environ, message):
    build = {"MLOPS_MONITOR_CRON": monitoring_schedule, "MLOPS_SENSOR_INTERVAL_S": sensor_interval_s}
    with pytest.raises(ValueError, match=message):
        build.get(next(iter(environ)), drift_defaults)(environ)


def test_the_loaded_code_location_shows_the_configured_values():
    """What the UI shows: the schedules' cron, the sensors' interval and the launchpad's config defaults."""
    code = """
import json
from mlops_assets.defs.ingestion.schedules import daily_ingest_schedule
from mlops_assets.defs.monitoring.assets import data_drift
from mlops_assets.defs.monitoring.schedules import daily_monitoring_schedule
from mlops_assets.defs.monitoring.sensors import champion_alias_sensor, retrain_sensor
config = data_drift.node_def.config_schema.as_field().config_type.fields
print(json.dumps({"monitor": daily_monitoring_schedule.cron_schedule,
                  "ingest": daily_ingest_schedule.cron_schedule,
                  "sensor": [s.minimum_interval_seconds for s in (retrain_sensor, champion_alias_sensor)],
                  "window": config["window_days"].default_value,
                  "share": config["drift_share_threshold"].default_value}))
"""
    env = {
        **os.environ,
        "MLOPS_MONITOR_CRON": "15 4 * * *",
        "MLOPS_INGEST_CRON": "0 3 * * *",
        "MLOPS_SENSOR_INTERVAL_S": "90",
        "MLOPS_DRIFT_WINDOW_DAYS": "7",
        "MLOPS_DRIFT_SHARE_THRESHOLD": "0.2",
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "monitor": "15 4 * * *",
        "ingest": "0 3 * * *",
        "sensor": [90, 90],
        "window": 7.0,
        "share": 0.2,
    }
    assert dg.DefaultScheduleStatus.RUNNING == monitoring_schedule({}).default_status
