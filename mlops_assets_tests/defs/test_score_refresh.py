"""Issue 13 item 3: batch scores refresh on a schedule (daily by default), not only when a model or the data changes."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from mlops_assets.definitions import defs
from mlops_assets.defs.serving.schedules import score_schedule

SCORES = dg.AssetKey(["serving", "task_risk_scores"])


def test_the_daily_score_schedule_runs_the_score_job_on_only_the_scores():
    schedule = defs.resolve_schedule_def("daily_score_schedule")
    assert schedule.job_name == "score_job" and schedule.cron_schedule == "30 5 * * *"
    assert (
        schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        and "MLOPS_SCORE_CRON" in schedule.description
    )
    job = defs.resolve_job_def("score_job")
    assert job.asset_layer.executable_asset_keys == {SCORES}  # nothing upstream is rebuilt by the refresh
    # a tick asks for one run of the job
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 12, 4, 5, 30, tzinfo=UTC))
    requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1 and requests[0].job_name in (None, "score_job")


def test_the_cron_comes_from_mlops_score_cron():
    assert score_schedule({"MLOPS_SCORE_CRON": "0 */6 * * *"}).cron_schedule == "0 */6 * * *"
    with pytest.raises(ValueError, match="MLOPS_SCORE_CRON='every morning' is not a cron expression"):
        score_schedule({"MLOPS_SCORE_CRON": "every morning"})
