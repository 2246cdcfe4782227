"""The retraining job: features, splits, training, evaluation and the gate for every model."""

import dagster as dg

from ..ingestion.assets import WAREHOUSE_WRITE_TAGS

train_job = dg.define_asset_job(
    name="train_job",
    selection=dg.AssetSelection.groups("features", "training"),
    description="Rebuild features, split, train, evaluate and gate every model (the retraining job).",
    tags=WAREHOUSE_WRITE_TAGS,
)
