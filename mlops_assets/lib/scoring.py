"""Scoring of tasks by the two champions: the one function the batch table and the online service share.

:func:`score_tasks` turns task rows (``clean.tasks``-shaped, or a :func:`features.records_to_frame`
frame of raw records) into one scored row per task::

    scores = score_tasks(tasks, late_model, cycle_model, history, now)

with the columns of :data:`SCORE_COLUMNS`:

* ``late_risk``: the late_risk champion's probability that the task finishes after its deadline.
  It is null for a task **without a deadline** (late_risk is trained only on tasks with one, so a
  number there would mean nothing); ``warnings`` says so.
* ``risk_band``: ``low`` below :data:`MEDIUM_FROM` (0.25), ``medium`` from 0.25 below
  :data:`HIGH_FROM` (0.5), ``high`` from 0.5, and :data:`NO_DEADLINE_BAND` ("no deadline") for a task
  without a deadline, so every open task has a band a PM can filter on (never a missing value). Why these cut-offs: late_risk is trained unweighted
  and is calibrated (training.py: ECE about 0.04), so it reads as a probability; 0.5 is "more likely
  late than on time", and 0.25 is about the share of deadline tasks that end late (16-27% on the
  synthetic sample), so ``medium`` means "riskier than a typical task".
* ``reason_1..reason_3``: the three largest TreeSHAP contributions to late_risk, in words
  (``explain.top_reasons_arrays``, the same sentences as ``top_reasons_table``), e.g. "assignee
  already had 14 open tasks raises the risk", for **every task with a deadline**, in the batch table
  and online alike (a task without one has no late_risk to explain). Exact path-dependent TreeSHAP,
  never approximated: with a compiled champion (:meth:`ServedModel.compiled`, what
  :func:`load_champions` gives) it is read from SHAP tables, about 21 us a task of CPU for the
  champion of a 1M-task run (907 trees) instead of LightGBM ``pred_contrib``'s ~1,100 us, and its
  values are within ~1e-14 of LightGBM's (``fast_trees``; same sentences, tested). ``explain="at_risk"`` (medium/high band only) and ``max_explained`` (a cap, riskiest
  first; the others at risk say :data:`REASONS_CAPPED` in ``warnings``) remain for callers that
  want fewer. Reasons are null where not computed.
* ``predicted_cycle_days``: the cycle_time champion's days from creation to resolution.
* ``predicted_completion_at``: ``created_at + predicted_cycle_days``, **but never earlier than
  now**: the tasks scored are open, and an open task cannot finish in the past. When the clip applies
  ``completion_overdue`` is true (the task is already older than its predicted cycle time: worth a
  look), and the unclipped date is still ``created_at + predicted_cycle_days``.
* ``warnings``: per task, categories the model never saw (the model treats them as missing, like
  LightGBM does) and "no deadline"; empty list when none.
* ``late_risk_version``, ``cycle_time_version``: the registered versions that produced the row;
  ``scored_at``: ``now``, the time the scores are as of. The batch table passes :func:`scoring_as_of`:
  the data's own end (its latest created/updated/resolved time), or ``MLOPS_AS_OF``; the online
  service passes the wall clock.

Fast paths, same numbers: batch features come from ``features.build_features`` (the training code);
online ones from ``history_index.feature_columns``, which is proven equal to it and has no fixed
polars cost. The LightGBM matrix is built with numpy/polars instead of ``training.to_matrix``'s pandas
frame (pandas costs several ms per call, which a 20 ms online budget cannot pay): the category codes
are the same positions in the training levels, unseen or null = missing, so the predictions are
bit-identical to ``training.predict_frame`` (tested), with LightGBM or with the compiled predictor
(``fast_trees.compile_forest``, bit-identical to LightGBM, tested). The batch frame is assembled
column by column (polars expressions, no Python object per row but the reason texts);
:func:`score_rows` gives the online answer as dicts equal to the rows of :func:`score_features`'
frame (tested).

The champions come from the registry (:func:`load_champions`), the history snapshot from the
warehouse (:func:`warehouse_history`, a short read-only DuckDB connection). No web imports here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mlops_assets.lib import asof, history_index, settings
from mlops_assets.lib import features as features_lib
from mlops_assets.lib.history_index import FeatureColumns
from mlops_assets.lib.redact import redact

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
NO_DEADLINE_BAND = "no deadline"  # the risk_band of a task without a deadline (it has no late_risk)
AS_OF_ENV = "MLOPS_AS_OF"
# Data whose latest change is at most this old is live (pulled daily, a weekend without edits
# included): it is scored as of the wall clock, so open tasks age between refreshes. Older data (an
# export, the sample) is scored as of its own end.
LIVE_WITHIN = timedelta(days=3)
EXPLAIN_CHOICES = ("all", "at_risk")
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
_OVERLAP_ROWS = 50_000  # from this many rows the two models' work runs side by side


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
    forest: Any = field(default=None, repr=False, compare=False)  # fast_trees.CompiledForest
    shap: Any = field(default=None, repr=False, compare=False)  # fast_trees.CompiledShap
    _codes: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = {
            c: {level: i for i, level in enumerate(levels)} for c, levels in self.category_levels.items()
        }
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

    def compiled(
        self,
        *,
        shap: bool = False,
        cache_dir: str | Path | None = None,
        max_compile_leaves: int | None = None,
        batch_rows: int | None = None,
    ) -> ServedModel:
        """This version with its predictor (and, with `shap`, its TreeSHAP) compiled to native code.

        Same predictions bit for bit and SHAP values within ~1e-15 of LightGBM (``fast_trees``); the
        compiled code is cached per model text under `cache_dir` (``fast_trees.default_cache_dir()``).
        SHAP comes from tables (``fast_trees.compile_shap``) unless the trees are too big for them
        (``fast_trees.shap_table_nodes``): then LightGBM's ``pred_contrib``.
        `max_compile_leaves`: a forest with more leaves that is not in the cache yet is left to
        LightGBM's own predictor (the same numbers) rather than compiled now. `batch_rows`: the rows one
        batch will score (and explain): what is not in the cache is compiled only when that many rows
        repay the compiling or the tables (``fast_trees.BATCH_COMPILE_MIN_ROWS``, ``BATCH_SHAP_COMPILE_MIN_ROWS``).
        """
        from mlops_assets.lib import fast_trees

        if not fast_trees.available():  # Python 3.14+: no lleaves/llvmlite wheels; LightGBM scores
            return self
        model_string = self.booster.model_to_string()
        if (
            max_compile_leaves is not None
            and not fast_trees.forest_is_cached(model_string, cache_dir)
            and fast_trees.forest_leaves(self.booster) > max_compile_leaves
        ):  # a cache hit needs no dump_model
            return self
        forest = explainer = None
        if (
            batch_rows is None
            or batch_rows >= fast_trees.BATCH_COMPILE_MIN_ROWS
            or fast_trees.forest_is_cached(model_string, cache_dir)
        ):
            forest = fast_trees.compile_forest(model_string, cache_dir)
        if shap:
            explainer = fast_trees.shap_tables(
                self.booster,
                model_string,
                cache_dir,
                build=batch_rows is None or batch_rows >= fast_trees.BATCH_SHAP_COMPILE_MIN_ROWS,
            )
        return dataclasses.replace(self, forest=forest, shap=explainer)

    def matrix(self, features: pl.DataFrame | FeatureColumns) -> np.ndarray:
        """The float matrix LightGBM sees: numerics as float, categories as training-level codes (else NaN)."""
        n = features.height
        if not isinstance(features, FeatureColumns):  # one polars select, written row-major in one go
            exprs = [
                pl.col(column).cast(pl.Float64) if (codes := self._codes.get(column)) is None
                # unseen or null: missing
                else pl.col(column).replace_strict(list(codes), list(codes.values()), default=None, return_dtype=pl.Float64)
                for column in self.features
            ]  # fmt: skip
            out = features.select(exprs).fill_null(math.nan).to_numpy(order="c")
            return np.ascontiguousarray(out, dtype=np.float64).reshape(n, len(self.features))
        out = np.empty((n, len(self.features)), dtype=np.float64)
        for j, column in enumerate(self.features):
            codes = self._codes.get(column)
            values = features.column(column)
            out[:, j] = values if codes is None else [codes.get(value, math.nan) for value in values]
        return out

    def predict(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """Predictions on the original scale, as ``training.predict_frame`` gives them."""
        if len(matrix) == 0:
            return np.empty(0)
        if self.forest is not None:
            raw = self.forest.predict(matrix, n_jobs=num_threads)
        else:
            raw = np.asarray(self.booster.predict(matrix, num_threads=num_threads), dtype=float)
        return np.clip(np.expm1(raw), 0.0, None) if self.log_target else raw

    def contributions(self, matrix: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """TreeSHAP values (LightGBM's ``pred_contrib`` layout), compiled when this version has it."""
        if self.shap is not None:
            return self.shap.contributions(matrix, n_jobs=num_threads)
        return np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=num_threads))

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


