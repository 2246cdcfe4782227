"""Scoring of tasks by the two champions: the one function the batch table and the online service share.

:func:`score_tasks` turns task rows (``clean.tasks``-shaped, or a :func:`features.records_to_frame`
frame of raw records) into one scored row per task::

    scores = score_tasks(tasks, late_model, cycle_model, history, now)

with the columns of :data:`SCORE_COLUMNS`:

* ``late_risk``: the late_risk champion's probability that the task finishes after its deadline.
  It is null for a task **without a deadline** (late_risk is trained only on tasks with one, so a
  number there would mean nothing); ``warnings`` says so.
* ``risk_band``: ``low`` below :data:`MEDIUM_FROM` (0.25), ``medium`` from 0.25 below
  :data:`HIGH_FROM` (0.5), ``high`` from 0.5. Why these cut-offs: late_risk is trained unweighted
  and is calibrated (training.py: ECE about 0.04), so it reads as a probability; 0.5 is "more likely
  late than on time", and 0.25 is about the share of deadline tasks that end late (16-27% on the
  synthetic sample), so ``medium`` means "riskier than a typical task".
* ``reason_1..reason_3``: the three largest TreeSHAP contributions to late_risk, in words
  (``evaluation.top_reasons_table``), e.g. "assignee already had 14 open tasks raises the risk".
* ``predicted_cycle_days``: the cycle_time champion's days from creation to resolution.
* ``predicted_completion_at``: ``created_at + predicted_cycle_days``, **but never earlier than
  now**: the tasks scored are open, and an open task cannot finish in the past. When the clip applies
  ``completion_overdue`` is true (the task is already older than its predicted cycle time: worth a
  look), and the unclipped date is still ``created_at + predicted_cycle_days``.
* ``warnings``: per task, categories the model never saw (the model treats them as missing, like
  LightGBM does) and "no deadline"; empty list when none.
* ``late_risk_version``, ``cycle_time_version``: the registered versions that produced the row;
  ``scored_at``: ``now``.

Fast path, same numbers: features come from ``features.build_features`` (the training code). The
LightGBM matrix is built with numpy instead of ``training.to_matrix``'s pandas frame (pandas costs
several ms per call, which a 20 ms online budget cannot pay): the category codes are the same
positions in the training levels, unseen or null = missing, so the predictions are bit-identical
to ``training.predict_frame`` (tested).

The champions come from the registry (:func:`load_champions`), the history snapshot from the
warehouse (:func:`warehouse_history`, a short read-only DuckDB connection). No web imports here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mlops_assets.lib import features as features_lib

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_assets.lib.training import TrainedModel

LATE_RISK = "late_risk"
CYCLE_TIME = "cycle_time"
MODEL_NAMES = (LATE_RISK, CYCLE_TIME)

MEDIUM_FROM = 0.25  # late_risk >= this: medium
HIGH_FROM = 0.5  # late_risk >= this: high
RISK_BANDS = ("low", "medium", "high")
N_REASONS = 3
NO_DEADLINE = "no deadline: late_risk applies only to tasks with a deadline"

SCORE_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "late_risk": pl.Float64(),
    "risk_band": pl.String(),
    **{f"reason_{i}": pl.String() for i in range(1, N_REASONS + 1)},
    "predicted_cycle_days": pl.Float64(),
    "predicted_completion_at": features_lib.UTC_DATETIME,
    "completion_overdue": pl.Boolean(),
    "warnings": pl.List(pl.String()),
    "late_risk_version": pl.String(),
    "cycle_time_version": pl.String(),
    "scored_at": features_lib.UTC_DATETIME,
}
SCORE_COLUMNS: list[str] = list(SCORE_SCHEMA)

# The columns History needs from clean.tasks (History.from_tasks fills the other inputs with nulls).
_HISTORY_SELECT = ("task_id", "project", "assignee_id", "created_at", "resolved_at", "due_at", "deadline_at")
_US_PER_DAY = 86_400 * 1_000_000


class NoChampionError(RuntimeError):
    """A model has no ``champion`` alias yet; the message says which and what to do."""


class NoHistoryError(RuntimeError):
    """The warehouse has no ``clean.tasks`` to take history features from; the message says what to run."""


# ---------------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class ServedModel:
    """One registered model version as scoring needs it: the booster and how to build its matrix."""

    name: str
    version: str
    booster: Any  # lightgbm.Booster
    features: tuple[str, ...]
    category_levels: dict[str, list[str]]
    log_target: bool = False
    _codes: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = {c: {level: i for i, level in enumerate(levels)} for c, levels in self.category_levels.items()}
        object.__setattr__(self, "_codes", codes)

    @classmethod
    def from_trained(cls, trained: TrainedModel, version: str) -> ServedModel:
        """A freshly trained model (tests, notebooks) under a version label."""
        return cls(
            trained.spec_name, str(version), trained.booster, tuple(trained.features),
            dict(trained.category_levels), trained.log_target,
        )  # fmt: skip

    @classmethod
    def from_task_model(cls, name: str, version: str, model: Any) -> ServedModel:
        """From a ``pyfunc.TaskModel`` (what the registry stores): its model string, features and levels."""
        import lightgbm as lgb

        return cls(
            name, str(version), lgb.Booster(model_str=model.model_string), tuple(model.features),
            {k: list(v) for k, v in model.category_levels.items()}, bool(model.log_target),
        )  # fmt: skip

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        """The float matrix LightGBM sees: numerics as float, categories as training-level codes (else NaN)."""
        out = np.empty((frame.height, len(self.features)), dtype=np.float64)
        for j, column in enumerate(self.features):
            codes = self._codes.get(column)
            if codes is None:
                out[:, j] = frame.get_column(column).cast(pl.Float64).to_numpy()
            else:
                out[:, j] = [codes.get(value, math.nan) for value in frame.get_column(column).to_list()]
        return out

    def predict(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Predictions on the original scale, as ``training.predict_frame`` gives them."""
        if len(matrix) == 0:
            return np.empty(0)
        raw = np.asarray(self.booster.predict(matrix, num_threads=num_threads), dtype=float)
        return np.clip(np.expm1(raw), 0.0, None) if self.log_target else raw

    def unknown_categories(self, frame: pl.DataFrame, rows: np.ndarray | None = None) -> dict[int, list[str]]:
        """Row -> messages for category values this version never saw (scored as missing)."""
        out: dict[int, list[str]] = {}
        for column, codes in self._codes.items():
            levels = self.category_levels[column]
            examples = ", ".join(levels[:8]) + (", ..." if len(levels) > 8 else "")
            for row, value in enumerate(frame.get_column(column).to_list()):
                if value is None or value in codes or (rows is not None and not rows[row]):
                    continue
                out.setdefault(row, []).append(
                    f"{column} {value!r} was not seen in training of {self.name} v{self.version} (known: {examples})"
                )
        return out


