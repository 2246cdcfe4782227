"""monitoring/data_drift and monitoring/model_performance: is the champion still looking at the data it learned from?"""

import dagster as dg
import polars as pl
from pydantic import Field

from mlops_assets.lib import drift, monitoring, scoring
from mlops_assets.lib.monitoring import NoReference
from mlops_assets.metadata import readable
from mlops_assets.resources import ExportsResource, MLflowResource, ReportsResource, WarehouseResource

from ..shared import CHAMPIONS, FEATURES, TASKS, WAREHOUSE_WRITE_TAGS
from .checks import DATA_DRIFT, DRIFT_CHECKS, MODEL_PERFORMANCE, PERFORMANCE_CHECKS, performance_check
from .resources import DRIFT_VARIABLES, drift_defaults

SPEC_COMMON = {
    "group_name": "monitoring",
    "tags": {"layer": "reporting"},
    "automation_condition": dg.AutomationCondition.eager(),
}
# can_subset makes check outputs optional: a check left out of the result shows as "skipped" (with the reason
# in the asset metadata) instead of failing the step.
SUBSETTABLE = {"op_tags": WAREHOUSE_WRITE_TAGS, "can_subset": True}


DRIFT = drift_defaults()  # from MLOPS_DRIFT_* variables (defs/monitoring/resources.py)


def _env_field(name: str, what: str):
    variable, default, _ = DRIFT_VARIABLES[name]
    return Field(default=DRIFT[name], description=f"{what} (default {default:g}; {variable} sets it)")


class DataDriftConfig(dg.Config):
    """Current window, per-column effect-size threshold, and the drifted-column share the check tolerates."""

    window_days: float = _env_field("window_days", "days before the newest task that form the current window")
    column_threshold: float = _env_field(
        "column_threshold", "effect size at which a feature counts as drifted"
    )
    # of 13 monitored features at 0.1: one may drift, two fail the check
    drift_share_threshold: float = _env_field(
        "drift_share_threshold", "share of drifted features that fails the check"
    )
    prediction_threshold: float = _env_field(
        "prediction_threshold",
        "smallest score shift that counts as prediction "
        "drift (raised to the sampling noise of small windows)",
    )
    min_current_rows: int = _env_field("min_current_rows", "fewer tasks in the window: not judged (alerted)")
    reference_model: str = "late_risk"
    numeric_columns: list[str] = monitoring.MONITORED_NUMERIC
    categorical_columns: list[str] = monitoring.MONITORED_CATEGORICAL


class ModelPerformanceConfig(dg.Config):
    """How many new labels a verdict needs and how far live metrics may fall behind the champion's test metrics."""

    min_new_labels: int = 50
    roc_auc_tolerance: float = 0.05
    ece_tolerance: float = 0.05
    mae_tolerance: float = 0.25


def load_reference(warehouse: WarehouseResource, client, model: str) -> tuple[str, pl.DataFrame]:
    """lib.monitoring.load_reference on the resource's warehouse, a rebuilt reference told in the run's log."""
    return monitoring.load_reference(warehouse.get(), client, model, log=dg.get_dagster_logger().info)


@dg.multi_asset(
    name="data_drift",
    check_specs=DRIFT_CHECKS,
    **SUBSETTABLE,
    specs=[
        dg.AssetSpec(
            DATA_DRIFT,
            deps=[FEATURES, *CHAMPIONS],
            kinds={"evidently", "duckdb"},
            **SPEC_COMMON,
            description="monitoring.data_drift: per-feature drift between the champion's training reference and the "
            "tasks created in the last N days (before the newest task), the drifted share, and prediction drift of both "
            "champions; history in monitoring.drift_history, Evidently HTML report under data/reports/monitoring/.",
        )
    ],
)
def data_drift(
    context: dg.AssetExecutionContext,
    config: DataDriftConfig,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
    reports: ReportsResource,
    exports: ExportsResource,
):
    """Compare the current window with the champion's training reference, feature by feature and by score."""
    # yielded: a returned MaterializeResult (a tuple) would be taken as one value per output when checks are omitted
    yield _data_drift(context, config, warehouse, mlflow, reports, exports)


