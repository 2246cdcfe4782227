"""The retraining job: features, splits, candidate, evaluation and the gate for every model, then batch scores."""

import dagster as dg

from ..shared import WAREHOUSE_WRITE_TAGS

retrain_job = dg.define_asset_job(
    name="retrain_job",
    # serving/task_risk_scores rides along so a retraining run ends with scores from whoever is champion.
    selection=dg.AssetSelection.groups("features", "training", "evaluation")
    | dg.AssetSelection.assets(["serving", "task_risk_scores"]),
    description="Retrain: rebuild features, then for every model split -> candidate -> evaluation -> gate "
    "(every candidate that passes its blocking beats_naive_baseline check is registered in MLflow and made "
    "champion or challenger), then rescore open tasks. Launch it from the UI (Jobs > retrain_job) rather "
    "than a candidate alone, which is neither evaluated, gated nor registered.",
    tags=WAREHOUSE_WRITE_TAGS,
)
