"""Daily ingestion: picks up files that arrived without the sensor running (e.g. daemon was down)."""

from ..schedule_env import env_schedule
from .jobs import ingest_job

# the cron comes from MLOPS_INGEST_CRON (default daily at 05:00 UTC)
daily_ingest_schedule = env_schedule(
    name="daily_ingest_schedule",
    job=ingest_job,
    variable="MLOPS_INGEST_CRON",
    default_cron="0 5 * * *",
    what="Ingest every landing folder",
)
