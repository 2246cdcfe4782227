"""Daily monitoring, after the daily ingestion (05:00 UTC)."""

import dagster as dg

from .jobs import monitor_job

daily_monitoring_schedule = dg.ScheduleDefinition(
    name="daily_monitoring_schedule",
    job=monitor_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Drift and live performance of the champions daily at 06:00 UTC.",
)