def load_champions(
    client: MlflowClient,
    versions: Mapping[str, str | None] | None = None,
    *,
    compile_models: bool = True,
    cache_dir: str | Path | None = None,
    max_compile_leaves: int | None = None,
    batch_rows: int | None = None,
) -> dict[str, ServedModel]:
    """Both champions; :class:`NoChampionError` naming every model without one.

    `compile_models`: with their compiled predictors (and late_risk's compiled TreeSHAP, which the
    reasons use), :meth:`ServedModel.compiled`; the same numbers as without, much faster.
    `max_compile_leaves`: leave bigger forests that are not compiled yet to LightGBM (a one-off batch);
    `batch_rows`: the rows a one-off batch scores: compile what is not cached only when they repay it.
    """
    versions = dict(versions) if versions is not None else champion_versions(client)
    missing = [name for name in MODEL_NAMES if not versions.get(name)]
    if missing:
        raise NoChampionError(
            f"no champion yet for {', '.join(missing)} in the MLflow registry at {redact(client.tracking_uri)}: "
            "train and promote one (`make run`, or materialize the training assets)"
        )
    models = {name: load_model_version(name, str(versions[name]), client) for name in MODEL_NAMES}
    if compile_models:
        models = {
            name: model.compiled(
                shap=name == LATE_RISK,
                cache_dir=cache_dir,
                max_compile_leaves=max_compile_leaves,
                batch_rows=batch_rows,
            )
            for name, model in models.items()
        }
    return models


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
            try:  # the event history of the tasks that can be scored (open ones), looked up by task_id
                events = con.execute(
                    "SELECT e.task_id, e.changed_at, e.field, e.from_value, e.to_value FROM clean.task_events e "
                    "JOIN clean.tasks t USING (task_id) WHERE coalesce(t.status_category, 'todo') <> 'done'"
                ).pl()
            except duckdb.CatalogException:  # a warehouse cleaned before events existed
                events = None
    except FileNotFoundError as exc:
        raise NoHistoryError(str(exc)) from exc
    except duckdb.CatalogException as exc:
        raise NoHistoryError(
            f"warehouse {path} has no clean.tasks table: materialize the ingestion and cleaning assets first "
            "(`make run`)"
        ) from exc
    history = features_lib.History.from_tasks(tasks)
    return dataclasses.replace(history, events=asof.TaskEvents.from_frame(events))