def load_model_version(name: str, version: str, client: MlflowClient) -> ServedModel:
    """A registered version, loaded once through the registry (the pyfunc's stored booster and levels)."""
    from mlops_assets.lib import registry

    return ServedModel.from_task_model(name, version, registry.load_version_model(name, str(version), client))


def champion_versions(client: MlflowClient) -> dict[str, str | None]:
    """The version each model's ``champion`` alias points at (None: no champion)."""
    from mlops_assets.lib import registry

    return {name: registry.champion_version(name, client) for name in MODEL_NAMES}


def load_champions(client: MlflowClient, versions: Mapping[str, str | None] | None = None) -> dict[str, ServedModel]:
    """Both champions; :class:`NoChampionError` naming every model without one."""
    versions = dict(versions) if versions is not None else champion_versions(client)
    missing = [name for name in MODEL_NAMES if not versions.get(name)]
    if missing:
        raise NoChampionError(
            f"no champion yet for {', '.join(missing)} in the MLflow registry at {client.tracking_uri}: "
            "train and promote one (`make run`, or materialize the training assets)"
        )
    return {name: load_model_version(name, str(versions[name]), client) for name in MODEL_NAMES}


# ---------------------------------------------------------------------------------------------------
# history from the warehouse


def warehouse_history(path: str | Path, lock_timeout_s: float = 10.0) -> features_lib.History:
    """History snapshot from ``clean.tasks``, read through a read-only connection closed right away.

    DuckDB lets one process write a file; holding a connection would block the pipeline, so the
    service reads once per refresh and keeps the snapshot in memory.
    """
    import duckdb

    from mlops_assets.lib.warehouse import Warehouse

    try:
        with Warehouse(path, lock_timeout_s=lock_timeout_s).connect(read_only=True) as con:
            tasks = con.execute(f"SELECT {', '.join(_HISTORY_SELECT)} FROM clean.tasks").pl()
    except FileNotFoundError as exc:
        raise NoHistoryError(str(exc)) from exc
    except duckdb.CatalogException as exc:
        raise NoHistoryError(
            f"warehouse {path} has no clean.tasks table: materialize the ingestion and cleaning assets first "
            "(`make run`)"
        ) from exc
    return features_lib.History.from_tasks(tasks)


