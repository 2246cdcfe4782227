"""Evaluation of the two task models: `late_risk` (binary) and `cycle_time` (regression, days).

Pure functions over numpy, polars and pandas inputs; no dagster. Heavy imports (lightgbm, matplotlib,
pandas) stay inside the functions that need them.

Undefined is not zero: a metric that has no value on its input (ROC AUC on a single class, precision
with nothing flagged, anything on zero rows) is None, never an exception and never a made-up number.
Invalid input (missing labels, labels other than 0/1, lengths that differ) raises ValueError saying
what to fix. The binary decision rule everywhere is `y_prob >= threshold`.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import lightgbm
    import pandas as pd

DEFAULT_THRESHOLD = 0.5
DEFAULT_SLICE_COLUMNS = ("source", "project", "type", "priority")
SLICE_SCHEMA = {
    "slice_column": pl.String,
    "slice_value": pl.String,
    "metric": pl.String,
    "value": pl.Float64,
    "n": pl.Int64,
}
# metrics_by_slice writes one row with this metric (value null) for each slice it does not evaluate.
SKIPPED_METRIC = "skipped_below_min_size"
MISSING_SLICE_VALUE = "(missing)"
BASE_VALUE_COLUMN = "base_value"


# --------------------------------------------------------------------------------------------------
# input checks


def _as_float_array(values: Any, name: str) -> np.ndarray:
    """A 1-D float array from a list, numpy array, pandas or polars Series; NaN where values are null."""
    try:
        if isinstance(values, pl.Series):
            values = values.cast(pl.Float64).to_numpy()
        elif hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
            values = values.to_numpy(dtype=float, na_value=np.nan)  # pandas, incl. nullable dtypes
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers (got {type(values).__name__}): {error}") from error
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _finite(values: Any, name: str) -> np.ndarray:
    array = _as_float_array(values, name)
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} missing or infinite values; drop those rows before evaluating")
    return array


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs differ in length: {lengths}")


def _binary_inputs(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _finite(y_true, "y_true")
    p = _finite(y_prob, "y_prob")
    _same_length(y_true=y, y_prob=p)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(
            f"y_true must hold only 0/1 (or False/True) labels, found {sorted(set(y.tolist()))[:5]}"
        )
    if len(p) and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError(f"y_prob must be probabilities in [0, 1], found range [{p.min()}, {p.max()}]")
    return y, p


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


# --------------------------------------------------------------------------------------------------
# binary classification


def _curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positives when flagging `p >= t`, for each distinct score t in decreasing order."""
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    # the last index of each run of equal scores: flagging at that score flags the whole run
    last = np.r_[np.nonzero(np.diff(p_sorted))[0], len(p_sorted) - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    return fps, tps, p_sorted[last]


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score  # imported here: serving imports this module for reasons

    return float(roc_auc_score(y, p))


def _average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Step-wise average precision, sum over thresholds of (R_n - R_n-1) * P_n."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p))


def _quantile_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index per row: quantile edges of p, collapsed where ties make edges equal."""
    inner = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))[1:-1])
    return np.searchsorted(inner, p, side="right")


def _calibration_arrays(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, np.ndarray]:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if len(p) == 0:
        return {name: np.array([]) for name in ("count", "mean_predicted", "observed_rate", "min", "max")}
    bins = _quantile_bins(p, n_bins)
    count = np.bincount(bins)
    used = count > 0
    count = count[used]
    order = np.argsort(bins, kind="mergesort")
    starts = np.r_[0, np.cumsum(count)[:-1]]
    p_by_bin = p[order]
    return {
        "count": count,
        "mean_predicted": np.bincount(bins, weights=p)[used] / count,
        "observed_rate": np.bincount(bins, weights=y)[used] / count,
        "min": np.minimum.reduceat(p_by_bin, starts),
        "max": np.maximum.reduceat(p_by_bin, starts),
    }


def _ece(arrays: Mapping[str, np.ndarray]) -> float | None:
    count = arrays["count"]
    if count.sum() == 0:
        return None
    gaps = np.abs(arrays["observed_rate"] - arrays["mean_predicted"])
    return float(np.sum(count * gaps) / count.sum())


def classification_metrics(
    y_true: Any, y_prob: Any, threshold: float | None = None, n_bins: int = 10
) -> dict[str, float | int | None]:
    """Ranking, probability and decision metrics of a binary model; None where a metric is undefined.

    roc_auc and pr_auc (average precision) need both classes; f1, precision and recall are taken at
    `threshold` (default 0.5; pass the one `choose_threshold` picked on validation); ece uses
    `n_bins` quantile bins.
    """
    y, p = _binary_inputs(y_true, y_prob)
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    n = len(y)
    positives = float(y.sum())
    both_classes = 0 < positives < n
    flagged = p >= threshold
    tp = float(y[flagged].sum())
    fp = float(flagged.sum()) - tp
    fn = positives - tp
    from sklearn.metrics import brier_score_loss, log_loss

    return {
        "n": n,
        "threshold": threshold,
        "positive_rate": _ratio(positives, n),
        "predicted_positive_rate": _ratio(float(flagged.sum()), n),
        "mean_predicted": float(p.mean()) if n else None,
        "roc_auc": _roc_auc(y, p) if both_classes else None,
        "pr_auc": _average_precision(y, p) if both_classes else None,
        "brier": float(brier_score_loss(y, p, labels=[0, 1])) if n else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if n else None,
        "ece": _ece(_calibration_arrays(y, p, n_bins)),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, positives),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def choose_threshold(y_true: Any, y_prob: Any) -> float:
    """The score that maximizes F1 on these (validation) labels when flagging `y_prob >= threshold`.

    Candidates are the distinct predicted scores; among equal F1 the highest threshold wins (fewest
    tasks flagged). Raises ValueError when the labels have no positive, since F1 is then 0 everywhere.
    """
    y, p = _binary_inputs(y_true, y_prob)
    if y.sum() == 0:
        raise ValueError(f"cannot choose an F1 threshold: the {len(y)} validation labels have no positive")
    fps, tps, thresholds = _curve(y, p)
    f1 = 2 * tps / (tps + fps + y.sum())
    return float(thresholds[int(np.argmax(f1))])


def calibration_table(y_true: Any, y_prob: Any, n_bins: int = 10) -> pl.DataFrame:
    """Reliability table over quantile bins of y_prob: one row per non-empty bin.

    Ties can merge quantile edges, so there may be fewer than `n_bins` rows.
    """
    y, p = _binary_inputs(y_true, y_prob)
    arrays = _calibration_arrays(y, p, n_bins)
    return pl.DataFrame(
        {
            "bin": np.arange(len(arrays["count"]), dtype=np.int32),
            "prob_min": arrays["min"].astype(float),
            "prob_max": arrays["max"].astype(float),
            "mean_predicted": arrays["mean_predicted"].astype(float),
            "observed_rate": arrays["observed_rate"].astype(float),
            "count": arrays["count"].astype(np.int64),
        }
    )


def expected_calibration_error(table: pl.DataFrame) -> float | None:
    """Count-weighted mean |observed rate - mean predicted| over a `calibration_table`; None if empty."""
    return _ece({name: table[name].to_numpy() for name in ("count", "mean_predicted", "observed_rate")})


# --------------------------------------------------------------------------------------------------
# regression


def _error_summary(errors: np.ndarray, prefix: str = "") -> dict[str, float | None]:
    empty = len(errors) == 0
    return {
        f"{prefix}mae": None if empty else float(np.mean(np.abs(errors))),
        f"{prefix}rmse": None if empty else float(np.sqrt(np.mean(errors**2))),
        f"{prefix}median_ae": None if empty else float(np.median(np.abs(errors))),
    }


def regression_metrics(
    y_true_days: Any, y_pred_days: Any, y_baseline_days: Any | None = None
) -> dict[str, float | int | None]:
    """Errors in days of a cycle-time model and of a naive baseline; None where undefined.

    mae_improvement = 1 - mae / baseline_mae (positive: the model beats the baseline).
    """
    y = _finite(y_true_days, "y_true_days")
    pred = _finite(y_pred_days, "y_pred_days")
    _same_length(y_true_days=y, y_pred_days=pred)
    metrics: dict[str, float | int | None] = {"n": len(y), **_error_summary(pred - y)}
    if y_baseline_days is None:
        metrics.update(_error_summary(np.array([]), "baseline_"))
    else:
        baseline = _finite(y_baseline_days, "y_baseline_days")
        _same_length(y_true_days=y, y_baseline_days=baseline)
        metrics.update(_error_summary(baseline - y, "baseline_"))
    mae, baseline_mae = metrics["mae"], metrics["baseline_mae"]
    metrics["mae_improvement"] = (1.0 - mae / baseline_mae) if mae is not None and baseline_mae else None
    return metrics


def median_baseline(
    train_frame: pl.DataFrame,
    test_frame: pl.DataFrame,
    by: str | Sequence[str] = "project",
    target: str = "cycle_time_days",
) -> pl.Series:
    """Naive prediction for each test row: the train median of `target` in its `by` group.

    Groups absent from train (or null keys) get the global train median. Returned in test row order.
    """
    keys = [by] if isinstance(by, str) else list(by)
    for name, frame, needed in (
        ("train_frame", train_frame, [*keys, target]),
        ("test_frame", test_frame, keys),
    ):
        missing = [column for column in needed if column not in frame.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}; it has {frame.columns}")
    train = train_frame.select([*keys, target]).drop_nulls(target)
    if train.height == 0:
        raise ValueError(f"train_frame has no non-null {target!r}; a median baseline needs labelled rows")
    global_median = train[target].median()
    medians = train.group_by(keys).agg(pl.col(target).median().alias("_median"))
    return (
        test_frame.select(keys)
        .with_row_index("_row")
        .join(medians, on=keys, how="left")
        .sort("_row")
        .select(pl.col("_median").fill_null(global_median).cast(pl.Float64).alias(f"baseline_{target}"))
        .to_series()
    )


# --------------------------------------------------------------------------------------------------
# slices


def metrics_by_slice(
    frame: pl.DataFrame,
    slice_columns: Sequence[str] = DEFAULT_SLICE_COLUMNS,
    kind: str = "binary",
    target_column: str | None = None,
    prediction_column: str = "prediction",
    baseline_column: str | None = None,
    threshold: float | None = None,
    min_slice_size: int = 30,
    include_overall: bool = True,
) -> pl.DataFrame:
    """Metrics per value of each slice column, long format (slice_column, slice_value, metric, value, n).

    kind "binary" uses `classification_metrics` at `threshold`; "regression" uses `regression_metrics`
    (baseline metrics when `baseline_column` is given). `target_column` defaults to is_late or
    cycle_time_days. Null slice values form the slice "(missing)". A slice with fewer than
    `min_slice_size` rows is not evaluated: it appears as one row with metric "skipped_below_min_size",
    a null value and its n. With `include_overall`, the first rows are slice ("overall", "all").
    """
    if kind not in ("binary", "regression"):
        raise ValueError(f"kind must be 'binary' or 'regression', got {kind!r}")
    target_column = target_column or ("is_late" if kind == "binary" else "cycle_time_days")
    value_columns = [target_column, prediction_column] + ([baseline_column] if baseline_column else [])
    missing = [column for column in [*value_columns, *slice_columns] if column not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; it has {frame.columns}")
    arrays = {column: _finite(frame[column], column) for column in value_columns}

    def evaluate(rows: np.ndarray | slice) -> dict[str, float | int | None]:
        if kind == "binary":
            return classification_metrics(
                arrays[target_column][rows], arrays[prediction_column][rows], threshold
            )
        baseline = arrays[baseline_column][rows] if baseline_column else None
        return regression_metrics(arrays[target_column][rows], arrays[prediction_column][rows], baseline)

    records: list[tuple[str, str, str, float | None, int]] = []

    def add(column: str, value: str, rows: np.ndarray | slice, n: int) -> None:
        if n < min_slice_size:
            records.append((column, value, SKIPPED_METRIC, None, n))
            return
        for metric, result in evaluate(rows).items():
            if metric not in ("n", "threshold"):
                records.append((column, value, metric, None if result is None else float(result), n))

    if include_overall:
        add("overall", "all", slice(None), frame.height)
    for column in slice_columns:
        groups = (
            frame.select(pl.col(column).cast(pl.String).fill_null(MISSING_SLICE_VALUE).alias("value"))
            .with_row_index("row")
            .group_by("value")
            .agg(pl.col("row"))
            .sort("value")
        )
        for value, rows in groups.iter_rows():
            add(column, value, np.asarray(rows, dtype=np.int64), len(rows))
    return pl.DataFrame(records, schema=SLICE_SCHEMA, orient="row")


# --------------------------------------------------------------------------------------------------
# explanations


def shap_contributions(booster: lightgbm.Booster, X: pd.DataFrame) -> pd.DataFrame:
    """Per-row feature contributions (TreeSHAP, LightGBM's `pred_contrib=True`) plus a base_value column.

    They add up to the raw score: log-odds for late_risk, the training target (days, or log1p days) for
    cycle_time.
    """
    import pandas as pd

    features = booster.feature_name()
    missing = [name for name in features if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the booster's feature column(s) {missing}")
    contribs = np.asarray(booster.predict(X[features], pred_contrib=True))
    if contribs.shape[1] != len(features) + 1:
        raise ValueError(
            f"expected {len(features) + 1} contribution columns (one model output), got "
            f"{contribs.shape[1]}; multiclass boosters are not supported"
        )
    return pd.DataFrame(contribs, columns=[*features, BASE_VALUE_COLUMN], index=X.index)


def feature_importance_table(
    booster: lightgbm.Booster, X: pd.DataFrame, contribs: pd.DataFrame | None = None
) -> pl.DataFrame:
    """Features by mean |SHAP| on X (share of the total) with LightGBM's total split gain; largest first.

    Pass `contribs` from `shap_contributions` to avoid computing them twice.
    """
    if contribs is None:
        contribs = shap_contributions(booster, X)
    features = booster.feature_name()
    mean_abs = (
        np.abs(contribs[features].to_numpy(dtype=float)).mean(axis=0)
        if len(contribs)
        else np.zeros(len(features))
    )
    total = mean_abs.sum()
    return pl.DataFrame(
        {
            "feature": features,
            "mean_abs_shap": mean_abs,
            "share": mean_abs / total if total > 0 else [None] * len(features),
            "gain": booster.feature_importance(importance_type="gain").astype(float),
        },
        schema={"feature": pl.String, "mean_abs_shap": pl.Float64, "share": pl.Float64, "gain": pl.Float64},
    ).sort("mean_abs_shap", descending=True, maintain_order=True)


class Phrase(NamedTuple):
    """How a feature reads in a reason: `template` with {value} (and {s} for a plural 's'), the value's
    `kind` (how it is rounded and written), the text for a missing value and, optionally, for zero."""

    template: str
    kind: str = "number"
    missing: str | None = None
    zero: str | None = None


RISK_EFFECTS = ("raises the risk", "lowers the risk")
CYCLE_TIME_EFFECTS = ("adds to the expected time to finish", "cuts the expected time to finish")

# Extend freely; a feature not listed here reads as "<feature name in words> (<value>)".
FEATURE_PHRASES: dict[str, Phrase] = {
    # a category the model did not see in training arrives as missing, like a null one
    "project": Phrase("project {value}", "text", "a new or unknown project"),
    "source": Phrase("tracked in {value}", "text", "an unknown tracker"),
    "type": Phrase("task type '{value}'", "text", "a new or unknown task type"),
    "priority": Phrase("{value} priority", "text", "no priority set"),
    "priority_ordinal": Phrase("{value} priority", "priority", "no priority set"),
    "story_points": Phrase("{value} story point{s}", "number", "no story points"),
    "original_estimate_h": Phrase("an estimate of {value}", "hours", "no time estimate"),
    "title_length": Phrase("a {value}-character title", "count", zero="an empty title"),
    "description_length": Phrase("a {value}-character description", "count", zero="no description"),
    "n_labels": Phrase("{value} label{s}", "count", zero="no labels"),
    "n_subtasks": Phrase("{value} subtask{s}", "count", zero="no subtasks"),
    "n_links": Phrase("{value} linked issue{s}", "count", zero="no linked issues"),
    "has_deadline": Phrase("a deadline was set", "flag", zero="no deadline was set"),
    "deadline_horizon_days": Phrase("deadline {value} after creation", "days", "no deadline"),
    "created_weekday": Phrase("created on a {value}", "weekday"),
    "created_hour": Phrase("created at {value}", "hour"),
    "created_month": Phrase("created in {value}", "month"),
    "created_day_of_year": Phrase("created on day {value} of the year", "count"),
    "project_late_rate": Phrase(
        "the project's history of {value} late tasks", "percent", "no deadline track record in the project"
    ),
    "project_n_outcomes": Phrase(
        "{value} past deadline{s} in the project", "count", zero="no past deadlines in the project"
    ),
    "project_n_resolved": Phrase(
        "the project had finished {value} task{s} before",
        "count",
        zero="a project with no finished tasks yet",
    ),
    "project_median_cycle_days": Phrase(
        "the project's typical {value} to finish", "days", "no finished tasks in the project yet"
    ),
    "assignee_late_rate": Phrase(
        "the assignee's history of {value} late tasks", "percent", "no assignee deadline track record"
    ),
    "assignee_n_outcomes": Phrase(
        "{value} past deadline{s} for the assignee",
        "count",
        "no assignee",
        "no past deadlines for the assignee",
    ),
    "assignee_n_resolved": Phrase(
        "the assignee had finished {value} task{s} before",
        "count",
        "no assignee",
        "the assignee had finished no tasks before",
    ),
    "assignee_median_cycle_days": Phrase(
        "the assignee's typical {value} to finish", "days", "no finished tasks by the assignee yet"
    ),
    "assignee_open_tasks": Phrase(
        "assignee already had {value} open task{s}",
        "count",
        "no assignee",
        "assignee had no other open tasks",
    ),
    "project_open_tasks": Phrase("the project already had {value} open task{s}", "count"),
    # the task as it stands at the prediction time (features.build_features at= / asof)
    "age_days": Phrase("open for {value}", "days"),
    "days_to_deadline": Phrase("{value} left to the deadline", "days", "no deadline"),
    "has_assignee": Phrase("an assignee is set", "flag", zero="nobody is assigned"),
    "status_stage": Phrase("status {value}", "status"),
    "days_in_status": Phrase("{value} in its current status", "days"),
    "days_in_progress": Phrase("in progress for {value}", "days", zero="not in progress"),
    "n_status_changes": Phrase("{value} status change{s}", "count", zero="no status change yet"),
    "n_reopenings": Phrase("reopened {value}", "times", zero="never reopened"),
    "n_reassignments": Phrase("reassigned {value}", "times", zero="never reassigned"),
    "n_priority_changes": Phrase("priority changed {value}", "times", zero="priority never changed"),
    "n_deadline_moves": Phrase("deadline moved {value}", "times", zero="deadline never moved"),
    "deadline_moved_days": Phrase("deadline moved {value}", "shift", zero="deadline not moved"),
    "n_comments_so_far": Phrase("{value} comment{s} so far", "count", zero="no comments yet"),
}

# Features that say the same thing as another: their contributions are added to that feature's before
# ranking (SHAP values are additive), so a reason list never says "high priority" twice, or both ways.
FEATURE_ALIASES: dict[str, str] = {"priority_ordinal": "priority"}

_PRIORITY_NAMES = {1: "lowest", 2: "low", 3: "medium", 4: "high", 5: "highest"}
# ISO weekday numbers, as polars' dt.weekday() gives them
_WEEKDAY_NAMES = dict(enumerate("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(), start=1))
_MONTH_NAMES = dict(
    enumerate(
        "January February March April May June July August September October November December".split(),
        start=1,
    )
)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:g}"


def _bucket(values: np.ndarray, kind: str) -> np.ndarray:
    """Round values to what their text will show, so equal texts share one key (NaN stays NaN)."""
    if kind == "percent":
        return np.round(values * 100.0)
    if kind in ("hours", "number"):
        magnitude = np.abs(values)
        return np.where(
            magnitude < 10,
            np.round(values, 1),
            np.where(magnitude < 100, np.round(values), np.round(values, -1)),
        )
    if kind in ("count", "days", "priority", "weekday", "month", "hour", "times", "shift", "status"):
        return np.round(values)
    if kind == "flag":
        return np.where(np.isnan(values), np.nan, values != 0)
    raise ValueError(
        f"unknown phrase kind {kind!r}; use one of percent, hours, number, count, days, "
        "priority, weekday, month, hour, times, shift, status, flag, text"
    )


def _value_text(key: float, kind: str) -> tuple[str, str]:
    """(text, plural suffix) of a bucketed value."""
    names = {"priority": _PRIORITY_NAMES, "weekday": _WEEKDAY_NAMES, "month": _MONTH_NAMES}.get(kind)
    plural = "" if key == 1 else "s"
    if names is not None and int(key) in names:
        return names[int(key)], plural
    if kind == "percent":
        return f"{key:.0f}%", plural
    if kind == "days":
        return ("under a day" if key == 0 else f"{_number(key)} day{plural}"), plural
    if kind == "hours":
        return f"{_number(key)} hour{plural}", plural
    if kind == "times":  # "reassigned twice"
        return {1: "once", 2: "twice"}.get(int(key), f"{_number(key)} times"), plural
    if kind == "shift":  # "deadline moved out by 9 days"
        days = f"{_number(abs(key))} day{'' if abs(key) == 1 else 's'}"
        return (f"out by {days}" if key > 0 else f"in by {days}"), plural
    if kind == "status":
        return {0: "to do", 1: "in progress", 2: "in review", 3: "done"}.get(int(key), _number(key)), plural
    if kind == "hour":
        return f"{int(key) % 24:02d}:00", plural
    return _number(key), plural


def _phrase_for(feature: str, phrases: Mapping[str, Phrase]) -> Phrase:
    if feature in phrases:
        return phrases[feature]
    words = feature.replace("_", " ").strip()
    return Phrase(words + " ({value})", "number", words + " not recorded")


def _description(phrase: Phrase, feature: str, key: float, labels: Sequence[str] | None) -> str:
    """The words for one bucketed value of a feature (without the effect)."""
    if np.isnan(key):
        return phrase.missing or f"{feature.replace('_', ' ')} not recorded"
    if phrase.kind == "flag":
        truthy = labels[int(key)].lower() not in ("false", "0", "no") if labels is not None else key != 0
        return phrase.template if truthy else (phrase.zero or f"not: {phrase.template}")
    if labels is not None:
        return phrase.template.format(value=labels[int(key)], s="s")
    if key == 0 and phrase.zero:
        return phrase.zero
    text, plural = _value_text(key, phrase.kind)
    return phrase.template.format(value=text, s=plural)


def _column_values(values: Any) -> tuple[np.ndarray, list[str] | None]:
    """A feature column as floats (NaN for missing), or as float codes into labels for text/categories."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes, [str(label) for label in series.cat.categories]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan), None
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = codes.astype(float)
    codes[codes < 0] = np.nan
    return codes, [str(label) for label in uniques]


def _top_contributions(contribs: pd.DataFrame, features: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, contribution) of the k largest |contributions| of each row, largest first, each (n, k).

    An aliased feature's contribution counts as its target's. k passes of argmax over a float32 |matrix|:
    several times faster than a row-wise argpartition, whose per-row overhead dominates on ~20 columns.
    """
    # a view, not a copy, when the frame is one float block as shap_contributions makes it
    matrix = contribs.to_numpy(dtype=float)
    positions = [contribs.columns.get_loc(name) for name in features]
    if positions == list(range(positions[0], positions[0] + len(positions))):
        matrix = matrix[:, positions[0] : positions[0] + len(positions)]
    else:
        matrix = matrix[:, positions]
    return _top_contributions_array(matrix, features, k)


def _reason_codes(
    top: np.ndarray,
    chosen: np.ndarray,
    features: list[str],
    keys_of: Callable[[int, np.ndarray], tuple[np.ndarray, list[str] | None]],
    effects: tuple[str, str],
    phrases: Mapping[str, Phrase],
) -> tuple[np.ndarray, list[str]]:
    """The sentences of the chosen contributions, each built once: (codes, vocabulary), codes of the
    shape of `top` indexing `vocabulary`, -1 where the contribution is zero. `keys_of(feature index,
    rows)` gives that feature's values at those rows and its category labels (None: not categorical);
    the frame and the numpy callers differ only there."""
    n_rows, k_used = top.shape
    flat_features, flat_contribs = top.reshape(-1), chosen.reshape(-1)
    codes = np.full(flat_features.shape, -1, dtype=np.int64)
    vocabulary: list[str] = []
    for feature_index in np.unique(flat_features):
        cells = np.nonzero((flat_features == feature_index) & (flat_contribs != 0.0))[0]
        if len(cells) == 0:
            continue
        name = features[feature_index]
        phrase = _phrase_for(name, phrases)
        keys, labels = keys_of(int(feature_index), cells // k_used)
        if labels is None and phrase.kind != "text":
            keys = _bucket(keys, phrase.kind)
        raises = flat_contribs[cells] > 0
        for mask, effect in ((raises, effects[0]), (~raises, effects[1])):
            if not mask.any():
                continue
            # np.unique puts all NaN (missing) keys into one
            unique_keys, inverse = np.unique(keys[mask], return_inverse=True)
            codes[cells[mask]] = len(vocabulary) + inverse.reshape(-1)
            vocabulary.extend(f"{_description(phrase, name, key, labels)} {effect}" for key in unique_keys)
    return codes.reshape(n_rows, k_used), vocabulary


def top_reasons_table(
    contribs: pd.DataFrame,
    X: pd.DataFrame,
    k: int = 3,
    effects: tuple[str, str] = RISK_EFFECTS,
    phrases: Mapping[str, Phrase] | None = None,
) -> pl.DataFrame:
    """The k largest contributions of each row as sentences, columns reason_1..reason_k (null if a row
    has fewer than k non-zero contributions), in the row order of `contribs`.

    `contribs` comes from `shap_contributions` (its base_value column is ignored); X holds the feature
    values of the same rows. `effects` is the (positive, negative) wording: RISK_EFFECTS for late_risk,
    CYCLE_TIME_EFFECTS for cycle_time. `phrases` overrides or extends FEATURE_PHRASES.
    Strings are built once per distinct (feature, direction, rounded value), not per row.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if len(contribs) != len(X):
        raise ValueError(f"contribs has {len(contribs)} rows but X has {len(X)}")
    phrases = {**FEATURE_PHRASES, **(phrases or {})}
    features = [column for column in contribs.columns if column != BASE_VALUE_COLUMN]
    missing = [name for name in features if name not in X.columns]
    if missing:
        raise ValueError(f"X lacks the value column(s) {missing} of these contributions")
    if not features:
        raise ValueError("contribs has no feature columns; pass the output of shap_contributions")
    n_rows, k_used = len(contribs), min(k, len(features))
    top, chosen = _top_contributions(contribs, features, min(k_used + _SPARE_REASONS, len(features)))

    def keys_of(feature_index: int, rows: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        values, labels = _column_values(X[features[feature_index]])
        return values[rows], labels

    codes, vocabulary = _reason_codes(top, chosen, features, keys_of, effects, phrases)
    codes = _first_distinct(codes, vocabulary, k_used)
    words = pl.Series("reason", vocabulary, dtype=pl.String)
    columns = {}
    for position in range(k):
        if position < k_used:
            column_codes = pl.Series(codes[:, position])
            columns[f"reason_{position + 1}"] = words.gather(
                pl.select(pl.when(column_codes >= 0).then(column_codes)).to_series()
            )
        else:
            columns[f"reason_{position + 1}"] = pl.Series([None] * n_rows, dtype=pl.String)
    return pl.DataFrame(columns)


def top_reasons(
    contribs_row: Mapping[str, float] | pd.Series,
    feature_values: Mapping[str, Any] | pd.Series,
    k: int = 3,
    effects: tuple[str, str] = RISK_EFFECTS,
    phrases: Mapping[str, Phrase] | None = None,
) -> list[str]:
    """The k largest contributions of one task in words, e.g. "assignee already had 14 open tasks raises
    the risk". For many rows use `top_reasons_table`, which builds each distinct sentence once."""
    import pandas as pd

    contribs = pd.DataFrame([dict(contribs_row)])
    values = pd.DataFrame([{name: dict(feature_values).get(name) for name in contribs.columns}])
    table = top_reasons_table(contribs, values, k=k, effects=effects, phrases=phrases)
    return [reason for reason in table.row(0) if reason is not None]


# Candidates beyond k: several features can say the same words ("no assignee" for each assignee history
# feature of an unassigned task); a row's reasons are its first k distinct sentences.
_SPARE_REASONS = 4


def _first_distinct(codes: np.ndarray, vocabulary: list[str], k: int) -> np.ndarray:
    """(n, k) sentence codes: each row's first k distinct sentences, in order; -1 after them."""
    first: dict[str, int] = {}
    canonical = np.array([first.setdefault(text, i) for i, text in enumerate(vocabulary)] or [0], dtype=np.int64)
    codes = np.where(codes >= 0, canonical[np.maximum(codes, 0)], -1)
    n = len(codes)
    out = np.full((n, k), -1, dtype=np.int64)
    filled = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for j in range(codes.shape[1]):
        c = codes[:, j]
        seen = (out == c[:, None]).any(axis=1)
        take = (c >= 0) & ~seen & (filled < k)
        out[rows[take], filled[take]] = c[take]
        filled += take
    return out


def _top_contributions_array(matrix: np.ndarray, features: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(feature index, contribution) of the k largest |contributions| of each row of a (n, len(features))
    float matrix, largest first, each (n, k); `_top_contributions` takes the columns out of a frame."""
    strength = np.empty(matrix.shape, dtype=np.float32)
    np.abs(matrix, out=strength, casting="same_kind")
    merged: dict[int, np.ndarray] = {}
    for alias, target in FEATURE_ALIASES.items():
        if alias in features and target in features:
            alias_index, target_index = features.index(alias), features.index(target)
            merged[target_index] = matrix[:, target_index] + matrix[:, alias_index]
            strength[:, target_index] = np.abs(merged[target_index])
            strength[:, alias_index] = 0.0
            merged[alias_index] = np.zeros(len(matrix))
    rows = np.arange(len(matrix))
    top = np.empty((len(matrix), k), dtype=np.intp)
    chosen = np.empty((len(matrix), k), dtype=float)
    for position in range(k):
        index = strength.argmax(axis=1)  # ties: the lower feature index
        top[:, position] = index
        chosen[:, position] = matrix[rows, index]
        strength[rows, index] = -1.0
    for feature_index, combined in merged.items():
        hit = top == feature_index
        chosen[hit] = np.broadcast_to(combined[:, None], top.shape)[hit]
    return top, chosen


def top_reasons_arrays(
    contribs: np.ndarray,
    values: np.ndarray,
    features: Sequence[str],
    category_levels: Mapping[str, Sequence[str]] | None = None,
    k: int = 3,
    effects: tuple[str, str] = RISK_EFFECTS,
    phrases: Mapping[str, Phrase] | None = None,
) -> list[list[str | None]]:
    """`top_reasons_table` on numpy input, without pandas or polars: k lists (reason_1..reason_k) of n texts.

    `contribs` is LightGBM's ``pred_contrib`` output (n, len(features) + 1; the last column, the base
    value, is ignored); `values` the matrix the model scored (n, len(features)), a category as its
    position in ``category_levels[name]`` (NaN: missing). Same sentences as top_reasons_table given the
    same contributions and values (tested); cheap enough for one row (online scoring).
    """
    features = list(features)
    levels = {name: [str(label) for label in labels] for name, labels in (category_levels or {}).items()}
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not features:
        raise ValueError("no features: pass the booster's feature names")
    if contribs.ndim != 2 or contribs.shape[1] not in (len(features), len(features) + 1):
        raise ValueError(f"contribs has shape {contribs.shape}; expected (n, {len(features) + 1}) for {len(features)} features")
    if values.shape != (contribs.shape[0], len(features)):
        raise ValueError(f"values has shape {values.shape}; expected ({contribs.shape[0]}, {len(features)})")
    phrases = {**FEATURE_PHRASES, **(phrases or {})}
    n_rows, k_used = len(contribs), min(k, len(features))
    top, chosen = _top_contributions_array(np.asarray(contribs[:, : len(features)], dtype=float), features,
                                           min(k_used + _SPARE_REASONS, len(features)))

    def keys_of(feature_index: int, rows: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
        return np.asarray(values[rows, feature_index], dtype=float), levels.get(features[feature_index])

    codes, vocabulary = _reason_codes(top, chosen, features, keys_of, effects, phrases)
    codes = _first_distinct(codes, vocabulary, k_used)
    columns: list[list[str | None]] = []
    for position in range(k):
        if position < k_used:
            columns.append([vocabulary[c] if c >= 0 else None for c in codes[:, position].tolist()])
        else:
            columns.append([None] * n_rows)
    return columns


# --------------------------------------------------------------------------------------------------
# plots

_DPI = 100
_RESIDUAL_SAMPLE = 20_000


def _figure(width: float = 6.0, height: float = 4.5):
    # A Figure on an Agg canvas, without pyplot: no global figure registry to leak, no GUI backend to pick
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI)
    return path


def _undefined_note(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="dimgray")


def plot_roc(y_true: Any, y_prob: Any, path: str | Path) -> Path:
    """ROC curve with its AUC, as a PNG at `path`."""
    y, p = _binary_inputs(y_true, y_prob)
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="random ranking")
    if 0 < y.sum() < len(y):
        fps, tps, _ = _curve(y, p)
        axes.plot(
            np.r_[0.0, fps / fps[-1]],
            np.r_[0.0, tps / tps[-1]],
            color="C0",
            label=f"model (AUC {_roc_auc(y, p):.3f})",
        )
    else:
        _undefined_note(axes, "ROC undefined: the labels hold a single class")
    axes.set(
        title=f"ROC curve (n={len(y):,})",
        xlabel="False positive rate (on-time tasks flagged)",
        ylabel="True positive rate (late tasks caught)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_pr(y_true: Any, y_prob: Any, path: str | Path) -> Path:
    """Precision-recall curve with average precision and the positive rate as baseline, as a PNG."""
    y, p = _binary_inputs(y_true, y_prob)
    figure = _figure()
    axes = figure.add_subplot()
    if 0 < y.sum() < len(y):
        fps, tps, _ = _curve(y, p)
        axes.step(
            np.r_[0.0, tps / tps[-1]],
            np.r_[1.0, tps / (tps + fps)],
            where="post",
            color="C0",
            label=f"model (AP {_average_precision(y, p):.3f})",
        )
        axes.axhline(y.mean(), linestyle="--", color="gray", label=f"positive rate {y.mean():.3f}")
        axes.legend(loc="upper right")
    else:
        _undefined_note(axes, "Precision-recall undefined: the labels hold a single class")
    axes.set(
        title=f"Precision-recall curve (n={len(y):,})",
        xlabel="Recall (late tasks caught)",
        ylabel="Precision (flagged tasks that are late)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    return _save(figure, path)


def plot_calibration(table: pl.DataFrame, path: str | Path) -> Path:
    """Reliability diagram of a `calibration_table` (observed late rate against mean predicted), as a PNG."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ece = expected_calibration_error(table)
    if table.height:
        axes.plot(
            table["mean_predicted"].to_numpy(),
            table["observed_rate"].to_numpy(),
            marker="o",
            color="C0",
            label="model (quantile bins)",
        )
        axes.legend(loc="upper left")
    else:
        _undefined_note(axes, "no rows to calibrate")
    title = "Calibration" + (f" (ECE {ece:.3f})" if ece is not None else "")
    axes.set(
        title=title, xlabel="Mean predicted probability", ylabel="Observed rate", xlim=(0, 1), ylim=(0, 1.02)
    )
    return _save(figure, path)


def plot_feature_importance(table: pl.DataFrame, path: str | Path, top: int = 15) -> Path:
    """Horizontal bars of mean |SHAP| for the `top` features of a `feature_importance_table`, as a PNG."""
    shown = table.sort("mean_abs_shap", descending=True).head(top)
    figure = _figure(6.5, max(2.5, 0.3 * shown.height + 1.2))
    axes = figure.add_subplot()
    axes.barh(shown["feature"].to_list()[::-1], shown["mean_abs_shap"].to_numpy()[::-1], color="C0")
    axes.set(title=f"Feature importance (top {shown.height})", xlabel="Mean |SHAP contribution| (raw score)")
    return _save(figure, path)


def plot_residuals(y_true: Any, y_pred: Any, path: str | Path) -> Path:
    """Predicted against actual days and the residual distribution (a sample of at most 20,000 rows), as a PNG."""
    y = _finite(y_true, "y_true")
    pred = _finite(y_pred, "y_pred")
    _same_length(y_true=y, y_pred=pred)
    if len(y) > _RESIDUAL_SAMPLE:
        rows = np.random.default_rng(0).choice(len(y), _RESIDUAL_SAMPLE, replace=False)
        y, pred = y[rows], pred[rows]
    figure = _figure(10.0, 4.5)
    scatter, histogram = figure.subplots(1, 2)
    if len(y):
        limit = float(max(y.max(), pred.max(), 1.0))
        scatter.scatter(y, pred, s=4, alpha=0.3, color="C0")
        scatter.plot([0, limit], [0, limit], linestyle="--", color="gray", label="perfect prediction")
        scatter.legend(loc="upper left")
        histogram.hist(pred - y, bins=50, color="C0")
        histogram.axvline(0, linestyle="--", color="gray")
    else:
        _undefined_note(scatter, "no rows")
    scatter.set(title="Predicted vs actual cycle time", xlabel="Actual days", ylabel="Predicted days")
    histogram.set(title="Residuals (predicted - actual)", xlabel="Days", ylabel="Tasks")
    return _save(figure, path)


# --------------------------------------------------------------------------------------------------
# report page


def _format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format_value(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1rem 1rem 0; } img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; } .scroll { overflow-x: auto; }
"""


def write_evaluation_html(
    model_name: str,
    metrics: Mapping[str, Any],
    slices: pl.DataFrame | None,
    plots: Mapping[str, str | Path],
    path: str | Path,
) -> Path:
    """A self-contained HTML page (plots inlined as base64 PNG): metrics, slice metrics, charts."""
    sections = [
        f"<h1>Evaluation: {html.escape(model_name)}</h1>",
        "<h2>Metrics</h2>",
        _html_table(["metric", "value"], list(metrics.items())),
        '<p class="note">n/a: undefined on this data (for example a single class).</p>',
    ]
    if slices is not None and slices.height:
        evaluated = slices.filter(pl.col("metric") != SKIPPED_METRIC)
        skipped = slices.filter(pl.col("metric") == SKIPPED_METRIC)
        sections.append("<h2>Metrics by slice</h2>")
        if evaluated.height:
            wide = evaluated.pivot(on="metric", index=["slice_column", "slice_value", "n"], values="value")
            sections.append(_html_table(wide.columns, wide.rows()))
        if skipped.height:
            listed = ", ".join(
                f"{column}={value} (n={n})"
                for column, value, n in skipped.select("slice_column", "slice_value", "n").iter_rows()
            )
            sections.append(f'<p class="note">Too small to evaluate: {html.escape(listed)}.</p>')
    if plots:
        sections.append("<h2>Charts</h2>")
    for name, plot_path in plots.items():
        encoded = base64.b64encode(Path(plot_path).read_bytes()).decode("ascii")
        sections.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evaluation: {html.escape(model_name)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