# ---------------------------------------------------------------------------------------------------
# as of when


def scoring_as_of(tasks: pl.DataFrame, environ: Mapping[str, str] | None = None) -> tuple[datetime, str]:
    """(the time batch scores are as of, where it comes from): ``MLOPS_AS_OF`` when set, else now for
    live data, else the data's end.

    The data's end is its latest created/updated/resolved time (never later than now). Data changed
    within :data:`LIVE_WITHIN` of now is live (daily pulls): it is scored as of now, so the daily score
    refresh moves every open task's age and time left on. Older data, an export or the sample (which
    ends 2026-10-31), is scored as of the day it describes, not the day it is read, so open tasks are
    not all "overdue" and predicted completions do not all collapse onto today.
    ``MLOPS_AS_OF`` is an ISO 8601 time (a date means its midnight UTC), or ``now`` for the wall clock.
    """
    from mlops_assets.lib.gate import data_as_of

    raw = settings.env(AS_OF_ENV, environ)
    if not raw:
        end, now = data_as_of(tasks), datetime.now(UTC)
        if now - end <= LIVE_WITHIN:
            return now, f"now: the data is live (latest change {end:%Y-%m-%d %H:%M} UTC)"
        return end, (
            f"the data's latest created/updated/resolved time ({(now - end).days} days ago; "
            f"set {AS_OF_ENV}=now to score as of today)"
        )
    if raw.lower() == "now":
        return datetime.now(UTC), f"{AS_OF_ENV}=now"
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{AS_OF_ENV}={raw!r} is not an ISO 8601 time (e.g. 2026-10-31 or 2026-10-31T18:00:00Z) "
            "nor 'now': fix or unset it"
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC), f"{AS_OF_ENV}={raw}"