def _data_drift(
    context,
    config: DataDriftConfig,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
    reports: ReportsResource,
    exports: ExportsResource,
) -> dg.MaterializeResult:
    wh = warehouse.get()
    feats = wh.read_table("features.task_features")
    window = monitoring.current_window(feats, config.window_days)
    base = {
        "data_version": monitoring.data_version(feats),
        "window": f"{window.start} .. {window.end}",
        "current_rows": window.frame.height,
    }
    client = mlflow.client()
    try:
        version, reference = load_reference(warehouse, client, config.reference_model)
    except NoReference as exc:
        return _unjudged(context, base, str(exc))
    base |= {"champion_version": f"{config.reference_model} v{version}", "reference_rows": reference.height}
    if window.empty:
        return _unjudged(context, base, "no tasks in the current window (features.task_features is empty)")
    if window.frame.height < config.min_current_rows:
        return _unjudged(
            context,
            base,
            f"only {window.frame.height} tasks in the last {config.window_days:g} days "
            f"(need {config.min_current_rows} to judge drift)",
        )
    result = drift.compute_drift(
        reference,
        window.frame,
        config.numeric_columns,
        config.categorical_columns,
        threshold=config.column_threshold,
        drift_share=config.drift_share_threshold,
    )
    predictions = monitoring.prediction_drift(
        client,
        wh,
        feats,
        window,
        days=config.window_days,
        threshold=config.prediction_threshold,
        log=context.log.info,
    )
    report = _report(context, reports, exports, reference, window.frame, config, result)
    monitoring.record_drift(wh, context.run.run_id, result, predictions, base)
    share = result.share_drifted
    detail = {
        **base,
        "drift_share": share,
        "threshold": config.drift_share_threshold,
        "column_threshold": config.column_threshold,
        "window_days": config.window_days,
        "drifted_columns": ", ".join(result.drifted_columns) or "none",
        "skipped_columns": "; ".join(f"{c.column}: {c.reason}" for c in result.skipped) or "none",
    }
    return dg.MaterializeResult(
        asset_key=DATA_DRIFT,
        metadata=readable(
            {
                **{k: v for k, v in detail.items() if v is not None},
                "drift_share": dg.MetadataValue.float(share if share is not None else float("nan")),
                "columns": dg.MetadataValue.md(monitoring.drift_columns_md(result, predictions)),
                **report,
                **{
                    f"prediction_drift_{c.column}": dg.MetadataValue.float(c.score)
                    for c in predictions.compared
                },
            }
        ),
        check_results=[_share_check(share, config, detail), _prediction_check(predictions, config, base)],
    )


def _unjudged(context, base: dict, reason: str) -> dg.MaterializeResult:
    """No verdict possible: failed WARN checks with the reason, so the alert sensor reports it (retraining ignores WARN)."""
    context.log.warning(f"data drift not judged: {reason}")
    meta = {**{k: v for k, v in base.items() if v is not None}, "status": f"not judged: {reason}"}
    warn = dg.AssetCheckSeverity.WARN
    return dg.MaterializeResult(
        asset_key=DATA_DRIFT,
        metadata=meta,
        check_results=[
            dg.AssetCheckResult(
                check_name=spec.name, passed=False, severity=warn, metadata={**meta, "reason": reason}
            )
            for spec in DRIFT_CHECKS
        ],
    )


def _report(
    context,
    reports: ReportsResource,
    exports: ExportsResource,
    reference,
    current,
    config: DataDriftConfig,
    result: drift.DriftResult,
) -> dict:
    """Evidently's page, configured as compute_drift decided and run on the same rows: it shows the same verdict."""
    path = reports.dir("monitoring", context.run.run_id[:8]) / "data_drift.html"
    try:
        written = drift.write_evidently_report(
            reference, current, config.numeric_columns, config.categorical_columns, path, result=result
        )
    except Exception as exc:  # the HTML is for browsing; the verdicts above never depend on it
        context.log.warning(f"Evidently report not written: {exc}")
        return {"report": f"not written: {exc}"}
    # a browser does not open file:// links from the UI: the URL `make serve` serves data/reports/ at
    url = exports.url("reports", written.relative_to(reports.dir())) or written.resolve().as_uri()
    meta = {"report": dg.MetadataValue.path(str(written.resolve())), "report_url": dg.MetadataValue.url(url)}
    sampled = [
        f"{side}: a seeded sample of {drift.PAGE_MAX_ROWS:,} of {frame.height:,} rows"
        for side, frame in (("reference", reference), ("current", current))
        if frame.height > drift.PAGE_MAX_ROWS
    ]
    if sampled:  # the page drew these (drift.page_sample)
        meta["report_rows"] = ", ".join(sampled) + " (the verdicts recorded here are on all rows)"
    return meta


