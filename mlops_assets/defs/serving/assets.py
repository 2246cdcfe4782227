"""serving/task_risk_scores: every open task scored by the champions, refreshed by itself."""

from datetime import UTC, datetime

import dagster as dg

from mlops_assets.lib import fast_trees, scoring
from mlops_assets.resources import MLflowResource, WarehouseResource

from ..ingestion.assets import WAREHOUSE_WRITE_TAGS

CHAMPIONS = [dg.AssetKey(["models", f"{m}_champion"]) for m in scoring.MODEL_NAMES]


@dg.asset(
    key=["serving", "task_risk_scores"],
    deps=[dg.AssetKey(["clean", "tasks"]), *CHAMPIONS],
    group_name="serving",
    kinds={"duckdb", "lightgbm"},
    tags={"layer": "model_output"},
    op_tags=WAREHOUSE_WRITE_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
    description="serving.task_risk_scores: every open task with its late_risk probability and band, the top "
    "three reasons in words, and a predicted completion date from the cycle_time champion; each row names "
    "the model versions and the scoring time. Rescored when a champion changes or new tasks land.",
)
def task_risk_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                     mlflow: MLflowResource) -> dg.MaterializeResult:
    """Score every open task with the current champions."""
    wh = warehouse.get()
    try:
        # A new champion too big to compile quickly is scored by LightGBM itself this time (same numbers);
        # the online service compiles it in the background and later batches find it in the cache.
        champions = scoring.load_champions(mlflow.client(), max_compile_leaves=fast_trees.MAX_BATCH_COMPILE_LEAVES)
    except scoring.NoChampionError as exc:
        raise dg.Failure(description=str(exc)) from None
    tasks = wh.read_table("clean.tasks")
    scores = scoring.score_open_tasks(tasks, champions["late_risk"], champions["cycle_time"],
                                      datetime.now(UTC))
    wh.replace_tables({"serving.task_risk_scores": scores})
    bands = dict(scores.group_by("risk_band").len().iter_rows()) if scores.height else {}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": scores.height,
        "late_risk_version": champions["late_risk"].version,
        "cycle_time_version": champions["cycle_time"].version,
        "compiled": ", ".join(f"{n}: {'native code' if m.forest is not None else 'LightGBM'}"
                              f"{', compiled SHAP' if m.shap is not None else ''}" for n, m in champions.items()),
        "risk_bands": dg.MetadataValue.json({str(k): v for k, v in bands.items()}),
        "mean_late_risk": float(scores["late_risk"].mean() or 0.0) if scores.height else 0.0,
    })
