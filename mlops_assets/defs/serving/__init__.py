"""Serving group: batch risk scores for open tasks (the online service lives in mlops_assets.serving)."""

import dagster as dg

from .assets import task_risk_scores

defs = dg.Definitions(assets=[task_risk_scores])
