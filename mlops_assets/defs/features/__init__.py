"""Features group: leakage-safe, as-of-creation task features."""

import dagster as dg

from .assets import task_features

defs = dg.Definitions(assets=[task_features])
