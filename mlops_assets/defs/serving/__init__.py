"""Serving group: batch risk scores for open tasks, refreshed daily (the online service lives in mlops_assets.serving)."""

import dagster as dg

from .assets import task_risk_scores
from .jobs import score_job
from .schedules import daily_score_schedule

defs = dg.Definitions(assets=[task_risk_scores], jobs=[score_job], schedules=[daily_score_schedule])