def _share_check(share: float | None, config: DataDriftConfig, detail: dict) -> dg.AssetCheckResult:
    meta = readable({k: v for k, v in detail.items() if v is not None})
    if share is None:
        return dg.AssetCheckResult(
            check_name=monitoring.DRIFT_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**meta, "reason": "no monitored column could be compared"},
        )
    # fails at share >= threshold, as DriftResult.dataset_drifted and Evidently's page decide
    passed = share < config.drift_share_threshold
    reason = (
        f"{share:.0%} of monitored features drifted ({meta['drifted_columns']}), "
        f"{'below' if passed else 'at or above'} the {config.drift_share_threshold:.0%} threshold"
    )
    return dg.AssetCheckResult(
        check_name=monitoring.DRIFT_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**meta, "reason": reason},
    )


def _prediction_check(
    predictions: drift.DriftResult, config: DataDriftConfig, base: dict
) -> dg.AssetCheckResult:
    drifted = predictions.drifted_columns
    scores = readable({c.column: c.score for c in predictions.compared})
    skipped = "; ".join(f"{c.column}: {c.reason}" for c in predictions.skipped)
    reason = (f"drifted: {', '.join(drifted)}" if drifted else "no score drifted") + (
        f"; skipped {skipped}" if skipped else ""
    )
    return dg.AssetCheckResult(
        check_name="prediction_drift_small",
        passed=not drifted and not skipped,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={**{k: v for k, v in base.items() if v is not None}, **scores, "reason": reason},
    )


@dg.multi_asset(
    name="model_performance",
    check_specs=PERFORMANCE_CHECKS,
    **SUBSETTABLE,
    specs=[
        dg.AssetSpec(
            MODEL_PERFORMANCE,
            deps=[TASKS, FEATURES, *CHAMPIONS],
            kinds={"lightgbm", "duckdb"},
            **SPEC_COMMON,
            description="monitoring.model_performance: each champion judged on the tasks whose outcome became known "
            "after it was trained (late labels): ROC-AUC and calibration for late_risk, MAE for cycle_time, against its "
            "own test metrics; history in monitoring.performance_history.",
        )
    ],
)
def model_performance(
    context: dg.AssetExecutionContext,
    config: ModelPerformanceConfig,
    warehouse: WarehouseResource,
    mlflow: MLflowResource,
):
    """Score each champion on its new labels and compare with the metrics it was promoted on."""
    wh = warehouse.get()
    tasks, feats = wh.read_table("clean.tasks"), wh.read_table("features.task_features")
    client = mlflow.client()
    version_tag = monitoring.data_version(feats)
    verdicts, checks = [], []
    for name in scoring.MODEL_NAMES:
        try:
            verdict, version = monitoring.judge_champion(
                name,
                tasks,
                feats,
                client,
                wh,
                min_labels=config.min_new_labels,
                roc_auc_tolerance=config.roc_auc_tolerance,
                ece_tolerance=config.ece_tolerance,
                mae_tolerance=config.mae_tolerance,
                log=context.log.info,
            )
        except NoReference as exc:
            verdict, version = monitoring.PerformanceVerdict(name, "not judged", str(exc), 0), None
        verdicts.append((verdict, version))
        context.log.info(f"{name}: {verdict.status}: {verdict.reason}")
        if verdict.status != "skipped":  # omitted = "skipped" in the UI, reason in the asset metadata
            checks.append(performance_check(verdict, version, version_tag))
    monitoring.record_performance(wh, context.run.run_id, verdicts)
    meta: dict = {"data_version": version_tag}
    for verdict, version in verdicts:
        meta[f"{verdict.model}_champion_version"] = version or "none"
        meta[f"{verdict.model}_status"] = f"{verdict.status}: {verdict.reason}"
        meta[f"{verdict.model}_new_labels"] = verdict.n_labels
        meta |= {f"{verdict.model}_{k}": dg.MetadataValue.float(v) for k, v in verdict.live.items() if v == v}
    yield dg.MaterializeResult(asset_key=MODEL_PERFORMANCE, metadata=readable(meta), check_results=checks)
