"""Model specs, model input, data validation and tuned LightGBM training.

One table, :data:`MODEL_SPECS`, says everything that differs between models: how the label is
derived from ``clean.tasks``, which tasks are in the population, the LightGBM objective, the
metrics, the primary metric and its direction, and the champion/challenger gate. Adding a third
model is one entry there.

Training (:func:`train_model`) is an Optuna TPE search (seeded, bounded by ``n_trials`` AND
``timeout_s``) over LightGBM boosters with early stopping on the validation split, then a
time-series k-fold CV of the best parameters, then metrics on the original scale. Past
``TrainConfig.tune_rows`` train rows the trials and the CV fit the most recent ``tune_rows`` of
them and the best parameters are fit once more on all of them (early-stopped on validation): the
search costs the same at 100k and at 1M rows, only the refit grows. The binned LightGBM datasets are
built once and reused by every trial, fold and the refit, so the time is LightGBM's own.

Class imbalance: handled through LightGBM's ``scale_pos_weight`` (``TrainConfig.scale_pos_weight``:
a number, ``"balanced"`` = neg/pos like ``is_unbalance``, or ``"search"`` = tuned in [1, neg/pos]).
The default is 1.0, no reweighting: in a comparison on an early synthetic sample (16-27% late) the
searched weight gave the same test ROC-AUC as no weight (within 0.005) but inflated the probabilities
(mean predicted 0.52 vs a late rate of 0.27; Brier 0.235 vs 0.166, ECE 0.25 vs 0.04), and late_risk
is read as a probability. Ranking metrics (ROC-AUC, PR-AUC) are insensitive to the weight; calibration is not.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import polars as pl

# ---------------------------------------------------------------------------------------------
# The model-spec table
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """An absolute bar a candidate must pass: ``metric op threshold`` (threshold: number or metric name)."""

    metric: str
    op: Literal[">=", ">", "<=", "<"]
    threshold: float | str

    def check(self, metrics: Mapping[str, float]) -> str | None:
        """None when the candidate passes, else the reason it fails."""
        value = metrics.get(self.metric)
        bar = metrics.get(self.threshold) if isinstance(self.threshold, str) else self.threshold
        if value is None or bar is None or not math.isfinite(value) or not math.isfinite(bar):
            return f"{self.metric} {self.op} {self.threshold}: metric missing or not finite"
        ok = {">=": value >= bar, ">": value > bar, "<=": value <= bar, "<": value < bar}[self.op]
        if ok:
            return None
        bar_text = f"{self.threshold}={bar:.4f}" if isinstance(self.threshold, str) else f"{bar:g}"
        return f"{self.metric}={value:.4f} fails floor {self.op} {bar_text}"


@dataclass(frozen=True)
class Gate:
    """Champion/challenger rule: beat the champion's primary metric by ``margin`` and pass every floor."""

    margin: float
    floors: tuple[Floor, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """Everything that differs between two models; see :data:`MODEL_SPECS`."""

    name: str  # also the registered model name
    kind: Literal["binary", "regression"]
    description: str
    # The label is this column of features.task_labels(tasks, as_of=now): the same lateness and
    # cycle-time rules the history features use. Rows whose label is not known at `now` are dropped.
    label: Literal["is_late", "cycle_time_days"]
    objective: str  # LightGBM objective
    eval_metric: str  # LightGBM metric for early stopping and the search
    metrics: tuple[str, ...]  # logged per split as <split>_<metric>: keys of metrics.*_metrics
    primary_metric: str  # the one the gate compares, e.g. "roc_auc" -> test_roc_auc
    higher_is_better: bool
    gate: Gate
    log_target: bool = False  # True: the label is log1p(y); predictions are expm1'd back
    baseline_by: str | None = None  # regression: naive baseline = train median of the target per this column
    features: tuple[str, ...] | None = None  # None: all of features.FEATURE_COLUMNS
    population: pl.Expr | None = None  # extra filter on clean.tasks columns (None: every labelled task)

    @property
    def gate_metric(self) -> str:
        return f"test_{self.primary_metric}"

    def feature_columns(self) -> tuple[str, ...]:
        if self.features is not None:
            return tuple(self.features)
        from mlops_assets.lib import features

        return tuple(features.FEATURE_COLUMNS)


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="late_risk",
            kind="binary",
            description="Probability that a task with a deadline finishes after it (or is still open past it).",
            label="is_late",  # tasks with a deadline, resolved or already past it at `now`
            objective="binary",
            eval_metric="auc",
            metrics=("roc_auc", "pr_auc", "brier", "log_loss", "ece", "positive_rate", "mean_predicted"),
            primary_metric="roc_auc",
            higher_is_better=True,
            gate=Gate(margin=0.005, floors=(Floor("test_roc_auc", ">=", 0.65),)),
        ),
        ModelSpec(
            name="cycle_time",
            kind="regression",
            description="Days from creation to resolution of a task.",
            label="cycle_time_days",  # tasks resolved by `now`; trained on log1p(days)
            # L1 on log1p(days) predicts the conditional median, which is also the MAE-optimal
            # prediction on the days scale (the median commutes with monotone transforms).
            objective="regression_l1",
            eval_metric="l1",
            metrics=("mae", "rmse", "median_ae", "baseline_mae", "mae_improvement"),
            primary_metric="mae",
            higher_is_better=False,
            log_target=True,
            baseline_by="project",
            gate=Gate(margin=0.05, floors=(Floor("test_mae", "<", "test_baseline_mae"),)),
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The spec called ``name``, with an error listing the known ones."""
    try:
        return MODEL_SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(MODEL_SPECS)}") from None


def model_input(spec: ModelSpec, tasks: pl.DataFrame, features: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Feature rows of the spec's population with a ``target`` column, in time order."""
    from mlops_assets.lib import features as features_lib

    population = tasks if spec.population is None else tasks.filter(spec.population)
    label = pl.col(spec.label).cast(pl.Float64)
    labels = (
        features_lib.task_labels(population, as_of=now)
        .filter(pl.col(spec.label).is_not_null())
        .select("task_id", (label.log1p() if spec.log_target else label).alias("target"))
    )
    extra = [spec.baseline_by] if spec.baseline_by and spec.baseline_by not in spec.feature_columns() else []
    if extra:
        labels = labels.join(tasks.select("task_id", *extra), on="task_id", how="left")
    # snapshot frames (features.task_snapshots) carry each row's prediction point and time
    points = [c for c in ("point", "predicted_at") if c in features.columns]
    keep = ["task_id", "created_at", *points,
            *[c for c in spec.feature_columns() if c not in ("task_id", "created_at", *points)]]  # fmt: skip
    absent = [c for c in keep if c not in features.columns]
    if absent:
        raise ValueError(
            f"model_input: the feature frame lacks {absent}; rebuild features with the current code"
        )
    order = ["created_at", "task_id", *(["predicted_at"] if "predicted_at" in points else [])]
    return features.select(keep).join(labels, on="task_id", how="inner").sort(order)


# ---------------------------------------------------------------------------------------------
# Validation of the training data (before anything is logged)
# ---------------------------------------------------------------------------------------------


class TrainingDataError(ValueError):
    """The training data cannot give a meaningful model; the message says what is wrong with it."""


SPLITS = ("train", "validation", "test")


def validate_training_data(
    spec: ModelSpec, splits: Mapping[str, pl.DataFrame], *, min_train_rows: int = 50, min_eval_rows: int = 10
) -> None:
    """Raise :class:`TrainingDataError` when the splits cannot train and evaluate ``spec``."""
    problems: list[str] = []
    feats = spec.feature_columns()
    for name in SPLITS:
        if name not in splits:
            problems.append(f"the {name} split is missing")
            continue
        frame = splits[name]
        absent = [c for c in ("target", *feats) if c not in frame.columns]
        if absent:
            problems.append(f"the {name} split lacks columns {absent}")
            continue
        target = frame.get_column("target").cast(pl.Float64)
        bad = int(target.is_null().sum() + target.is_nan().sum() + target.is_infinite().sum())
        if bad:
            problems.append(f"{bad} of {frame.height} {name} targets are null, NaN or infinite")
        need = min_train_rows if name == "train" else min_eval_rows
        labelled = frame.height - bad
        if labelled < need:
            problems.append(f"only {labelled} labelled rows in {name} (need at least {need})")
        elif spec.kind == "binary":
            classes = sorted(target.drop_nulls().drop_nans().unique().to_list())
            if len(classes) < 2:
                problems.append(
                    f"the {name} split has a single class ({classes[0] if classes else 'none'}) in target"
                )
            elif set(classes) - {0.0, 1.0}:
                problems.append(f"binary target in {name} has values other than 0/1: {classes[:5]}")
    if not problems:
        train = splits["train"]
        constant = [c for c in feats if train.get_column(c).n_unique() <= 1]
        if len(constant) == len(feats):
            problems.append(f"all {len(feats)} features are constant in train (nothing to learn from)")
    if problems:
        raise TrainingDataError(f"{spec.name}: cannot train: " + "; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Feature matrix (shared with the pyfunc model, so pipeline and serving score the same way)
# ---------------------------------------------------------------------------------------------


def categorical_columns(frame: pl.DataFrame, feature_names: tuple[str, ...]) -> list[str]:
    """Features LightGBM treats as categorical: declared ones and any string-typed column."""
    from mlops_assets.lib import features

    declared = set(getattr(features, "CATEGORICAL_FEATURES", ()))
    stringy = (pl.String, pl.Categorical, pl.Enum, pl.Boolean)
    return [c for c in feature_names if c in declared or isinstance(frame.schema[c], stringy)]


def category_levels(frame: pl.DataFrame, columns: list[str]) -> dict[str, list[str]]:
    """The sorted non-null levels of each categorical column (fixed from the training split)."""
    return {c: sorted(frame.get_column(c).cast(pl.String).drop_nulls().unique().to_list()) for c in columns}


def to_matrix(frame: pl.DataFrame, feature_names: tuple[str, ...], levels: Mapping[str, list[str]]):
    """A pandas frame for LightGBM: float numerics, categoricals with the train levels (unseen -> NaN)."""
    import pandas as pd

    numeric = [c for c in feature_names if c not in levels]
    out = (
        pd.DataFrame(frame.select([pl.col(c).cast(pl.Float64) for c in numeric]).to_numpy(), columns=numeric)
        if numeric
        else pd.DataFrame(index=range(frame.height))
    )
    for column, cats in levels.items():
        codes = (
            frame.get_column(column)
            .cast(pl.String)
            .replace_strict(cats, list(range(len(cats))), default=-1, return_dtype=pl.Int32)
            .fill_null(-1)
            .to_numpy()
        )
        out[column] = pd.Categorical.from_codes(codes, categories=cats)
    return out[list(feature_names)]


def predict_frame(
    booster: Any,
    frame: pl.DataFrame,
    feature_names: tuple[str, ...],
    levels: Mapping[str, list[str]],
    *,
    log_target: bool,
) -> np.ndarray:
    """Predictions on the original scale (probability, or days for a log1p target)."""
    if frame.height == 0:
        return np.empty(0)
    raw = np.asarray(booster.predict(to_matrix(frame, feature_names, levels)), dtype=float)
    return np.clip(np.expm1(raw), 0.0, None) if log_target else raw


def original_scale(spec: ModelSpec, target: np.ndarray) -> np.ndarray:
    return np.expm1(target) if spec.log_target else target


def score(
    spec: ModelSpec,
    y_true: np.ndarray,
    prediction: np.ndarray,
    prefix: str,
    baseline: np.ndarray | None = None,
) -> dict[str, float]:
    """``{prefix}_{metric}`` for the spec's metrics on the original scale (NaN where undefined)."""
    from mlops_assets.lib import metrics

    if spec.kind == "binary":
        values = metrics.classification_metrics(y_true, prediction)
    else:
        values = metrics.regression_metrics(y_true, prediction, baseline)
    return {
        f"{prefix}_{name}": float("nan") if values.get(name) is None else float(values[name])
        for name in spec.metrics
    }


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Search and training budget; the same inputs and config give the same model."""

    n_trials: int = 15
    timeout_s: float = 300.0  # the search stops at whichever of n_trials / timeout_s comes first
    seed: int = 42
    cv_folds: int = 3
    # Trials (and the CV) fit the most recent `tune_rows` train rows, the ones closest to the validation
    # window; the best parameters are then fit once on every train row, early-stopped on validation.
    # 0: every trial fits all train rows (the behaviour before issue 14; models recorded before it
    # reproduce with 0). See docs/BENCHMARKS.md "Whole graph, as `make run` runs it" for what it costs.
    tune_rows: int = 20_000
    # The refit's learning rate is at least this (and the trials search from it): at the tuned rates of
    # 0.03-0.2 early stopping on 1M tasks kept forests of thousands of trees (1,718), slow to fit and
    # slower to explain per task. With trees sized on the tuning rows it still does (1,747 at 0.166):
    # issue 14, docs/BENCHMARKS.md.
    refit_learning_rate: float = 0.15
    # Past `refit_grow_from` times the tuning rows, the refit's trees have more leaves than the tuned ones, by
    # the square root of the rows beyond: a forest of the tuning rows' small trees on 48x the rows took
    # thousands of rounds (1M tasks: 1,747 and 3,000 trees, 737 s and 449 s) and explains slowly. Below it
    # the tuned trees are kept: at 100k (4.6x) grown trees cost cycle_time 2% MAE for 10 s. Capped at
    # `refit_max_leaves`; 0 turns growing off. Measured: docs/BENCHMARKS.md ("Whole graph, as `make run` runs it").
    refit_grow_from: float = 10.0
    refit_max_leaves: int = 64
    # A refit with grown trees stops at this many times the best trial's rounds (else at early stopping or
    # num_boost_round). cycle_time's L1 on 957k rows still ran 2,057 rounds of 11 leaves (366 s) without it;
    # on the curve of a 13-leaf cycle_time refit there, twice its trial's 477 rounds gave test MAE 3.580
    # against 3.575 at its early stop (1,797 rounds).
    refit_max_rounds: float = 2.0
    early_stopping_rounds: int = 100
    # The refit judges its validation metric every round while the validation split is at most this many
    # rows, else every (rows / this) rounds, rounded: LightGBM's AUC sorts every score each time it is
    # computed, 23% of a late_risk refit's rounds on the 242k validation rows of 1M tasks (200 rounds:
    # 10.0 s, 7.7 s without a metric). The best iteration is then one of those rounds or the last.
    refit_eval_rows: int = 50_000
    # A metric LightGBM computes by sorting every validation score (AUC, average precision) is judged every
    # this many rounds at most often, in the trials and the refit: on the trials' 20,000 stopping rows the
    # sort takes longer than the round (late_risk, 600 rounds of 6 leaves on 20,000 rows: 1.67 s judged
    # every round, 1.05 s every 5th, 0.78 s never). Cheap metrics (cycle_time's l1) are judged every round.
    # 1: every round (the training before session 17; its models reproduce with 1).
    sorted_metric_every: int = 5
    num_boost_round: int = 3000  # cap; early stopping picks the number actually used
    # Floor 0.03: with (0.01, 0.1) early stopping kept up to 1,463 trees, which makes scoring a million
    # open tasks and their SHAP reasons slow. Measured on the embedded sample (15 trials, seed 42):
    # cycle_time 944 -> 617 trees, test MAE 2.741 -> 2.712, 56 -> 28 s; late_risk test ROC-AUC
    # 0.863 -> 0.874, 21 -> 14 s.
    learning_rate: tuple[float, float] = (0.03, 0.2)
    num_leaves: tuple[int, int] = (4, 48)
    min_data_in_leaf: tuple[int, int] = (10, 150)
    feature_fraction: tuple[float, float] = (0.4, 1.0)
    bagging_fraction: tuple[float, float] = (0.5, 1.0)
    lambda_l2: tuple[float, float] = (1e-3, 30.0)
    # Fixed, so results do not depend on the machine. 1 by default: on shared cores OpenMP threads
    # spin-wait for each other (measured here: one fit 0.4 s with 1 thread, 5.7 s with 2 under load).
    num_threads: int = 1
    # The refit (past tune_rows) runs on this many threads: the forest is the one a single thread grows
    # (column-wise histograms: checked on the 952k late_risk train rows, 150 rounds, the same model string
    # but for this parameter, and on two idle cores 1.75x faster, 18.1 -> 10.2 s; row-wise, as past ROW_WISE_MIN_ROWS: the
    # same trees on one and two threads over 100 rounds of both 1M refits, 7.0 -> 3.8 s and 7.8 -> 4.5 s).
    # Fixed, not the core count, so the model string, which records it, is the same on every machine. The
    # trials keep num_threads: a round on 20,000 rows is too short to share.
    refit_threads: int = 2
    # Trials fit this many at a time, one thread each: on two cores the trainings take 14-30% less time
    # (a pair waits for its slower trial; measured in docs/BENCHMARKS.md). Fixed, not the core count, so
    # the search is the same on every machine: see _search.
    parallel_trials: int = 2
    # A trial whose validation metric trails the median of the finished trials at the same round stops there
    # (Optuna's MedianPruner; checked every prune_every rounds from prune_warmup_rounds on, once
    # prune_startup_trials have finished; 0: no pruning). Only finished trials count, and those are told in
    # trial order, so the search stays the same on every run and machine. At 100k (docs/BENCHMARKS.md):
    # cycle_time's training 21.6 -> 13.6 s, late_risk's 15.5 -> 12.4 s (the same model).
    prune_every: int = 50
    prune_startup_trials: int = 5
    prune_warmup_rounds: int = 100
    scale_pos_weight: float | str = 1.0  # binary only: a number, "balanced" (neg/pos) or "search"
    min_train_rows: int = 50
    min_eval_rows: int = 10


@dataclass
class TrainedModel:
    """A tuned booster with what is needed to score new rows and to judge it."""

    spec_name: str
    kind: str
    booster: Any  # lightgbm.Booster holding exactly the best iteration's trees
    params: dict[str, Any]  # LightGBM parameters of the best trial (incl. num_boost_round)
    features: tuple[str, ...]
    category_levels: dict[str, list[str]]
    metrics: dict[str, float]
    log_target: bool = False
    n_trials: int = 0
    search_seconds: float = 0.0
    # Wall time of train_model, and the part of it spent inside LightGBM (binning, boosting, predicting):
    # the rest is ours (matrix conversion, Optuna, metrics).
    train_seconds: float = 0.0
    lightgbm_seconds: float = 0.0
    feature_importance: dict[str, float] = field(default_factory=dict)  # total gain
    # predictions (original scale) on the validation and test splits, in their row order: logged with the
    # run (registry.log_training_run) so the evaluation need not predict them again
    predictions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def model_string(self) -> str:
        return self.booster.model_to_string()

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        """Predictions on the original scale for a feature frame."""
        return predict_frame(
            self.booster, frame, self.features, self.category_levels, log_target=self.log_target
        )


# A refit on at least this many train rows builds its histograms row-wise. Both layouts grow the same trees
# (checked on the 1M splits: column-wise = row-wise, one thread = two, model text compared), so this
# only picks the faster one: on 952-957k rows row-wise took 22-23% less (cycle_time 300 rounds 16.6 ->
# 12.7 s, late_risk 200 rounds 12.5 -> 9.7 s); on the 94k rows of 100k tasks it was the slower one
# (cycle_time's training 12.8-13.0 -> 14.5-14.9 s), and so were the trials in pairs on 20,000 rows.
ROW_WISE_MIN_ROWS = 500_000
# LightGBM metrics computed by sorting every validation score each time (judged every
# TrainConfig.sorted_metric_every rounds)
SORTED_METRICS = frozenset({"auc", "average_precision"})


def _base_params(spec: ModelSpec, config: TrainConfig) -> dict[str, Any]:
    return {
        "objective": spec.objective,
        "metric": spec.eval_metric,
        "verbosity": -1,
        "seed": config.seed,
        "deterministic": True,
        # LightGBM picks row- or column-wise histograms by timing them unless told: fixed here so
        # two runs never take different code paths (a refit on many rows goes row-wise: ROW_WISE_MIN_ROWS).
        "force_col_wise": True,
        "num_threads": config.num_threads,
        "bagging_freq": 1,
    }


def baseline_prediction(spec: ModelSpec, train: pl.DataFrame, frame: pl.DataFrame) -> np.ndarray | None:
    """The naive baseline on the original scale: train median per ``spec.baseline_by`` (global if absent)."""
    from mlops_assets.lib import metrics

    if spec.kind != "regression":
        return None
    y = pl.col("target").exp() - 1 if spec.log_target else pl.col("target")
    by = spec.baseline_by if spec.baseline_by in train.columns and spec.baseline_by in frame.columns else None
    if by is None:
        return np.full(frame.height, float(train.select(y.median()).item()))
    return metrics.median_baseline(
        train.select(by, y.alias("y")), frame.select(by), by=by, target="y"
    ).to_numpy()


def trial_line(
    name: str,
    metric: str,
    number: int,
    n_trials: int,
    value: float | None,
    best: float | None,
    best_number: int | None,
    seconds: float,
) -> str:
    """One line of search progress: the trial's validation value and the best so far."""
    shown = "failed" if value is None else f"{value:.4f}"
    best_shown = "none yet" if best is None else f"{best:.4f} (trial {best_number + 1})"
    return (
        f"{name}: trial {number + 1}/{n_trials} validation {metric} {shown}, best {best_shown}, "
        f"{seconds:.1f} s"
    )


def train_model(
    spec: ModelSpec,
    splits: Mapping[str, pl.DataFrame],
    config: TrainConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainedModel:
    """Tune, fit and evaluate ``spec`` on time-ordered train/validation/test model-input frames.

    `progress` receives one :func:`trial_line` per finished Optuna trial (the run log in Dagster).
    """
    import lightgbm as lgb
    import optuna

    t_start = time.perf_counter()
    clock = _LightGBMClock()
    config = config or TrainConfig()
    if (
        config.n_trials < 1
        or config.timeout_s <= 0
        or config.parallel_trials < 1
        or config.sorted_metric_every < 1
    ):
        raise ValueError(
            "TrainConfig needs n_trials >= 1, timeout_s > 0, parallel_trials >= 1 and sorted_metric_every >= 1, "
            f"got {config.n_trials}, {config.timeout_s}, {config.parallel_trials}, {config.sorted_metric_every}"
        )
    validate_training_data(
        spec, splits, min_train_rows=config.min_train_rows, min_eval_rows=config.min_eval_rows
    )
    feats = spec.feature_columns()
    train, val, test = (splits[s] for s in SPLITS)
    levels = category_levels(train, categorical_columns(train, feats))
    y_train = train.get_column("target").cast(pl.Float64).to_numpy()
    y_val = val.get_column("target").cast(pl.Float64).to_numpy()

    # Binned once; every trial, CV fold and the refit reuse the bins (a subset shares its parent's).
    # feature_pre_filter=False lets trials vary min_data_in_leaf on the same Dataset.
    refit = 0 < config.tune_rows < len(y_train)
    # With a refit (big train splits) the bins are built on refit_threads: per feature, so the same bins
    # (1M splits: the same trees), 1.2-1.9 s -> 0.8 s for 952k rows.
    threads = config.refit_threads if refit else config.num_threads
    dataset_params = {"feature_pre_filter": False, "verbosity": -1, "num_threads": threads}
    train_x, val_x = to_matrix(train, feats, levels), to_matrix(val, feats, levels)
    with clock:
        train_ds = lgb.Dataset(train_x, y_train, params=dataset_params, free_raw_data=False).construct()
        val_ds = lgb.Dataset(val_x, y_val, reference=train_ds, params=dataset_params).construct()
        # train is in time order: the tuning rows are its most recent ones
        tune_from = len(y_train) - config.tune_rows if refit else 0

        def tuning_sets(copy: bool) -> tuple[Any, Any]:
            """The trials' rows and their early-stopping rows (the validation rows right after train, as
            many as they fit). Trials fit side by side each get their own copies (`copy`): lgb.train sets
            parameters and feature names on its Datasets, which two threads must not share; a subset of
            the same rows has the same bins, so a trial fits the same forest on either.
            """
            if not refit and not copy:
                return train_ds, val_ds
            rows = train_ds.subset(list(range(tune_from, len(y_train)))).construct()
            stop_x, stop_y = (
                (val_x.iloc[: config.tune_rows], y_val[: config.tune_rows]) if refit else (val_x, y_val)
            )
            return rows, lgb.Dataset(stop_x, stop_y, reference=train_ds, params=dataset_params).construct()

        slots = [tuning_sets(copy=slot > 0) for slot in range(min(config.parallel_trials, config.n_trials))]
        tune_ds = slots[0][0]  # the CV folds are cut from it
    tune_x, y_tune = train_x.iloc[tune_from:], y_train[tune_from:]

    base = _base_params(spec, config)
    pos_ratio = 1.0
    if spec.kind == "binary":
        n_pos = float(y_tune.sum())
        pos_ratio = (len(y_tune) - n_pos) / max(n_pos, 1.0)

    # With a refit, trials search at the rates the refit may use (>= refit_learning_rate): the other
    # parameters are tuned for the rate the kept model has, and a trial is a short forest.
    rates = config.learning_rate
    if refit:
        rates = (max(rates[0], config.refit_learning_rate), max(rates[1], config.refit_learning_rate))

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        params = dict(base)
        params["learning_rate"] = trial.suggest_float("learning_rate", *rates, log=True)
        params["num_leaves"] = trial.suggest_int("num_leaves", *config.num_leaves, log=True)
        params["min_data_in_leaf"] = trial.suggest_int("min_data_in_leaf", *config.min_data_in_leaf, log=True)
        params["feature_fraction"] = trial.suggest_float("feature_fraction", *config.feature_fraction)
        params["bagging_fraction"] = trial.suggest_float("bagging_fraction", *config.bagging_fraction)
        params["lambda_l2"] = trial.suggest_float("lambda_l2", *config.lambda_l2, log=True)
        if spec.kind == "binary":
            weight = config.scale_pos_weight
            if weight == "search" and pos_ratio != 1.0:
                low, high = sorted((1.0, pos_ratio))
                params["scale_pos_weight"] = trial.suggest_float("scale_pos_weight", low, high, log=True)
            elif weight == "balanced":
                params["scale_pos_weight"] = pos_ratio
            elif isinstance(weight, int | float):
                params["scale_pos_weight"] = float(weight)
            else:
                raise ValueError(f"scale_pos_weight must be a number, 'balanced' or 'search', got {weight!r}")
        return params

    best: dict[str, Any] = {}

    def pruning(trial: optuna.Trial) -> Callable[[Any], None]:
        def callback(env: Any) -> None:
            if env.iteration % config.prune_every or not env.evaluation_result_list:
                return
            trial.report(env.evaluation_result_list[0][2], env.iteration)
            if trial.should_prune():
                raise optuna.TrialPruned(f"round {env.iteration}")

        return callback

    def judged_pruning(trial: optuna.Trial) -> Callable[[int, float], None]:
        """The pruning callback for :func:`_early_stopped_every`: the metric after `rounds` rounds, reported
        (and judged) on the first judged round of each prune_every rounds: on those lgb.train's callback
        reports when every judged round divides prune_every.
        """
        reported = 0

        def judged(rounds: int, value: float) -> None:
            nonlocal reported
            if rounds // config.prune_every <= reported // config.prune_every:
                return
            reported = rounds
            trial.report(value, rounds)
            if trial.should_prune():
                raise optuna.TrialPruned(f"round {rounds}")

        return judged

    def early_stopped(
        params: dict[str, Any],
        rows: Any,
        validation: Any,
        rounds: int | None = None,
        trial: Any = None,
        every: int = 1,
    ) -> Any:
        """A booster of `params` on `rows`, as long as early stopping on `validation` lets it grow (and, for
        a trial, as long as the pruner does); `every` > 1: the metric judged every that many rounds.
        """
        prune = [pruning(trial)] if trial is not None and config.prune_every > 0 else []
        with clock:
            if every > 1:
                return _early_stopped_every(
                    params,
                    rows,
                    validation,
                    rounds or config.num_boost_round,
                    every,
                    config.early_stopping_rounds,
                    spec.eval_metric,
                    judged=judged_pruning(trial) if prune else None,
                )
            return lgb.train(
                params,
                rows,
                num_boost_round=rounds or config.num_boost_round,
                valid_sets=[validation],
                valid_names=["validation"],
                keep_training_booster=True,  # skips LightGBM's string round trip per fit; the kept one is serialized once
                callbacks=[
                    lgb.early_stopping(config.early_stopping_rounds, first_metric_only=True, verbose=False),
                    *prune,
                ],
            )

    def keep(params: dict[str, Any], booster: Any) -> float:
        value = float(booster.best_score["validation"][spec.eval_metric])
        better = spec.eval_metric in ("auc", "average_precision")
        if not best or (value > best["value"] if better else value < best["value"]):
            best.update(value=value, params=params, iteration=max(booster.best_iteration, 1), booster=booster)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if spec.eval_metric in ("auc", "average_precision") else "minimize"
    pruner = _settled_pruner(config)
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=config.seed), pruner=pruner
    )
    started = time.perf_counter()

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
        if trial.state == optuna.trial.TrialState.PRUNED:
            progress(
                f"{spec.name}: trial {trial.number + 1}/{config.n_trials} pruned at round {trial.last_step} "
                f"(validation {spec.eval_metric} behind the median of the finished trials there), {seconds:.1f} s"
            )
            return
        # finished trials only: a pruned one carries its last checked value (Optuna's tell), never the best
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        top = (max if direction == "maximize" else min)(done, key=lambda t: t.value) if done else None
        progress(
            trial_line(
                spec.name,
                spec.eval_metric,
                trial.number,
                config.n_trials,
                trial.value,
                top.value if top else None,
                top.number if top else None,
                seconds,
            )
        )

    # a sorted metric (AUC) is judged every few rounds: on the trials' stopping rows its sort outlasts the round
    sorted_every = config.sorted_metric_every if spec.eval_metric in SORTED_METRICS else 1
    _search(study, suggest, lambda params, slot, trial: early_stopped(params, *slots[slot], trial=trial,
            every=sorted_every), keep, config, report if progress is not None else None)  # fmt: skip
    search_seconds = time.perf_counter() - started
    search_params = {**best["params"], "num_boost_round": best["iteration"]}
    final, iteration = best["booster"], best["iteration"]
    if refit:
        # One fit of the best parameters (their learning rate is >= refit_learning_rate: the trials searched
        # from there) on every train row; early stopping picks its length anew (more rows carry more trees).
        refit_started = time.perf_counter()
        refit_params = {
            **best["params"],
            "num_leaves": refit_leaves(best["params"]["num_leaves"], len(y_train), len(y_tune), config),
            "num_threads": config.refit_threads,
        }
        if len(y_train) >= ROW_WISE_MIN_ROWS:
            refit_params.update(force_col_wise=False, force_row_wise=True)
        rounds = config.num_boost_round
        if refit_params["num_leaves"] > best["params"]["num_leaves"]:
            # grown trees need fewer rounds: bounded at refit_max_rounds x the best trial's, they always do
            rounds = min(rounds, max(round(config.refit_max_rounds * best["iteration"]), 1))
        every = max(1, round(len(y_val) / config.refit_eval_rows)) if config.refit_eval_rows > 0 else 1
        every = max(every, sorted_every)
        final = early_stopped(refit_params, train_ds, val_ds, rounds=rounds, every=every)
        iteration = max(final.best_iteration, 1)
        if progress is not None:
            value = float(final.best_score["validation"][spec.eval_metric])
            progress(
                f"{spec.name}: refit of the best trial on all {len(y_train):,} train rows (trials used the "
                f"latest {len(y_tune):,}), learning rate {best['params']['learning_rate']:.3f}, "
                f"{refit_params['num_leaves']} leaves a tree (tuned: {best['params']['num_leaves']}), at most "
                f"{rounds:,} rounds (the best trial: {best['iteration']}), "
                f"{config.refit_threads} threads: {iteration} trees, "
                f"validation {spec.eval_metric} {value:.4f}, "
                f"{time.perf_counter() - refit_started:.1f} s"
            )

    # Keep only the best iteration's trees: the string is what the pyfunc model carries, so the
    # pipeline scores with exactly the same booster the registry serves.
    with clock:
        model_str = final.model_to_string(num_iteration=iteration)
        booster = lgb.Booster(model_str=model_str)
    params = {**(refit_params if refit else best["params"]), "num_boost_round": iteration}
    trained = TrainedModel(
        spec_name=spec.name,
        kind=spec.kind,
        booster=booster,
        params=params,
        features=feats,
        category_levels=levels,
        metrics={},
        log_target=spec.log_target,
        n_trials=len(study.trials),
        search_seconds=search_seconds,
        feature_importance=dict(
            zip(booster.feature_name(), map(float, booster.feature_importance("gain")), strict=True)
        ),
    )

    metrics: dict[str, float] = {}
    for prefix, frame, matrix in (("val", val, val_x), ("test", test, to_matrix(test, feats, levels))):
        y = original_scale(spec, frame.get_column("target").cast(pl.Float64).to_numpy())
        with clock:
            raw = np.asarray(booster.predict(matrix), dtype=float)
        prediction = np.clip(np.expm1(raw), 0.0, None) if spec.log_target else raw
        trained.predictions["validation" if prefix == "val" else "test"] = prediction
        metrics.update(score(spec, y, prediction, prefix, baseline_prediction(spec, train, frame)))
    metrics.update(_cross_validate(spec, config, tune_ds, tune_x, y_tune, search_params, clock))
    metrics.update({f"{s}_rows": float(splits[s].height) for s in SPLITS})
    metrics["tune_rows"] = float(len(y_tune))
    trained.metrics = metrics
    trained.lightgbm_seconds = clock.seconds
    trained.train_seconds = time.perf_counter() - t_start
    return trained


def _search(
    study: Any,
    suggest: Callable[[Any], dict[str, Any]],
    fit: Callable[[dict[str, Any], int, Any], Any],
    keep: Callable[[dict[str, Any], Any], float],
    config: TrainConfig,
    report: Callable[[Any, Any], None] | None,
) -> None:
    """Optuna's ``study.optimize`` (n_trials, timeout checked before each new trial, a failed fit fails its
    trial and raises, a fit the pruner stops is told as pruned) with ``config.parallel_trials`` trials fit
    at a time on threads (LightGBM releases the GIL).

    A sliding window: trials are told in trial order, and trial k is asked right after trial
    k - parallel_trials is told, before anything else is. So TPE suggests trial k from exactly the trials
    0 .. k - parallel_trials, and the pruner (:func:`_settled_pruner`) judges it on those alone, on every
    machine and in every run, however long each fit takes; a slot frees as soon as the trial in it is
    told, not when the slowest of a batch is. TPE's first 10 trials are random draws in the order asked,
    the ones a search of one trial at a time draws. Trial k fits on copy k % parallel_trials of the
    tuning sets (fit's second argument): the trial before it on that copy has been told.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    import optuna

    started = time.monotonic()
    width = config.parallel_trials
    with ThreadPoolExecutor(width) if width > 1 else contextlib.nullcontext() as pool:
        running: deque = deque()  # (trial, params, future or None), in trial order

        def launch() -> None:
            if len(study.trials) >= config.n_trials or time.monotonic() - started >= config.timeout_s:
                return
            trial = study.ask()
            params = suggest(trial)
            slot = trial.number % width
            running.append(
                (trial, params, pool.submit(fit, params, slot, trial) if pool is not None else None)
            )

        for _ in range(width):
            launch()
        while running:
            trial, params, future = running.popleft()
            try:
                booster = future.result() if future is not None else fit(params, 0, trial)
            except optuna.TrialPruned:
                frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            except BaseException:
                for failed in [trial, *(t for t, _, _ in running)]:
                    study.tell(failed, state=optuna.trial.TrialState.FAIL)
                raise
            else:
                frozen = study.tell(trial, keep(params, booster))
            launch()  # before the report: the next trial is asked from the trials told so far, nothing else
            if report is not None:
                report(study, frozen)


def _settled_pruner(config: TrainConfig) -> Any:
    """Optuna's MedianPruner, judging trial k on the finished trials among 0 .. k - parallel_trials only: the
    ones told before trial k was asked (:func:`_search`). Trials told while it runs depend on how fast the
    fits are; reading them, a trial would be pruned on one machine and not on another.
    """
    import optuna

    if config.prune_every <= 0:
        return optuna.pruners.NopPruner()
    lag = config.parallel_trials

    class Settled:
        """The study as trial `number` saw it when asked."""

        def __init__(self, study: Any, number: int) -> None:
            self._study, self._last = study, number - lag
            self.direction = study.direction

        def get_trials(self, deepcopy: bool = True, states: Any = None) -> list:
            trials = self._study.get_trials(deepcopy=deepcopy, states=states)
            return [t for t in trials if t.number <= self._last]

    class SettledMedianPruner(optuna.pruners.MedianPruner):
        def prune(self, study: Any, trial: Any) -> bool:
            return super().prune(Settled(study, trial.number), trial)

    return SettledMedianPruner(
        n_startup_trials=config.prune_startup_trials, n_warmup_steps=config.prune_warmup_rounds
    )


def _early_stopped_every(
    params: dict[str, Any],
    rows: Any,
    validation: Any,
    rounds: int,
    every: int,
    patience: int,
    metric: str,
    judged: Callable[[int, float], None] | None = None,
) -> Any:
    """lgb.train with early stopping on `validation`, its metric computed every `every` rounds (and after
    the last): the best iteration is the best of those, and the fit stops once `patience` rounds have
    passed without a better one. The booster carries best_iteration and best_score as lgb.train sets them.
    `judged(rounds, value)` hears each computed value (a trial's pruner; it may raise to stop the fit).
    """
    import lightgbm as lgb

    booster = lgb.Booster(params=params, train_set=rows)
    booster.add_valid(validation, "validation")
    best_iteration, best_value = 0, None

    def judge() -> None:
        nonlocal best_iteration, best_value
        iteration = booster.current_iteration()
        (value, higher), *_ = [(v, h) for _, name, v, h in booster.eval_valid() if name == metric]
        if best_value is None or (value > best_value if higher else value < best_value):
            best_iteration, best_value = iteration, value
        if judged is not None:
            judged(iteration, value)

    for iteration in range(1, rounds + 1):
        if booster.update():  # nothing left to split: LightGBM's own loop stops here too
            break
        if iteration % every == 0:
            judge()
            if iteration - best_iteration >= patience:
                break
    if best_value is None or (
        booster.current_iteration() != best_iteration and booster.current_iteration() % every
    ):
        judge()  # the rounds after the last judged one
    booster.best_iteration = best_iteration
    booster.best_score = {"validation": {metric: best_value}}
    return booster


def refit_leaves(tuned: int, train_rows: int, tune_rows: int, config: TrainConfig) -> int:
    """Leaves a tree of the refit on `train_rows` has, given `tuned` on `tune_rows` (never fewer)."""
    if config.refit_grow_from <= 0:
        return tuned
    beyond = train_rows / (max(tune_rows, 1) * config.refit_grow_from)
    return max(tuned, min(round(tuned * math.sqrt(max(beyond, 1.0))), config.refit_max_leaves))


class _LightGBMClock:
    """Adds up the wall time during which LightGBM runs (``with clock: ...``); thread-safe: while trials
    fit side by side, time counts once however many are inside LightGBM.
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        self._inside = 0
        self._lock = threading.Lock()

    def __enter__(self) -> _LightGBMClock:
        with self._lock:
            if self._inside == 0:
                self._started = time.perf_counter()
            self._inside += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                self.seconds += time.perf_counter() - self._started


def _cross_validate(
    spec: ModelSpec,
    config: TrainConfig,
    train_ds: Any,
    train_x: Any,
    y_train: np.ndarray,
    params: dict[str, Any],
    clock: _LightGBMClock,
) -> dict[str, float]:
    """Time-series k-fold CV of the best parameters on the rows the search fit (fixed rounds, no early stopping)."""
    import lightgbm as lgb

    from mlops_assets.lib import splits as splits_lib

    if config.cv_folds < 2:
        return {}
    primary = spec.primary_metric
    base = {k: v for k, v in params.items() if k != "num_boost_round"}
    folds = []
    for fold_train, fold_val in splits_lib.time_series_folds(len(y_train), config.cv_folds):
        fold_train, fold_val = np.sort(np.asarray(fold_train)), np.sort(np.asarray(fold_val))
        if len(fold_train) == 0 or len(fold_val) == 0:
            continue
        if spec.kind == "binary" and (
            len(np.unique(y_train[fold_train])) < 2 or len(np.unique(y_train[fold_val])) < 2
        ):
            continue
        # A fold trains on a fraction of train: min_data_in_leaf shrinks with it, so a leaf holds the same
        # share of the data as in the tuned model. Unscaled, on the 258 real Apache issues (min_data_in_leaf
        # 72, folds of 129-215 rows, bagging 0.58) no fold could split at all: every fold predicted a
        # constant and the CV ROC-AUC read 0.5 +- 0, a score of nothing.
        fold_params = {
            **base,
            "min_data_in_leaf": max(
                1, round(params.get("min_data_in_leaf", 20) * len(fold_train) / len(y_train))
            ),
        }
        # built here, one at a time: a subset reads its parent Dataset, which threads should not share
        folds.append((fold_params, train_ds.subset(fold_train.tolist()).construct(), fold_val))

    def fold_score(fold: tuple[dict[str, Any], Any, np.ndarray]) -> float:
        fold_params, rows, fold_val = fold
        with clock:
            booster = lgb.train(
                fold_params, rows, num_boost_round=params["num_boost_round"], keep_training_booster=True
            )
            raw = booster.predict(train_x.iloc[fold_val])
        pred = np.clip(np.expm1(raw), 0.0, None) if spec.log_target else raw
        return score(spec, original_scale(spec, y_train[fold_val]), pred, "cv")[f"cv_{primary}"]

    # The folds are independent fits of fixed length (num_threads each, as the trials): config.parallel_trials
    # of them at a time, the largest first so the last one to start is a short one. Each fold's fit and score
    # are the same as one after another; the values keep fold order.
    width = min(config.parallel_trials, len(folds))
    if width > 1:
        from concurrent.futures import ThreadPoolExecutor

        order = sorted(range(len(folds)), key=lambda i: -folds[i][1].num_data())
        with ThreadPoolExecutor(width) as pool:
            futures = {i: pool.submit(fold_score, folds[i]) for i in order}
            values = [futures[i].result() for i in range(len(folds))]
    else:
        values = [fold_score(fold) for fold in folds]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return {}
    return {
        f"cv_{primary}_mean": float(np.mean(values)),
        f"cv_{primary}_std": float(np.std(values)),
        "cv_folds": float(len(values)),
    }
