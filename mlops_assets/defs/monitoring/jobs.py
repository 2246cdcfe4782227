"""Jobs of the monitoring group."""

import dagster as dg

from ..shared import WAREHOUSE_WRITE_TAGS

monitor_job = dg.define_asset_job(
    name="monitor_job",
    selection=dg.AssetSelection.groups("monitoring"),
    description="Measure data drift, prediction drift and the champions' performance on late labels.",
    tags=WAREHOUSE_WRITE_TAGS,
)
