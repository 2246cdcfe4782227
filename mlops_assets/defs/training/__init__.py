"""Training group: splits, candidates and the champion gate for every model spec (evaluation: its own group)."""

import dagster as dg

from .assets import model_assets
from .jobs import retrain_job

defs = dg.Definitions(assets=model_assets, jobs=[retrain_job])
