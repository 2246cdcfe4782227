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
  (``evaluation.top_reasons_arrays``, the same sentences as ``top_reasons_table``), e.g. "assignee
  already had 14 open tasks raises the risk". Exact SHAP values, never approximated; but they cost
  about 0.1-0.2 ms per task (LightGBM ``pred_contrib``), so *which* tasks get them is a choice
  (``explain``): ``"all"`` (every task with a deadline: :func:`score_tasks`, the online service) or
  ``"at_risk"`` (medium/high band only: :func:`score_open_tasks`, the batch table, where a low-risk
  task's reasons would be read by nobody). ``max_explained`` caps the count (batch default
  :data:`BATCH_MAX_EXPLAINED`): the riskiest tasks are explained first and the others at risk say
  :data:`REASONS_CAPPED` in ``warnings``. Reasons are null where not computed.
* ``predicted_cycle_days``: the cycle_time champion's days from creation to resolution.
* ``predicted_completion_at``: ``created_at + predicted_cycle_days``, **but never earlier than
  now**: the tasks scored are open, and an open task cannot finish in the past. When the clip applies
  ``completion_overdue`` is true (the task is already older than its predicted cycle time: worth a
  look), and the unclipped date is still ``created_at + predicted_cycle_days``.
* ``warnings``: per task, categories the model never saw (the model treats them as missing, like
  LightGBM does) and "no deadline"; empty list when none.
* ``late_risk_version``, ``cycle_time_version``: the registered versions that produced the row;
  ``scored_at``: ``now``.

Fast paths, same numbers: batch features come from ``features.build_features`` (the training code);
online ones from ``history_index.feature_columns``, which is proven equal to it and has no fixed
polars cost. The LightGBM matrix is built with numpy instead of ``training.to_matrix``'s pandas frame
(pandas costs several ms per call, which a 20 ms online budget cannot pay): the category codes are
the same positions in the training levels, unseen or null = missing, so the predictions are
bit-identical to ``training.predict_frame`` (tested). :func:`score_rows` gives the online answer as
dicts equal to the rows of :func:`score_features`' frame (tested).

