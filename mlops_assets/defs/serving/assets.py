"""serving/task_risk_scores: every open task scored by the champions, refreshed by itself."""

import dagster as dg
import polars as pl

from mlops_assets import __version__
from mlops_assets.lib import exports as pm_exports
from mlops_assets.lib import fast_trees, scoring
from mlops_assets.metadata import readable
from mlops_assets.resources import ExportsResource, MLflowResource, WarehouseResource

from ..shared import CHAMPIONS, TASK_EVENTS, TASKS, WAREHOUSE_WRITE_TAGS


@dg.asset(
    key=["serving", "task_risk_scores"],
    deps=[TASKS, TASK_EVENTS, *CHAMPIONS],
    group_name="serving",
    kinds={"duckdb", "lightgbm"},
    tags={"layer": "model_output"},
    op_tags=WAREHOUSE_WRITE_TAGS,
    automation_condition=dg.AutomationCondition.eager(),
    description="serving.task_risk_scores: every open task with its late_risk probability and band, the top "
    "three reasons in words, and a predicted completion date from the cycle_time champion; each row names "
    "the model versions and the time the scores are as of (now for live data, else the data's end, or "
    "MLOPS_AS_OF). Rescored when a champion changes or new tasks land, and daily (daily_score_schedule); each "
    "refresh also exports them for project managers (CSV, Parquet, an HTML page per project under "
    "data/exports/, linked below and served by `make serve`).",
)
def task_risk_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
    exports: ExportsResource,
) -> dg.MaterializeResult:
    """Score every open task with the current champions as of the scoring time, and export them for PMs."""
    wh = warehouse.get()
    tasks = wh.read_table("clean.tasks")
    try:
        # A new champion is compiled to native code only when this batch is big enough to repay it (and
        # never past MAX_BATCH_COMPILE_LEAVES); else LightGBM scores it this time, the same numbers. The
        # online service compiles it in the background and later batches find it in the cache.
        champions = scoring.load_champions(
            mlflow.client(),
            max_compile_leaves=fast_trees.MAX_BATCH_COMPILE_LEAVES,
            batch_rows=scoring.open_tasks(tasks).height,
        )
    except scoring.NoChampionError as exc:
        raise dg.Failure(description=str(exc)) from None
    try:
        as_of, as_of_source = scoring.scoring_as_of(tasks)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    # each open task as it stands at as_of: its age, status, reassignments, deadline moves (clean.task_events)
    events = wh.read_table("clean.task_events") if wh.table_exists("clean.task_events") else None
    scores = scoring.score_open_tasks(
        tasks, champions["late_risk"], champions["cycle_time"], as_of, events=events
    )
    scores = scores.with_columns(
        pl.lit(__version__).alias("package_version")
    )  # the code that scored each row
    wh.replace_tables({"serving.task_risk_scores": scores})
    # after the table commits: the files are written from memory, so no reader of them holds the warehouse
    written = pm_exports.write_exports(pm_exports.pm_view(scores, tasks), exports.dir(), as_of, as_of_source)
    bands = dict(scores.group_by("risk_band").len().iter_rows()) if scores.height else {}
    return dg.MaterializeResult(
        metadata=readable(
            {
                "dagster/row_count": scores.height,
                "package_version": __version__,
                "late_risk_version": champions["late_risk"].version,
                "cycle_time_version": champions["cycle_time"].version,
                "compiled": ", ".join(
                    f"{n}: {'native code' if m.forest is not None else 'LightGBM'}"
                    f"{', compiled SHAP' if m.shap is not None else ''}"
                    for n, m in champions.items()
                ),
                "risk_bands": dg.MetadataValue.json({str(k): v for k, v in bands.items()}),
                "mean_late_risk": float(scores["late_risk"].mean() or 0.0) if scores.height else 0.0,
                "as_of": as_of.isoformat(timespec="seconds"),
                "as_of_source": as_of_source,
                **export_links(written, exports),
            }
        )
    )


def export_links(written: pm_exports.ExportResult, exports: ExportsResource) -> dict[str, dg.MetadataValue]:
    """Links to the PM exports: URLs the scoring service serves (`make serve`), and the files' paths."""
    out: dict[str, dg.MetadataValue] = {}
    for label, path in (
        ("pm_projects", written.index),
        ("pm_csv", written.csv),
        ("pm_parquet", written.parquet),
    ):
        url = exports.url("exports", path.relative_to(written.root))
        if url:
            out[label] = dg.MetadataValue.url(url)
        out[f"{label}_path"] = dg.MetadataValue.path(str(path.resolve()))
    return out
