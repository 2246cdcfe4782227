"""Daily score refresh (05:30 UTC: after the daily ingestion, before monitoring); the cron comes from MLOPS_SCORE_CRON."""

from collections.abc import Mapping

from ..schedule_env import env_schedule
from .jobs import score_job

SCORE_CRON = "30 5 * * *"


def score_schedule(environ: Mapping[str, str] | None = None):
    """The score refresh schedule on MLOPS_SCORE_CRON (default daily at 05:30 UTC)."""
    return env_schedule(
        name="daily_score_schedule",
        job=score_job,
        variable="MLOPS_SCORE_CRON",
        default_cron=SCORE_CRON,
        what="Rescore every open task as of the scoring time",
        environ=environ,
    )


daily_score_schedule = score_schedule()
