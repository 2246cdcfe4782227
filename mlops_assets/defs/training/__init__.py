"""Training group: splits, candidates, evaluation and the champion gate for every model spec."""

import dagster as dg

from .assets import model_assets
from .jobs import train_job

defs = dg.Definitions(assets=model_assets, jobs=[train_job])
