"""Metrics of the two task models: `late_risk` (binary) and `cycle_time` (regression, days).

Classification metrics (ranking, probability, decision at a threshold), the F1 threshold choice, calibration
tables and ECE, regression errors against a naive baseline (`median_baseline`), and all of these per slice.
Pure functions over numpy, polars and pandas inputs; no dagster, no matplotlib. scikit-learn is imported
inside the functions that need it.

Undefined is not zero: a metric that has no value on its input (ROC AUC on a single class, precision
with nothing flagged, anything on zero rows) is None, never an exception and never a made-up number.
Invalid input (missing labels, labels other than 0/1, lengths that differ) raises ValueError saying
what to fix. The binary decision rule everywhere is `y_prob >= threshold`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

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