The champions come from the registry (:func:`load_champions`), the history snapshot from the
warehouse (:func:`warehouse_history`, a short read-only DuckDB connection). No web imports here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mlops_assets.lib import features as features_lib
from mlops_assets.lib import history_index
from mlops_assets.lib.history_index import FeatureColumns

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
EXPLAIN_CHOICES = ("all", "at_risk")
BATCH_MAX_EXPLAINED = 200_000  # reasons per batch run: about 0.13 ms of TreeSHAP each (docs/benchmarks/serving.md)
REASONS_CAPPED = "reasons not computed: more medium/high-risk tasks than the cap of this run"

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

    def matrix(self, features: pl.DataFrame | FeatureColumns) -> np.ndarray:
        """The float matrix LightGBM sees: numerics as float, categories as training-level codes (else NaN)."""
        n = features.height
        out = np.empty((n, len(self.features)), dtype=np.float64)
        for j, column in enumerate(self.features):
            codes = self._codes.get(column)
            if isinstance(features, FeatureColumns):
                values = features.column(column)
                out[:, j] = values if codes is None else [codes.get(value, math.nan) for value in values]
            elif codes is None:
                out[:, j] = features.get_column(column).cast(pl.Float64).fill_null(math.nan).to_numpy()
            else:  # unseen or null: missing
                out[:, j] = (
                    features.get_column(column)
                    .replace_strict(list(codes), list(codes.values()), default=None, return_dtype=pl.Float64)
                    .fill_null(math.nan)
                    .to_numpy()
                )
        return out

    def predict(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Predictions on the original scale, as ``training.predict_frame`` gives them."""
        if len(matrix) == 0:
            return np.empty(0)
        raw = np.asarray(self.booster.predict(matrix, num_threads=num_threads), dtype=float)
        return np.clip(np.expm1(raw), 0.0, None) if self.log_target else raw

    def unknown_categories(
        self, features: pl.DataFrame | FeatureColumns, rows: np.ndarray | None = None
    ) -> dict[int, list[str]]:
        """Row -> messages for category values this version never saw (scored as missing).

        `rows` (a boolean mask) limits the check to those rows.
        """
        out: dict[int, list[str]] = {}
        for column, codes in self._codes.items():
            if isinstance(features, FeatureColumns):
                values = features.column(column)
                distinct = set(values)
            else:
                series = features.get_column(column)
                distinct = set(series.unique().to_list())
                values = None
            if not (distinct - codes.keys() - {None}):
                continue  # the usual case: nothing unseen, no per-row loop
            values = values if values is not None else series.to_list()
            levels = self.category_levels[column]
            examples = ", ".join(levels[:8]) + (", ..." if len(levels) > 8 else "")
            for row, value in enumerate(values):
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


def _reasons(model: ServedModel, matrix: np.ndarray, num_threads: int) -> list[list[str | None]]:
    """reason_1..3 (lists) for each row of `matrix` from exact TreeSHAP contributions, in words."""
    from mlops_assets.lib import evaluation

    if len(matrix) == 0:
        return [[] for _ in range(N_REASONS)]
    contribs = np.asarray(model.booster.predict(matrix, pred_contrib=True, num_threads=num_threads))
    # the values as the model saw them: categories as positions in their training levels (NaN: missing)
    return evaluation.top_reasons_arrays(contribs, matrix, model.features, model.category_levels,
                                         k=N_REASONS, effects=evaluation.RISK_EFFECTS)  # fmt: skip


def _explained_rows(late_risk: np.ndarray, explain: str, max_explained: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows that get reasons, rows at risk left without them because of the cap), as index arrays."""
    if explain not in EXPLAIN_CHOICES:
        raise ValueError(f"explain={explain!r}: use one of {', '.join(EXPLAIN_CHOICES)}")
    with np.errstate(invalid="ignore"):
        wanted = ~np.isnan(late_risk) if explain == "all" else late_risk >= MEDIUM_FROM
    rows = np.flatnonzero(wanted)
    if max_explained is None or len(rows) <= max_explained:
        return rows, np.empty(0, dtype=np.intp)
    if max_explained < 0:
        raise ValueError(f"max_explained={max_explained} must be 0 or more (None: no cap)")
    by_risk = rows[np.argsort(-late_risk[rows], kind="stable")]  # riskiest first, ties in row order
    return np.sort(by_risk[:max_explained]), np.sort(by_risk[max_explained:])


def _score_columns(
    cols: FeatureColumns,
    late_model: ServedModel,
    cycle_model: ServedModel,
    now: datetime,
    num_threads: int,
    explain: str,
    max_explained: int | None,
) -> tuple[dict[str, Any], dict[int, list[str]]]:
    """The score columns (numpy arrays and lists) of feature columns, and row -> unknown-category messages."""
    n = cols.height
    has_deadline = np.nan_to_num(cols.numeric["has_deadline"], nan=0.0) > 0
    late_x = late_model.matrix(cols)
    late_risk = np.full(n, np.nan)
    if has_deadline.any():
        late_risk[has_deadline] = late_model.predict(late_x[has_deadline], num_threads)
    explained, capped = _explained_rows(late_risk, explain, max_explained)
    reasons: list[list[str | None]] = [[None] * n for _ in range(N_REASONS)]
    for position, column in enumerate(_reasons(late_model, late_x[explained], num_threads)):
        target = reasons[position]
        for row, reason in zip(explained.tolist(), column, strict=True):
            target[row] = reason
    cycle_days = cycle_model.predict(cycle_model.matrix(cols), num_threads)

    unknown: dict[int, list[str]] = {}
    for source in (late_model.unknown_categories(cols, has_deadline), cycle_model.unknown_categories(cols)):
        for row, messages in source.items():
            unknown.setdefault(row, []).extend(messages)
    warnings: list[list[str]] = [[] if flag else [NO_DEADLINE] for flag in has_deadline.tolist()]
    for row, messages in unknown.items():
        warnings[row].extend(f"{m}: scored as missing" for m in messages)
    if len(capped):
        note = f"{REASONS_CAPPED} (max_explained={max_explained})"
        for row in capped.tolist():
            warnings[row].append(note)

    now_us = history_index.epoch_us(now)
    due_us = cols.created_us + np.rint(cycle_days * _US_PER_DAY).astype(np.int64)
    return {
        "task_id": cols.task_id,
        "late_risk": late_risk,
        "risk_band": [risk_band(p) for p in late_risk.tolist()],
        **{f"reason_{i + 1}": column for i, column in enumerate(reasons)},
        "predicted_cycle_days": cycle_days,
        "predicted_completion_at": np.maximum(due_us, now_us),
        "completion_overdue": due_us < now_us,
        "warnings": warnings,
    }, unknown


def _aware_now(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"now={now.isoformat()} has no time zone: pass an aware UTC datetime")
    return now.astimezone(UTC)


def score_features(
    features: pl.DataFrame | FeatureColumns,
    late_model: ServedModel,
    cycle_model: ServedModel,
    now: datetime,
    *,
    num_threads: int = 1,
    explain: str = "all",
    max_explained: int | None = None,
) -> tuple[pl.DataFrame, dict[int, list[str]]]:
    """Score a ``build_features`` frame (or its :class:`FeatureColumns`): (SCORE_COLUMNS frame, row ->
    unknown-category messages).

    The messages are also in the frame's ``warnings``; they are returned apart so the online service
    can refuse such records instead of scoring them. `explain` / `max_explained`: which rows get
    reasons (module docstring).
    """
    now = _aware_now(now)
    cols = features if isinstance(features, FeatureColumns) else FeatureColumns.from_frame(features)
    columns, unknown = _score_columns(cols, late_model, cycle_model, now, num_threads, explain, max_explained)
    frame = pl.DataFrame(
        {
            "task_id": pl.Series(columns["task_id"], dtype=pl.String),
            "late_risk": pl.Series(columns["late_risk"], dtype=pl.Float64).fill_nan(None),
            "risk_band": pl.Series(columns["risk_band"], dtype=pl.String),
            **{f"reason_{i}": pl.Series(columns[f"reason_{i}"], dtype=pl.String) for i in range(1, N_REASONS + 1)},
            "predicted_cycle_days": pl.Series(columns["predicted_cycle_days"], dtype=pl.Float64),
            "predicted_completion_at": pl.Series(columns["predicted_completion_at"], dtype=pl.Int64),
            "completion_overdue": pl.Series(columns["completion_overdue"], dtype=pl.Boolean),
            "warnings": pl.Series(columns["warnings"], dtype=pl.List(pl.String)),
        }
    ).with_columns(
        pl.col("predicted_completion_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit(late_model.version, pl.String).alias("late_risk_version"),
        pl.lit(cycle_model.version, pl.String).alias("cycle_time_version"),
        pl.lit(now, features_lib.UTC_DATETIME).alias("scored_at"),
    )
    return frame.select(pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items()), unknown


def score_rows(
    cols: FeatureColumns,
    late_model: ServedModel,
    cycle_model: ServedModel,
    now: datetime,
    *,
    num_threads: int = 1,
) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """:func:`score_features` as one dict per row (the online answer): same values, no frame built.

    Every row gets its reasons (explain="all"); the dicts equal ``score_features(...)[0].iter_rows(named=True)``.
    """
    now = _aware_now(now)
    columns, unknown = _score_columns(cols, late_model, cycle_model, now, num_threads, "all", None)
    versions = {"late_risk_version": late_model.version, "cycle_time_version": cycle_model.version}
    rows = []
    for i, (risk, cycle_days, completion_us, overdue) in enumerate(zip(
        columns["late_risk"].tolist(), columns["predicted_cycle_days"].tolist(),
        columns["predicted_completion_at"].tolist(), columns["completion_overdue"].tolist(), strict=True,
    )):  # fmt: skip
        rows.append({
            "task_id": columns["task_id"][i],
            "late_risk": None if math.isnan(risk) else risk,
            "risk_band": columns["risk_band"][i],
            **{f"reason_{p}": columns[f"reason_{p}"][i] for p in range(1, N_REASONS + 1)},
            "predicted_cycle_days": cycle_days,
            "predicted_completion_at": history_index.from_epoch_us(completion_us),
            "completion_overdue": overdue,
            "warnings": columns["warnings"][i],
            **versions,
            "scored_at": now,
        })  # fmt: skip
    return rows, unknown


def score_tasks(
    tasks: pl.DataFrame,
    late_model: ServedModel,
    cycle_model: ServedModel,
    history: features_lib.History,
    now: datetime,
    *,
    num_threads: int = 1,
    explain: str = "all",
    max_explained: int | None = None,
) -> pl.DataFrame:
    """One scored row per task (same order), columns :data:`SCORE_COLUMNS`; see the module docstring.

    `tasks` is clean.tasks-shaped or a records_to_frame() frame; features are built as of each task's
    created_at from `history` (``History.from_tasks(clean.tasks)`` or :func:`warehouse_history`).
    """
    feature_frame = features_lib.build_features(tasks, history)
    return score_features(feature_frame, late_model, cycle_model, now, num_threads=num_threads,
                          explain=explain, max_explained=max_explained)[0]  # fmt: skip


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
    num_threads: int | None = None,
    explain: str = "at_risk",
    max_explained: int | None = BATCH_MAX_EXPLAINED,
) -> pl.DataFrame:
    """The batch table: every open task of clean.tasks scored, history from all of clean.tasks.

    Reasons only for medium/high-risk tasks, at most `max_explained` of them, riskiest first (module
    docstring). `num_threads` None: every core (a batch run has the machine to itself).
    """
    history = history if history is not None else features_lib.History.from_tasks(tasks)
    threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
    return score_tasks(open_tasks(tasks), late_model, cycle_model, history, now, num_threads=threads,
                       explain=explain, max_explained=max_explained)  # fmt: skip


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
