"""Daily monitoring, after the daily ingestion (05:00 UTC); the cron comes from MLOPS_MONITOR_CRON."""

from collections.abc import Mapping

from ..schedule_env import env_schedule
from .jobs import monitor_job

MONITOR_CRON = "0 6 * * *"


def monitoring_schedule(environ: Mapping[str, str] | None = None):
    """The monitoring schedule on MLOPS_MONITOR_CRON (default daily at 06:00 UTC)."""
    return env_schedule(
        name="daily_monitoring_schedule",
        job=monitor_job,
        variable="MLOPS_MONITOR_CRON",
        default_cron=MONITOR_CRON,
        what="Drift and live performance of the champions",
        environ=environ,
    )


daily_monitoring_schedule = monitoring_schedule()