# ---------------------------------------------------------------------------------------------------
# scoring


def risk_band(late_risk: float | None) -> str | None:
    """low / medium / high for a probability (cut-offs :data:`MEDIUM_FROM`, :data:`HIGH_FROM`)."""
    if late_risk is None or math.isnan(late_risk):
        return None
    return "high" if late_risk >= HIGH_FROM else "medium" if late_risk >= MEDIUM_FROM else "low"


def _reasons(model: ServedModel, matrix: np.ndarray, num_threads: int) -> pl.DataFrame:
    """reason_1..3 for each row of `matrix` from TreeSHAP contributions, in words."""
    import pandas as pd

    from mlops_assets.lib import evaluation

    names = list(model.features)
    contribs = pd.DataFrame(
        np.asarray(model.booster.predict(matrix, pred_contrib=True, num_threads=num_threads)),
        columns=[*names, evaluation.BASE_VALUE_COLUMN],
    )
    # The values as the model saw them: categories as their training levels (unseen = missing).
    values: dict[str, Any] = {}
    for j, name in enumerate(names):
        column = matrix[:, j]
        if name in model.category_levels:
            codes = np.where(np.isnan(column), -1, column).astype(np.int64)
            values[name] = pd.Categorical.from_codes(codes, categories=model.category_levels[name])
        else:
            values[name] = column
    return evaluation.top_reasons_table(contribs, pd.DataFrame(values), k=N_REASONS, effects=evaluation.RISK_EFFECTS)


