"""Monitoring group: drift and live performance of the champions, retraining and alerting sensors."""

import dagster as dg

from .assets import data_drift, model_performance
from .jobs import monitor_job
from .resources import monitoring_resource
from .schedules import daily_monitoring_schedule
from .sensors import (
    automation_sensor,
    champion_alias_sensor,
    check_failure_alert_sensor,
    remeasure_after_retrain_sensor,
    retrain_sensor,
    run_failure_alert_sensor,
)
from .telemetry import serving_telemetry, serving_telemetry_job, serving_telemetry_schedule

defs = dg.Definitions(
    assets=[data_drift, model_performance, serving_telemetry],
    jobs=[monitor_job, serving_telemetry_job],
    sensors=[
        retrain_sensor,
        check_failure_alert_sensor,
        run_failure_alert_sensor,
        champion_alias_sensor,
        automation_sensor,
        remeasure_after_retrain_sensor,
    ],
    schedules=[daily_monitoring_schedule, serving_telemetry_schedule],
    resources={"monitoring": monitoring_resource()},
)
