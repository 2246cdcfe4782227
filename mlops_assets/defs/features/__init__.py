"""Features group: leakage-safe task features as of creation and at later prediction times."""

import dagster as dg

from .assets import task_features, task_snapshots

defs = dg.Definitions(assets=[task_features, task_snapshots])
