"""Evaluate a trained model on its test window: metrics, slices, calibration, SHAP importance, plots.

Composes :mod:`~mlops_assets.lib.metrics`, :mod:`~mlops_assets.lib.explain` and :mod:`~mlops_assets.lib.report`
for one model spec so that the evaluation asset only reads inputs, calls :func:`evaluate`, and writes what
comes back. Kept apart from those three: it knows the model spec, the training matrix and the pyfunc
model, which they do not; its name is the warehouse schema its results go to (``reporting.<model>_*``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib import training
from mlops_assets.lib.explain import feature_importance_table
from mlops_assets.lib.metrics import (
    calibration_table,
    choose_threshold,
    classification_metrics,
    metrics_by_slice,
    regression_metrics,
)
from mlops_assets.lib.report import (
    plot_calibration,
    plot_feature_importance,
    plot_pr,
    plot_residuals,
    plot_roc,
    write_evaluation_html,
)

_log = logging.getLogger(__name__)
SLICE_COLUMNS = ("source", "project", "type", "priority")
# Above this many test rows, SHAP importance is computed on a seeded sample: TreeSHAP (pred_contrib) costs
# ~1.4 ms a row for a 560-tree model here, and it was 85% of the evaluation step. Measured at 100k tasks
# (11.5k/12.4k test rows, both models, two seeds): a 5,000-row sample gives every feature's share within
# 0.0017 of the full test window's and the same top-5 features; 20,000 rows cost 4x the time for nothing.
SHAP_SAMPLE_ROWS = 5_000


@dataclass
class Evaluation:
    """Everything the evaluation asset writes and shows."""

    metrics: dict[str, float]  # test_* names (plus threshold for binary)
    slices: pl.DataFrame
    importance: pl.DataFrame
    calibration: pl.DataFrame | None
    plots: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None

    @property
    def top_feature_share(self) -> float:
        return float(self.importance["share"].max() or 0.0) if self.importance.height else 0.0


POINT_METRICS = {"binary": ("roc_auc", "pr_auc", "brier"), "regression": ("mae", "baseline_mae")}


def metrics_by_point(spec: training.ModelSpec, frame: pl.DataFrame) -> dict[str, float]:
    """test_<metric>_at_<point> and test_rows_at_<point> for each prediction point of snapshot rows
    (``snapshots.POINTS``: what the extra knowledge of a later point buys); empty without a point column.
    """
    if "point" not in frame.columns:
        return {}
    out: dict[str, float] = {}
    for (point,), part in frame.group_by("point", maintain_order=True):
        y, p = part["target"].to_numpy(), part["prediction"].to_numpy()
        if spec.kind == "binary":
            metrics = classification_metrics(y, p)
        else:
            metrics = regression_metrics(y, p, part["baseline"].to_numpy())
        out[f"test_rows_at_{point}"] = float(part.height)
        for name in POINT_METRICS[spec.kind]:
            value = metrics.get(name)
            if isinstance(value, int | float) and np.isfinite(value):
                out[f"test_{name}_at_{point}"] = float(value)
    return out


def split_frames(model_input: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The stored model-input table (with a ``split`` column) back into train/validation/test frames."""
    return {name: model_input.filter(pl.col("split") == name).drop("split") for name in training.SPLITS}


# Rows of a split on which the evaluation predicts again with the logged model, to take the training's
# logged predictions (registry.logged_predictions) as that model's: they must agree bit for bit.
VERIFY_ROWS = 2_000


def split_predictions(model: Any, frame: pl.DataFrame, split: str, logged: pl.DataFrame | None) -> np.ndarray:
    """``model``'s predictions on a split: the ones its training logged when they are its own (every
    task in the same order, and a spread sample of VERIFY_ROWS rows predicted here the same bit for bit),
    else predicted here (a run from before they were logged, or they do not match: logged as a warning).
    At 1M tasks predicting test and validation again took 7.8 s of the two evaluations.
    """
    if logged is not None:
        rows = logged.filter(pl.col("split") == split).sort("row")
        if rows.height == frame.height and rows["task_id"].equals(frame["task_id"], check_names=False):
            values = rows["prediction"].to_numpy()
            sample = np.unique(
                np.linspace(0, frame.height - 1, min(VERIFY_ROWS, frame.height)).astype(np.int64)
            )
            if np.array_equal(model.predict_features(frame[sample]), values[sample]):
                return values
        _log.warning(
            "the training's logged %s predictions are not this model's (%d logged, %d rows): predicting again",
            split,
            rows.height,
            frame.height,
        )
    return model.predict_features(frame)


def evaluate(
    spec: training.ModelSpec,
    model: Any,
    splits: dict[str, pl.DataFrame],
    tasks: pl.DataFrame,
    out_dir: Path,
    logged: pl.DataFrame | None = None,
) -> Evaluation:
    """Score ``model`` (a pyfunc TaskModel) on the test split and build the report under ``out_dir``.

    ``logged``: the predictions its training run logged (registry.logged_predictions), used when they
    are this model's (:func:`split_predictions`).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    test = splits["test"]
    y_test = training.original_scale(spec, test["target"].cast(pl.Float64).to_numpy())
    pred = split_predictions(model, test, "test", logged)
    slice_columns = (*SLICE_COLUMNS, "point") if "point" in test.columns else SLICE_COLUMNS
    sliced = test.select("task_id", *(["point"] if "point" in test.columns else [])).join(
        tasks.select("task_id", *SLICE_COLUMNS), on="task_id", how="left"
    )
    frame = sliced.with_columns(pl.Series("target", y_test), pl.Series("prediction", pred))
    plots: dict[str, Path] = {}
    calibration = None
    if spec.kind == "binary":
        y_val = splits["validation"]["target"].to_numpy()
        threshold = choose_threshold(
            y_val, split_predictions(model, splits["validation"], "validation", logged)
        )
        metrics = classification_metrics(y_test, pred, threshold)
        calibration = calibration_table(y_test, pred)
        slices = metrics_by_slice(
            frame, slice_columns, kind="binary", target_column="target", threshold=threshold
        )
        plots["roc"] = plot_roc(y_test, pred, out_dir / "roc.png")
        plots["precision_recall"] = plot_pr(y_test, pred, out_dir / "pr.png")
        plots["calibration"] = plot_calibration(calibration, out_dir / "calibration.png")
    else:
        baseline = training.baseline_prediction(spec, splits["train"], test)
        metrics = regression_metrics(y_test, pred, baseline)
        frame = frame.with_columns(pl.Series("baseline", baseline))
        slices = metrics_by_slice(
            frame, slice_columns, kind="regression", target_column="target", baseline_column="baseline"
        )
        plots["residuals"] = plot_residuals(y_test, pred, out_dir / "residuals.png")
    sample = (
        test.sample(min(test.height, SHAP_SAMPLE_ROWS), seed=0) if test.height > SHAP_SAMPLE_ROWS else test
    )
    model._ensure_loaded()  # noqa: SLF001 - the booster behind the pyfunc
    X = training.to_matrix(sample, model.features, model.category_levels)
    # from the SHAP tables when the trees fit them: built into the model cache, where the batch scores and
    # the online service of this model (once it is the champion) find them
    importance = feature_importance_table(model._booster, X, tables=True)  # noqa: SLF001
    plots["feature_importance"] = plot_feature_importance(importance, out_dir / "feature_importance.png")
    named = {
        f"test_{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float) and np.isfinite(v)
    }
    named |= metrics_by_point(spec, frame)
    report = write_evaluation_html(spec.name, named, slices, plots, out_dir / "evaluation.html")
    return Evaluation(named, slices, importance, calibration, plots, report)
