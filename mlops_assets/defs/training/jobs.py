"""The retraining job: features, splits, training, evaluation, the gate for every model, then batch scores."""

import dagster as dg

from ..ingestion.assets import WAREHOUSE_WRITE_TAGS

train_job = dg.define_asset_job(
    name="train_job",
    # serving/task_risk_scores rides along so a retraining run ends with scores from whoever is champion.
    selection=dg.AssetSelection.groups("features", "training") | dg.AssetSelection.assets(["serving", "task_risk_scores"]),
    description="Rebuild features, split, train, evaluate and gate every model, then rescore open tasks "
    "(the retraining job).",
    tags=WAREHOUSE_WRITE_TAGS,
)
