"""Daily ingestion: picks up files that arrived without the sensor running (e.g. daemon was down)."""


import dagster as dg

from .jobs import ingest_job

daily_ingest_schedule = dg.ScheduleDefinition(
    name="daily_ingest_schedule",
    job=ingest_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Ingest every landing folder daily at 05:00 UTC.",
)