# ---------------------------------------------------------------------------------------------------
# scoring


def risk_band(late_risk: float | None) -> str:
    """Low / medium / high for a probability (cut-offs :data:`MEDIUM_FROM`, :data:`HIGH_FROM`);
    :data:`NO_DEADLINE_BAND` for none (late_risk is null exactly when the task has no deadline).
    """
    if late_risk is None or math.isnan(late_risk):
        return NO_DEADLINE_BAND
    return "high" if late_risk >= HIGH_FROM else "medium" if late_risk >= MEDIUM_FROM else "low"


def _reasons(model: ServedModel, matrix: np.ndarray, num_threads: int) -> list[list[str | None]]:
    """reason_1..3 (lists) for each row of `matrix` from exact TreeSHAP contributions, in words."""
    from mlops_assets.lib import explain

    if len(matrix) == 0:
        return [[] for _ in range(N_REASONS)]
    contribs = model.contributions(matrix, num_threads)
    # the values as the model saw them: categories as positions in their training levels (NaN: missing)
    return explain.top_reasons_arrays(contribs, matrix, model.features, model.category_levels,
                                      k=N_REASONS, effects=explain.RISK_EFFECTS)  # fmt: skip


def _explained_rows(
    late_risk: np.ndarray, explain: str, max_explained: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(rows that get reasons, rows left without them because of the cap), as sorted index arrays."""
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


@dataclass
class _Scores:
    """The score columns before assembly: numpy arrays, reasons for the explained rows only."""

    has_deadline: np.ndarray
    late_risk: np.ndarray  # NaN: no deadline
    explained: np.ndarray  # rows with reasons
    reasons: list[list[str | None]]  # reason_1..3, one entry per explained row
    capped: np.ndarray  # rows at risk left without reasons by max_explained
    max_explained: int | None
    cycle_days: np.ndarray
    completion_us: np.ndarray
    overdue: np.ndarray
    unknown: dict[int, list[str]]  # row -> unknown-category messages

    def warnings(self, row: int) -> list[str]:
        """One row's warnings: no deadline, then unseen categories (score_features appends a cap note)."""
        out = [] if self.has_deadline[row] else [NO_DEADLINE]
        out += [f"{m}: scored as missing" for m in self.unknown.get(row, ())]
        return out


def _column(features: pl.DataFrame | FeatureColumns, name: str) -> np.ndarray:
    if isinstance(features, FeatureColumns):
        return features.numeric[name]
    return features.get_column(name).cast(pl.Float64).fill_null(math.nan).to_numpy()


def _created_us(features: pl.DataFrame | FeatureColumns) -> np.ndarray:
    if isinstance(features, FeatureColumns):
        return features.created_us
    return features.get_column("created_at").dt.epoch("us").to_numpy()


def _score_columns(
    features: pl.DataFrame | FeatureColumns,
    late_model: ServedModel,
    cycle_model: ServedModel,
    now: datetime,
    num_threads: int,
    explain: str,
    max_explained: int | None,
) -> _Scores:
    """Everything a scored row holds, as arrays (the frame and the online dicts are built from it)."""
    from concurrent.futures import ThreadPoolExecutor

    n = features.height
    has_deadline = np.nan_to_num(_column(features, "has_deadline"), nan=0.0) > 0
    late_x = late_model.matrix(features)
    same_matrix = (
        cycle_model.features == late_model.features
        and cycle_model.category_levels == late_model.category_levels
    )
    cycle_x = late_x if same_matrix else cycle_model.matrix(features)
    # many rows: cycle_time (compiled code, no GIL) runs beside the late_risk work, whose sentences are
    # single-threaded Python/numpy; the numbers do not depend on it
    with ThreadPoolExecutor(1) if n >= _OVERLAP_ROWS else contextlib.nullcontext() as pool:
        cycle_future = pool.submit(cycle_model.predict, cycle_x, num_threads) if pool is not None else None
        late_risk = np.full(n, np.nan)
        if has_deadline.any():
            late_risk[has_deadline] = late_model.predict(late_x[has_deadline], num_threads)
        explained, capped = _explained_rows(late_risk, explain, max_explained)
        reasons = _reasons(late_model, late_x[explained], num_threads)
        cycle_days = (
            cycle_future.result() if cycle_future is not None else cycle_model.predict(cycle_x, num_threads)
        )

    unknown: dict[int, list[str]] = {}
    for source in (
        late_model.unknown_categories(features, has_deadline),
        cycle_model.unknown_categories(features),
    ):
        for row, messages in source.items():
            unknown.setdefault(row, []).extend(messages)
    now_us = history_index.epoch_us(now)
    due_us = _created_us(features) + np.rint(cycle_days * _US_PER_DAY).astype(np.int64)
    return _Scores(has_deadline, late_risk, explained, reasons, capped, max_explained, cycle_days,
                   np.maximum(due_us, now_us), due_us < now_us, unknown)  # fmt: skip


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
    reasons (module docstring). Columnar: no Python object per row except the reason texts.
    """
    now = _aware_now(now)
    scores = _score_columns(features, late_model, cycle_model, now, num_threads, explain, max_explained)
    n = features.height
    task_id = (
        pl.Series("task_id", features.task_id, dtype=pl.String)
        if isinstance(features, FeatureColumns)
        else features.get_column("task_id").cast(pl.String).alias("task_id")
    )
    reasons = []
    for i, column in enumerate(scores.reasons):
        series = pl.repeat(None, n, dtype=pl.String, eager=True).alias(f"reason_{i + 1}")
        reasons.append(series.scatter(scores.explained, column) if len(scores.explained) else series)
    risk = pl.col("late_risk")
    frame = pl.DataFrame(
        [
            task_id,
            pl.Series("late_risk", scores.late_risk, dtype=pl.Float64).fill_nan(None),
            *reasons,
            pl.Series("predicted_cycle_days", scores.cycle_days, dtype=pl.Float64),
            pl.Series("predicted_completion_at", scores.completion_us, dtype=pl.Int64),
            pl.Series("completion_overdue", scores.overdue, dtype=pl.Boolean),
            pl.Series("_deadline", scores.has_deadline, dtype=pl.Boolean),
        ]
    ).with_columns(
        pl.when(risk >= HIGH_FROM).then(pl.lit("high")).when(risk >= MEDIUM_FROM).then(pl.lit("medium"))
        .when(risk.is_not_null()).then(pl.lit("low")).otherwise(pl.lit(NO_DEADLINE_BAND)).alias("risk_band"),
        pl.when("_deadline").then(pl.lit([], pl.List(pl.String))).otherwise(pl.lit([NO_DEADLINE], pl.List(pl.String)))
        .alias("warnings"),
        pl.col("predicted_completion_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit(late_model.version, pl.String).alias("late_risk_version"),
        pl.lit(cycle_model.version, pl.String).alias("cycle_time_version"),
        pl.lit(now, features_lib.UTC_DATETIME).alias("scored_at"),
    )  # fmt: skip
    extra: dict[int, list[str]] = {row: scores.warnings(row) for row in scores.unknown}
    if len(scores.capped):
        note = f"{REASONS_CAPPED} (max_explained={scores.max_explained})"
        for row in scores.capped.tolist():
            extra[row] = [*extra.get(row, scores.warnings(row)), note]
    if extra:  # the few rows with more than the no-deadline note: their full lists replace the column's
        position = np.full(n, -1, dtype=np.int64)
        position[np.fromiter(extra, dtype=np.int64, count=len(extra))] = np.arange(len(extra))
        lists = pl.Series(list(extra.values()), dtype=pl.List(pl.String)).gather(np.maximum(position, 0))
        frame = frame.with_columns(
            pl.when(pl.Series(position >= 0)).then(lists).otherwise(pl.col("warnings")).alias("warnings")
        )
    return frame.select(pl.col(c).cast(t) for c, t in SCORE_SCHEMA.items()), scores.unknown


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
    scores = _score_columns(cols, late_model, cycle_model, now, num_threads, "all", None)
    versions = {"late_risk_version": late_model.version, "cycle_time_version": cycle_model.version}
    reasons: dict[int, tuple[str | None, ...]] = dict(
        zip(scores.explained.tolist(), zip(*scores.reasons, strict=True), strict=True)
    )
    rows = []
    for i, (risk, cycle_days, completion_us, overdue) in enumerate(zip(
        scores.late_risk.tolist(), scores.cycle_days.tolist(), scores.completion_us.tolist(),
        scores.overdue.tolist(), strict=True,
    )):  # fmt: skip
        texts = reasons.get(i, (None,) * N_REASONS)
        rows.append({
            "task_id": cols.task_id[i],
            "late_risk": None if math.isnan(risk) else risk,
            "risk_band": risk_band(risk),
            **{f"reason_{p + 1}": texts[p] for p in range(N_REASONS)},
            "predicted_cycle_days": cycle_days,
            "predicted_completion_at": history_index.from_epoch_us(completion_us),
            "completion_overdue": overdue,
            "warnings": scores.warnings(i),
            **versions,
            "scored_at": now,
        })  # fmt: skip
    return rows, scores.unknown


def score_tasks(
    tasks: pl.DataFrame,
    late_model: ServedModel,
    cycle_model: ServedModel,
    history: features_lib.History,
    now: datetime,
    *,
    events: pl.DataFrame | None = None,
    num_threads: int = 1,
    explain: str = "all",
    max_explained: int | None = None,
) -> pl.DataFrame:
    """One scored row per task (same order), columns :data:`SCORE_COLUMNS`; see the module docstring.

    `tasks` is clean.tasks-shaped or a records_to_frame() frame; features are built **as of `now`**
    (each task's age, status, reassignments, deadline moves ... from `events`, clean.task_events rows;
    None: the snapshot's own, if any) from `history` (``History.from_tasks(clean.tasks)`` or
    :func:`warehouse_history`).
    """
    feature_frame = features_lib.build_features(tasks, history, events, at=_aware_now(now))
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
    events: pl.DataFrame | None = None,
    num_threads: int | None = None,
    explain: str = "all",
    max_explained: int | None = None,
) -> pl.DataFrame:
    """The batch table: every open task of clean.tasks scored as of `now`, history from all of clean.tasks,
    each task's state from `events` (clean.task_events).

    Every task with a deadline gets its three reasons by default (module docstring for `explain` and
    `max_explained`). `num_threads` None: every core (a batch run has the machine to itself).
    """
    history = history if history is not None else features_lib.History.from_tasks(tasks)
    threads = num_threads if num_threads is not None else (os.cpu_count() or 1)
    return score_tasks(open_tasks(tasks), late_model, cycle_model, history, now, events=events, num_threads=threads,
                       explain=explain, max_explained=max_explained)  # fmt: skip


def task_records(tasks: pl.DataFrame) -> list[dict[str, Any]]:
    """clean.tasks rows as an online client sends them: the input fields only, ISO 8601 UTC times, no nulls.

    The wire format is :func:`features.wire_frame`'s; here counts become ints and null fields are left out.
    """
    frame = features_lib.wire_frame(tasks)
    frame = frame.with_columns(
        pl.col(name).cast(pl.Int64) for name in frame.columns if features_lib.INPUT_COLUMNS[name] == pl.Int64
    )
    return [{k: v for k, v in row.items() if v is not None} for row in frame.iter_rows(named=True)]