def score_features(
    feature_frame: pl.DataFrame,
    late_model: ServedModel,
    cycle_model: ServedModel,
    now: datetime,
    *,
    num_threads: int = 1,
) -> tuple[pl.DataFrame, dict[int, list[str]]]:
    """Score a ``build_features`` frame: (SCORE_COLUMNS frame, row -> unknown-category messages).

    The messages are also in the frame's ``warnings``; they are returned apart so the online service
    can refuse such records instead of scoring them.
    """
    if now.tzinfo is None:
        raise ValueError(f"now={now.isoformat()} has no time zone: pass an aware UTC datetime")
    now = now.astimezone(UTC)
    n = feature_frame.height
    has_deadline = feature_frame.get_column("has_deadline").fill_null(0.0).to_numpy() > 0

    late_x = late_model.matrix(feature_frame)
    late_risk = np.full(n, np.nan)
    reasons = pl.DataFrame(schema={f"reason_{i}": pl.String() for i in range(1, N_REASONS + 1)})
    if has_deadline.any():
        late_risk[has_deadline] = late_model.predict(late_x[has_deadline], num_threads)
        reasons = _reasons(late_model, late_x[has_deadline], num_threads)
    cycle_days = cycle_model.predict(cycle_model.matrix(feature_frame), num_threads)

    unknown: dict[int, list[str]] = {}
    for source in (late_model.unknown_categories(feature_frame, has_deadline),
                   cycle_model.unknown_categories(feature_frame)):  # fmt: skip
        for row, messages in source.items():
            unknown.setdefault(row, []).extend(messages)
    warnings = [
        ([] if has_deadline[row] else [NO_DEADLINE]) + [f"{m}: scored as missing" for m in unknown.get(row, [])]
        for row in range(n)
    ]

    created_us = feature_frame.get_column("created_at").dt.epoch("us").to_numpy()
    now_us = _epoch_us(now)
    due_us = created_us + np.rint(cycle_days * _US_PER_DAY).astype(np.int64)

    # reasons exist only for rows with a deadline: put them back in place
    reason_columns: dict[str, list[str | None]] = {f"reason_{i}": [None] * n for i in range(1, N_REASONS + 1)}
    deadline_rows = np.flatnonzero(has_deadline).tolist()
    for name, column in reason_columns.items():
        for row, reason in zip(deadline_rows, reasons.get_column(name).to_list(), strict=True):
            column[row] = reason

    frame = pl.DataFrame(
        {
            "task_id": feature_frame.get_column("task_id"),
            "late_risk": pl.Series(late_risk, dtype=pl.Float64).fill_nan(None),
            "risk_band": pl.Series([risk_band(p) for p in late_risk.tolist()], dtype=pl.String),
            **{name: pl.Series(column, dtype=pl.String) for name, column in reason_columns.items()},
            "predicted_cycle_days": pl.Series(cycle_days, dtype=pl.Float64),
            "predicted_completion_at": pl.Series(np.maximum(due_us, now_us), dtype=pl.Int64),
            "completion_overdue": pl.Series(due_us < now_us, dtype=pl.Boolean),
            "warnings": pl.Series(warnings, dtype=pl.List(pl.String)),
        }
    ).with_columns(
        pl.col("predicted_completion_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit(late_model.version, pl.String).alias("late_risk_version"),
        pl.lit(cycle_model.version, pl.String).alias("cycle_time_version"),
        pl.lit(now, features_lib.UTC_DATETIME).alias("scored_at"),
    )
    return frame.select(pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items()), unknown


def _epoch_us(value: datetime) -> int:
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def score_tasks(
    tasks: pl.DataFrame,
    late_model: ServedModel,
    cycle_model: ServedModel,
    history: features_lib.History,
    now: datetime,
    *,
    num_threads: int = 1,
) -> pl.DataFrame:
    """One scored row per task (same order), columns :data:`SCORE_COLUMNS`; see the module docstring.

    `tasks` is clean.tasks-shaped or a records_to_frame() frame; features are built as of each task's
    created_at from `history` (``History.from_tasks(clean.tasks)`` or :func:`warehouse_history`).
    """
    feature_frame = features_lib.build_features(tasks, history)
    return score_features(feature_frame, late_model, cycle_model, now, num_threads=num_threads)[0]


def open_tasks(tasks: pl.DataFrame) -> pl.DataFrame:
    """The tasks a scoring run is for: not in a done status."""
    return tasks.filter(pl.col("status_category").fill_null("todo") != "done")


def score_open_tasks(
    tasks: pl.DataFrame,
    late_model: ServedModel,
    cycle_model: ServedModel,
    now: datetime,
    *,
    history: features_lib.History | None = None,
    num_threads: int = 1,
) -> pl.DataFrame:
    """The batch table: every open task of clean.tasks scored, history from all of clean.tasks."""
    history = history if history is not None else features_lib.History.from_tasks(tasks)
    return score_tasks(open_tasks(tasks), late_model, cycle_model, history, now, num_threads=num_threads)


def task_records(tasks: pl.DataFrame) -> list[dict[str, Any]]:
    """clean.tasks rows as an online client sends them: the input fields only, ISO 8601 UTC times, no nulls."""
    columns = [c for c in features_lib.INPUT_COLUMNS if c in tasks.columns]
    exprs = []
    for name in columns:
        dtype = tasks.schema[name]
        if dtype.is_temporal():
            exprs.append(pl.col(name).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"))
        elif features_lib.INPUT_COLUMNS[name] == pl.Int64:
            exprs.append(pl.col(name).cast(pl.Int64))
        else:
            exprs.append(pl.col(name))
    return [{k: v for k, v in row.items() if v is not None} for row in tasks.select(exprs).iter_rows(named=True)]
