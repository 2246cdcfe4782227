"""Leakage-safe features for the two task models: ``late_risk`` (binary) and ``cycle_time`` (regression).

One code path serves training (all tasks, at several prediction times each), batch scoring (open tasks
as of now, history = all tasks) and online serving (raw records through :func:`records_to_frame`,
history from a pickled :class:`History`)::

    features = build_features(targets, History.from_tasks(tasks), events=clean_task_events, at=now)

Every feature of a task is computed AS OF a prediction time ``t`` (``at``, else the targets'
``predicted_at`` column, else the task's ``created_at``; never before ``created_at``) from what was known
then, reading ``clean.task_events`` strictly before ``t`` (:mod:`asof`):

* **The task's state at t**: days since creation (``age_days``) and to the deadline
  (``days_to_deadline``), status stage and days in it, reassignments, priority changes, deadline
  moves (and by how many days), reopenings and comments so far, whether an assignee is set. Priority,
  assignee and due date take their values at ``t`` from their change events (:mod:`asof` has the rules).

* **Task attributes** (source, project, type, priority, story points, estimate, title and description
  length, labels, deadline). clean.tasks holds their *final* values; edits after creation (priority
  raised on escalation, points set at sprint planning, labels added, a deadline moved) cannot be undone
  without field-level history, and an online client sends the value at request time. That is a known,
  bounded train/serve skew, not leakage of the outcome; columns that only exist *because* work happened
  (comments, links, time spent, status) are excluded, see :data:`EXCLUDED_FEATURES`.
* **History features** per project and per assignee, from a :class:`History` snapshot, taken through
  strict as-of joins (events at exactly ``created_at`` are not "before" it):

  - *resolution* of a task happens at ``resolved_at`` (clipped to ``created_at`` if a source reports it
    earlier); ``*_median_cycle_days`` / ``*_n_resolved`` are over tasks resolved strictly before.
  - *lateness* of a task with a deadline is known at its resolution when it was resolved on time, or at
    the moment it became overdue (end of its deadline's UTC date, or its creation if it was created
    overdue) when it was not: an open task past its deadline is late whatever happens to it later.
    ``*_late_rate`` / ``*_n_outcomes`` are over outcomes known strictly before. An open task whose
    deadline has not passed has no outcome yet. Tasks without a deadline have no lateness outcome.
  - *open workload* = tasks created strictly before and not resolved strictly before.

  The assignee is the one at ``t`` (from assignee events; without them the task's final ``assignee_id``);
  the history tables count every task under its final assignee. Documented skew.

A task's own resolution and outcome happen after ``t`` for every row trained on (a task is trained on
only while open), so they never enter its own features: the tests prove it by deleting or rewriting
every event at or after ``t`` and everything a task row says of a later time.
Calendar features are in UTC (the source time zone of a team is not known).
"""

from __future__ import annotations

import difflib
import io
import math
import pickle
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib import asof, task_rules

UTC_DATETIME = pl.Datetime("us", "UTC")

PRIORITY_ORDINAL: dict[str, int] = {"lowest": 1, "low": 2, "medium": 3, "high": 4, "highest": 5}

CATEGORICAL_FEATURES: list[str] = ["source", "project", "type", "priority"]

NUMERIC_FEATURES: list[str] = [
    # attributes of the task at creation
    "priority_ordinal",
    "story_points",
    "original_estimate_h",
    "title_length",
    "description_length",
    "n_labels",
    "has_deadline",
    "deadline_horizon_days",
    # the task at the prediction time t (features of creation when t = created_at)
    "age_days",
    "days_to_deadline",
    "has_assignee",
    *asof.STATE_FEATURES,
    # calendar features, in UTC
    "created_weekday",
    "created_hour",
    "created_month",
    "created_day_of_year",
    # history of the project, as of created_at
    "project_late_rate",
    "project_n_outcomes",
    "project_median_cycle_days",
    "project_n_resolved",
    "project_open_tasks",
    # history of the assignee, as of created_at; null without an assignee
    "assignee_late_rate",
    "assignee_n_outcomes",
    "assignee_median_cycle_days",
    "assignee_n_resolved",
    "assignee_open_tasks",
]

FEATURE_COLUMNS: list[str] = NUMERIC_FEATURES + CATEGORICAL_FEATURES

# What build_features returns: identifiers first, then the model inputs.
OUTPUT_COLUMNS: list[str] = ["task_id", "created_at", "predicted_at", *FEATURE_COLUMNS]

EXCLUDED_FEATURES: dict[str, str] = {
    "task_id": "an identifier: carries no signal that generalizes to new tasks",
    "key": "an identifier: carries no signal that generalizes to new tasks",
    "assignee_id": "a high-cardinality pseudonymous id: used only through as-of assignee history features",
    "reporter_id": "a high-cardinality pseudonymous id that would memorize people, not generalize",
    "title": "raw text: only its length is used (title_length)",
    "labels": "raw comma-joined names: only their count is used (n_labels)",
    "created_at": "a timestamp: used through calendar and history features, never raw",
    "due_at": "folded into deadline_at (the due date, else the release/milestone date)",
    "deadline_at": "used relative to creation (deadline_horizon_days, has_deadline), never raw",
    "updated_at": "changes after creation, up to the latest edit: unknown at prediction time",
    "resolved_at": "the outcome itself (cycle_time and lateness are computed from it)",
    "status": "the final status: the status at prediction time comes from status events (status_stage)",
    "status_category": "the final status: the status at prediction time comes from status events (status_stage)",
    "time_spent_h": "logged while the task is worked on, after creation: unknown at prediction time",
    "n_comments": "the final count: comments before prediction time come from events (n_comments_so_far)",
    "n_links": "links are mostly added while the task is worked on: unknown at prediction time",
    "n_subtasks": "subtasks are mostly split off while the task is worked on: unknown at prediction time",
    "is_late": "the late_risk label",
    "cycle_time_days": "the cycle_time label",
    "priority_ordinal": "recomputed from priority so that online records and clean.tasks agree",
    "record_hash": "lineage metadata, not a property of the task",
    "source_file": "lineage metadata, not a property of the task",
    "ingested_at": "lineage metadata, not a property of the task",
}

# What a raw task record must / may carry for scoring. Timestamps arrive as ISO 8601 strings with a
# UTC offset (or aware datetimes); due_at/deadline_at may also be plain dates (midnight UTC).
REQUIRED_INPUT_COLUMNS: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "project": pl.String(),
    "created_at": UTC_DATETIME,
}
OPTIONAL_INPUT_COLUMNS: dict[str, pl.DataType] = {
    "source": pl.String(),
    "type": pl.String(),
    "priority": pl.String(),
    "assignee_id": pl.String(),
    "due_at": UTC_DATETIME,
    "deadline_at": UTC_DATETIME,
    "story_points": pl.Float64(),
    "original_estimate_h": pl.Float64(),
    "title": pl.String(),
    "description_length": pl.Int64(),
    "n_labels": pl.Int64(),
    "labels": pl.String(),
}
INPUT_COLUMNS: dict[str, pl.DataType] = {**REQUIRED_INPUT_COLUMNS, **OPTIONAL_INPUT_COLUMNS}

# History needs resolution times on top of the scoring inputs.
HISTORY_COLUMNS: dict[str, pl.DataType] = {**INPUT_COLUMNS, "resolved_at": UTC_DATETIME}

_SECONDS_PER_DAY = 86_400.0


# ---------------------------------------------------------------------------------------------------
# typing and normalization of task frames


def _utc_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """An expression casting a date/datetime column to Datetime(us, UTC); naive times are taken as UTC."""
    col = pl.col(name)
    if dtype == pl.Null:
        return col.cast(UTC_DATETIME)
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col.dt.convert_time_zone("UTC")
        return col.dt.cast_time_unit("us")
    raise ValueError(
        f"column {name!r} has type {dtype}, expected a date or datetime: parse raw records with "
        "records_to_frame() before building features"
    )


def _typed(frame: pl.DataFrame, columns: dict[str, pl.DataType], what: str) -> pl.DataFrame:
    """The frame with `columns` present (absent optional ones as typed nulls) and cast to their types."""
    missing = [c for c in REQUIRED_INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks required column(s) {missing}; it has {sorted(frame.columns)}")
    exprs = []
    for name, dtype in columns.items():
        if name not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif dtype == UTC_DATETIME:
            exprs.append(_utc_expr(name, frame.schema[name]).alias(name))
        else:
            exprs.append(pl.col(name).cast(dtype, strict=True).alias(name))
    typed = frame.select(exprs)
    bad = typed.filter(
        pl.col("task_id").is_null() | pl.col("project").is_null() | pl.col("created_at").is_null()
    )
    if bad.height:
        raise ValueError(
            f"{what} has {bad.height} row(s) without task_id, project or created_at "
            f"(e.g. task_id={bad['task_id'][0]!r}): every task needs all three"
        )
    return typed


def _normalized_category(name: str) -> pl.Expr:
    """Category values as features see them: trimmed; type/priority/source lower-cased; blank -> null."""
    col = pl.col(name).str.strip_chars()
    if name != "project":
        col = col.str.to_lowercase()
    return pl.when(col.str.len_chars() > 0).then(col).otherwise(None).alias(name)


def _normalize_categories(frame: pl.DataFrame) -> pl.DataFrame:
    """_normalized_category applied to the distinct values only (few), then mapped back (fast)."""
    out = []
    for name in CATEGORICAL_FEATURES:
        distinct = frame.select(pl.col(name).unique().drop_nulls())
        mapping = distinct.select(pl.col(name).alias("raw"), _normalized_category(name))
        out.append(
            pl.col(name).replace_strict(mapping["raw"], mapping[name], default=None, return_dtype=pl.String)
        )
    return frame.with_columns(out)


def _effective_deadline() -> pl.Expr:
    return pl.coalesce(pl.col("deadline_at"), pl.col("due_at"))


def overdue_at(deadline: pl.Expr) -> pl.Expr:
    """When a task with this deadline becomes late: the end of the deadline's UTC date.

    "Late" = resolved after the deadline *date* (a Jira due date is a date; resolving on that day is on
    time). Keep this in step with clean.tasks.is_late.
    """
    return deadline.dt.truncate("1d") + pl.duration(days=1)


def _default_as_of(tasks: pl.DataFrame) -> datetime | None:
    latest = tasks.select(pl.max_horizontal(pl.col("created_at").max(), pl.col("resolved_at").max())).item()
    return latest


def _resolution_time() -> pl.Expr:
    # A source that reports resolution before creation is taken as resolved at creation (cycle 0).
    return pl.max_horizontal(pl.col("resolved_at"), pl.col("created_at"))


def _as_of_tasks(tasks: pl.DataFrame, as_of: datetime | None) -> tuple[pl.DataFrame, datetime | None]:
    """Typed tasks as the warehouse knew them at `as_of`: later tasks dropped, later resolutions cleared."""
    typed = _typed(tasks, HISTORY_COLUMNS, "tasks")
    if as_of is None:
        as_of = _default_as_of(typed)
    else:
        as_of = _aware(as_of, "as_of")
    if as_of is None:  # no tasks at all
        return typed, None
    typed = typed.filter(pl.col("created_at") <= as_of).with_columns(
        pl.when(pl.col("resolved_at") <= as_of).then(_resolution_time()).otherwise(None).alias("resolved_at")
    )
    return typed, as_of


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name}={value.isoformat()} has no time zone: pass an aware UTC datetime")
    return value.astimezone(UTC)


# ---------------------------------------------------------------------------------------------------
# labels (same definitions the history features use)


def task_labels(tasks: pl.DataFrame, as_of: datetime | None = None) -> pl.DataFrame:
    """Labels as known at `as_of` (default: latest creation/resolution in `tasks`), one row per task.

    Columns: task_id, is_late (null without a deadline, or while open before the deadline passes: such
    a task's outcome is not known yet and must not be trained on as "on time"), late_known_at,
    cycle_time_days (null while unresolved). Tasks created after `as_of` are dropped.
    """
    typed, as_of = _as_of_tasks(tasks, as_of)
    return _labels(typed, as_of)


def _labels(typed: pl.DataFrame, as_of: datetime | None) -> pl.DataFrame:
    deadline = _effective_deadline()
    due_end = overdue_at(deadline)
    resolved = pl.col("resolved_at")
    on_time = resolved.is_not_null() & (resolved < due_end)
    became_late = pl.max_horizontal(due_end, pl.col("created_at"))
    known = deadline.is_not_null() & (on_time | (became_late <= pl.lit(as_of, dtype=UTC_DATETIME)))
    return typed.select(
        "task_id",
        pl.when(known).then(~on_time).otherwise(None).alias("is_late"),
        pl.when(known).then(pl.when(on_time).then(resolved).otherwise(became_late)).alias("late_known_at"),
        ((resolved - pl.col("created_at")).dt.total_microseconds() / 1e6 / _SECONDS_PER_DAY).alias(
            "cycle_time_days"
        ),
    )


# ---------------------------------------------------------------------------------------------------
# history snapshot

_STATS_SCHEMA: dict[str, pl.DataType] = {
    "code": pl.UInt32(),
    "t": UTC_DATETIME,
    "n_created": pl.Int32(),
    "n_resolved": pl.Int32(),
    "median_cycle_days": pl.Float64(),
    "n_outcomes": pl.Int32(),
    "n_late": pl.Int32(),
}


def _codes(values: pl.Expr, keys: pl.Series) -> pl.Expr:
    """Each value's position in `keys` as UInt32 (null when absent): integer keys make joins cheap."""
    return values.cast(pl.Enum(keys.to_list()), strict=False).to_physical().cast(pl.UInt32)


@dataclass(frozen=True)
class KeyHistory:
    """Cumulative stats for one grouping (project or assignee).

    ``keys`` are the group values; ``stats`` has one row per event, sorted by time t, with ``code``
    (the key's position in ``keys``) and the key's state after that event. Several events of a key at
    one time are several rows; an as-of join takes the last one, the state after all of them.
    """

    keys: pl.Series
    stats: pl.DataFrame

    @classmethod
    def from_events(cls, events: pl.DataFrame, keys: pl.Series) -> KeyHistory:
        """Per-key stats from events sorted by time: code (position in `keys`, null: no key), t, d_*."""
        coded = events.filter(pl.col("code").is_not_null())
        # Expanding median per key over resolutions only (a rolling window as long as the frame never
        # drops a value), scattered back to their rows and carried forward to the key's later events.
        resolved_rows = (coded["d_resolved"] == 1).arg_true()
        median = pl.repeat(None, coded.height, dtype=pl.Float64, eager=True).alias("median_cycle_days")
        if resolved_rows.len():
            window = pl.col("cycle_days").rolling_median(window_size=resolved_rows.len(), min_samples=1)
            median = median.scatter(
                resolved_rows, coded[resolved_rows].select(window.over("code")).to_series()
            )
        # Window expressions keep the time order within each key, so cumulative sums run in time.
        stats = (
            coded.with_columns(median)
            .with_columns(
                pl.col("d_created").cum_sum().over("code").alias("n_created"),
                pl.col("d_resolved").cum_sum().over("code").alias("n_resolved"),
                pl.col("median_cycle_days").forward_fill().over("code"),
                pl.col("d_outcome").cum_sum().over("code").alias("n_outcomes"),
                pl.col("d_late").cum_sum().over("code").alias("n_late"),
            )
            .select(list(_STATS_SCHEMA))
            .cast(_STATS_SCHEMA)
        )
        return cls(keys=keys, stats=stats)

    def __getstate__(self) -> dict[str, Any]:
        # Arrow IPC with zstd: about a third of a plain pickle (the snapshot ships inside the model).
        buffer = io.BytesIO()
        self.stats.write_ipc(buffer, compression="zstd")
        return {"keys": self.keys.to_list(), "stats_ipc": buffer.getvalue()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "keys", pl.Series("key", state["keys"], dtype=pl.String))
        object.__setattr__(self, "stats", pl.read_ipc(io.BytesIO(state["stats_ipc"])))

    def codes(self, values: pl.Expr) -> pl.Expr:
        """The code of each value (null for a key without history)."""
        return _codes(values, self.keys)


@dataclass(frozen=True)
class History:
    """What history features need, as cumulative per-project and per-assignee tables (picklable).

    Each table holds, per key and event time t, the counts and median after all events at t:
    creations, resolutions (with the expanding median cycle time) and lateness outcomes. Features for a
    task created at T read the last row with t < T. ``as_of`` is the snapshot time: nothing after it
    is in the tables, so a task created later sees the state at ``as_of``.
    """

    as_of: datetime | None
    n_tasks: int
    project: KeyHistory
    assignee: KeyHistory
    # events of the tasks that may be scored (open tasks), for build_features without `events`: the
    # serving snapshot has them (scoring.warehouse_history); a model artifact's snapshot does not
    events: asof.TaskEvents | None = None

    @classmethod
    def from_tasks(cls, tasks: pl.DataFrame, as_of: datetime | None = None) -> History:
        """A snapshot of `tasks` (clean.tasks shape) as known at `as_of` (default: latest created/resolved)."""
        typed, as_of = _as_of_tasks(tasks, as_of)
        n_dupes = typed.height - typed["task_id"].n_unique()
        if n_dupes:
            dupes = (
                typed.filter(pl.col("task_id").is_duplicated())["task_id"].unique().sort().head(3).to_list()
            )
            raise ValueError(
                f"tasks has {n_dupes} repeated task_id row(s) (e.g. {dupes}): History needs one row per task"
            )
        project_keys = typed["project"].unique().drop_nulls().sort()
        assignee_keys = typed["assignee_id"].unique().drop_nulls().sort()
        base = pl.concat(
            [
                typed.select(
                    _codes(pl.col("project"), project_keys).alias("project"),
                    _codes(pl.col("assignee_id"), assignee_keys).alias("assignee_id"),
                    "created_at",
                    "resolved_at",
                ),
                _labels(typed, as_of).drop("task_id"),
            ],
            how="horizontal",
        )
        one, zero, no_cycle = pl.lit(1, pl.Int32), pl.lit(0, pl.Int32), pl.lit(None, pl.Float64)
        groups = ("project", "assignee_id")
        created = base.select(
            *groups, pl.col("created_at").alias("t"), one.alias("d_created"), zero.alias("d_resolved"),
            no_cycle.alias("cycle_days"), zero.alias("d_outcome"), zero.alias("d_late"),
        )  # fmt: skip
        resolved = base.filter(pl.col("resolved_at").is_not_null()).select(
            *groups, pl.col("resolved_at").alias("t"), zero.alias("d_created"), one.alias("d_resolved"),
            pl.col("cycle_time_days").alias("cycle_days"), zero.alias("d_outcome"), zero.alias("d_late"),
        )  # fmt: skip
        outcomes = base.filter(pl.col("is_late").is_not_null()).select(
            *groups, pl.col("late_known_at").alias("t"), zero.alias("d_created"), zero.alias("d_resolved"),
            no_cycle.alias("cycle_days"), one.alias("d_outcome"), pl.col("is_late").cast(pl.Int32).alias("d_late"),
        )  # fmt: skip
        events = pl.concat([created, resolved, outcomes]).sort("t")
        return cls(
            as_of=as_of,
            n_tasks=typed.height,
            project=KeyHistory.from_events(
                events.drop("assignee_id").rename({"project": "code"}), project_keys
            ),
            assignee=KeyHistory.from_events(
                events.drop("project").rename({"assignee_id": "code"}), assignee_keys
            ),
        )

    def to_bytes(self) -> bytes:
        """The snapshot pickled (for a model artifact or a serving process)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_bytes(data: bytes) -> History:
        history = pickle.loads(data)
        if not isinstance(history, History):
            raise TypeError(f"expected a pickled History, got {type(history).__name__}")
        return history


def _join_history(left: pl.DataFrame, history: KeyHistory, key: str, prefix: str) -> pl.DataFrame:
    """Attach the state of `history` strictly before each row's created_at (left sorted by created_at)."""
    left = left.with_columns(history.codes(pl.col(key)).alias("code"))
    stats = history.stats
    if left.height * 10 < stats.height:  # few targets (online): only their keys' rows take part
        stats = stats.filter(pl.col("code").is_in(left["code"].drop_nulls().unique().implode()))
    joined = left.join_asof(
        stats.rename({"t": "_t"}),
        left_on="created_at",
        right_on="_t",
        by="code",
        strategy="backward",
        allow_exact_matches=False,  # an event at exactly created_at is not "before" the task
        check_sortedness=False,  # both sides are sorted by time (left here, right at build)
    )
    has_key = pl.col(key).is_not_null()
    count = {
        s: pl.when(has_key).then(pl.col(s).fill_null(0))
        for s in ("n_created", "n_resolved", "n_outcomes", "n_late")
    }
    return joined.with_columns(
        (count["n_late"] / count["n_outcomes"]).fill_nan(None).alias(f"{prefix}_late_rate"),
        count["n_outcomes"].alias(f"{prefix}_n_outcomes"),
        pl.col("median_cycle_days").alias(f"{prefix}_median_cycle_days"),
        count["n_resolved"].alias(f"{prefix}_n_resolved"),
        (count["n_created"] - count["n_resolved"]).alias(f"{prefix}_open_tasks"),
    ).drop([c for c in _STATS_SCHEMA if c != "t"], "_t")


# ---------------------------------------------------------------------------------------------------
# features


def _prediction_time(frame: pl.DataFrame, targets: pl.DataFrame, at: datetime | None) -> pl.Series:
    """Each row's prediction time t: `at`, else the targets' predicted_at, else created_at; never before creation."""
    if at is not None:
        t = pl.lit(_aware(at, "at"), dtype=UTC_DATETIME)
    elif "predicted_at" in targets.columns:
        t = pl.Series("t", targets.get_column("predicted_at")).cast(UTC_DATETIME)
        if t.null_count():
            raise ValueError(
                f"targets have {t.null_count()} row(s) with a null predicted_at: give every row a time"
            )
        t = pl.lit(t)
    else:
        t = pl.col("created_at")
    return frame.select(pl.max_horizontal(t, pl.col("created_at")).alias("predicted_at")).to_series()


def _task_events(
    events: asof.TaskEvents | pl.DataFrame | None, history: History, task_ids: pl.Series
) -> asof.TaskEvents:
    if events is None:
        events = getattr(history, "events", None)  # snapshots pickled before events existed lack the field
    if events is None:
        return asof.TaskEvents.empty()
    if isinstance(events, pl.DataFrame):
        return asof.TaskEvents.from_frame(events, task_ids)
    return events


def carried_events(records: pl.DataFrame, events: asof.TaskEvents) -> asof.TaskEvents:
    """`events` with the histories records carry (their ``events`` column, not null) in place of theirs."""
    if records.get_column(EVENTS_FIELD).null_count() == records.height:  # the usual case: no polars work
        return events
    carried = records.select("task_id", EVENTS_FIELD).filter(pl.col(EVENTS_FIELD).is_not_null())
    rows = carried.explode(EVENTS_FIELD).unnest(EVENTS_FIELD).filter(pl.col("changed_at").is_not_null())
    own = asof.TaskEvents.from_frame(rows)
    return asof.TaskEvents({**events.by_task, **{t: own.of(t) for t in carried["task_id"]}})


def _state_at(typed: pl.DataFrame, events: asof.TaskEvents) -> pl.DataFrame:
    """The task fields at t (priority, assignee, due and deadline) replaced from events, plus STATE_FEATURES."""
    t_us = typed.get_column("predicted_at").dt.epoch("us")
    created_us = typed.get_column("created_at").dt.epoch("us")
    n = typed.height
    # numpy's int64 / int division rounds as asof's Python division does: equal days either way
    age = np.maximum((t_us - created_us).to_numpy(), 0) / asof.US_PER_DAY
    # a task without events: to-do since creation, nothing counted (asof.initial_state, vectorized)
    state = {name: np.zeros(n) for name in asof.STATE_FEATURES}
    state["days_in_status"] = age.copy()
    overrides: dict[str, list[Any]] = {"priority": [], "assignee_id": [], "due_at": []}
    rows: dict[str, list[int]] = {"priority": [], "assignee_id": [], "due_at": []}
    if len(events):
        task_ids = typed.get_column("task_id").to_list()
        with_events = [i for i, task_id in enumerate(task_ids) if task_id in events.by_task]
        t_list, created_list = t_us.to_list(), created_us.to_list()
        for i in with_events:
            st = asof.task_state(events.by_task[task_ids[i]], t_list[i], created_list[i])
            for name, value in zip(asof.STATE_FEATURES, st.features, strict=True):
                state[name][i] = value
            for name, has, value in (("priority", st.has_priority, st.priority),
                                     ("assignee_id", st.has_assignee, st.assignee_id),
                                     ("due_at", st.has_due, st.due_us)):  # fmt: skip
                if has:
                    rows[name].append(i)
                    overrides[name].append(value)
    out = typed.with_columns(pl.Series(name, values, dtype=pl.Float64) for name, values in state.items())
    final_due = pl.col("due_at")
    for name in ("priority", "assignee_id", "due_at"):
        if not rows[name]:
            continue
        values = pl.Series(overrides[name], dtype=pl.Int64 if name == "due_at" else pl.String)
        if name == "due_at":
            values = values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        mask = np.zeros(n, dtype=bool)
        mask[rows[name]] = True
        full = pl.repeat(None, n, dtype=out.schema[name], eager=True).scatter(rows[name], values)
        if name == "due_at":  # a deadline that is the due date moves with it; a release date does not
            follows = pl.col("deadline_at").is_null() | (pl.col("deadline_at") == final_due)
            out = out.with_columns(
                pl.when(pl.Series(mask) & follows)
                .then(full)
                .otherwise(pl.col("deadline_at"))
                .alias("deadline_at")
            )
        out = out.with_columns(pl.when(pl.Series(mask)).then(full).otherwise(pl.col(name)).alias(name))
    return out


def _days_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return pl.struct((later - earlier).dt.total_microseconds().alias("us")).map_batches(
        lambda s: pl.Series(s.struct.field("us").to_numpy() / asof.US_PER_DAY, dtype=pl.Float64)
    )


def build_features(
    targets: pl.DataFrame,
    history: History,
    events: asof.TaskEvents | pl.DataFrame | None = None,
    at: datetime | None = None,
) -> pl.DataFrame:
    """One feature row per target row (same order): task_id, created_at, predicted_at and
    FEATURE_COLUMNS, as of each row's prediction time t (module docstring). `targets` is
    clean.tasks-shaped or a records_to_frame() frame (an optional ``predicted_at`` column gives each
    row its t); extra columns are ignored. `events`: clean.task_events rows or a :class:`asof.TaskEvents`
    (None: the history snapshot's, if it has them). Categorical features stay pl.String (training casts them).
    """
    typed = _typed(targets, INPUT_COLUMNS, "targets")
    typed = typed.with_columns(_prediction_time(typed, targets, at))
    task_events = _task_events(events, history, typed.get_column("task_id"))
    if EVENTS_FIELD in targets.columns:  # records that carry their history (records_to_frame)
        task_events = carried_events(targets, task_events)
    typed = _state_at(typed, task_events)
    typed = _normalize_categories(typed).with_row_index("_row")
    deadline = _effective_deadline()
    t = pl.col("predicted_at")
    labels_from_text = pl.col("labels").str.count_matches(r"[^,\s][^,]*")  # non-blank comma-separated names
    base = typed.select(
        "_row",
        "task_id",
        "created_at",
        "predicted_at",
        "assignee_id",
        *CATEGORICAL_FEATURES,
        pl.col("story_points"),
        pl.col("original_estimate_h"),
        pl.col("title").str.len_chars().alias("title_length"),
        pl.col("description_length"),
        pl.coalesce(pl.col("n_labels"), labels_from_text).alias("n_labels"),
        deadline.is_not_null().alias("has_deadline"),
        ((deadline - pl.col("created_at")).dt.total_microseconds() / 1e6 / _SECONDS_PER_DAY).alias(
            "deadline_horizon_days"
        ),
        # exact microseconds, one division (as history_index does): the same days for one row or a million
        _days_between(t, pl.col("created_at")).alias("age_days"),
        _days_between(deadline, t).alias("days_to_deadline"),
        pl.col("assignee_id").is_not_null().alias("has_assignee"),
        *asof.STATE_FEATURES,
        pl.col("created_at").dt.weekday().alias("created_weekday"),
        pl.col("created_at").dt.hour().alias("created_hour"),
        pl.col("created_at").dt.month().alias("created_month"),
        pl.col("created_at").dt.ordinal_day().alias("created_day_of_year"),
    ).with_columns(
        pl.col("priority")
        .replace_strict(PRIORITY_ORDINAL, default=None, return_dtype=pl.Int64)
        .alias("priority_ordinal")
    )

    # History joins need time order (of t); only the narrow key columns travel through the sort and back.
    keys = base.select("_row", pl.col("predicted_at").alias("created_at"), "project", "assignee_id")
    already_sorted = keys["created_at"].is_sorted()
    if not already_sorted:
        keys = keys.sort("created_at", "_row")
    history_part = _join_history(keys, history.project, "project", "project")
    history_part = _join_history(history_part, history.assignee, "assignee_id", "assignee")
    if not already_sorted:
        history_part = history_part.sort("_row")
    history_columns = [c for c in NUMERIC_FEATURES if c.startswith(("project_", "assignee_"))]
    return pl.concat([base, history_part.select(history_columns)], how="horizontal").select(
        pl.col("task_id"),
        pl.col("created_at"),
        pl.col("predicted_at"),
        *[pl.col(c).cast(pl.Float64) for c in NUMERIC_FEATURES],
        *[pl.col(c).cast(pl.String) for c in CATEGORICAL_FEATURES],
    )


def task_features(tasks: pl.DataFrame, events: pl.DataFrame | None = None) -> pl.DataFrame:
    """Every task as of its own creation, history from the same tasks (events: clean.task_events)."""
    return build_features(tasks, History.from_tasks(tasks), events)


def unknown_categories(frame: pl.DataFrame, known: dict[str, list[str]]) -> dict[int, list[str]]:
    """Row position -> messages for categorical values not in `known` (the model treats them as missing).

    Works on a feature frame or a records_to_frame() frame (values are normalized the same way).
    Nulls are missing, not unknown. Columns absent from `known` or from the frame are not checked.
    """
    out: dict[int, list[str]] = {}
    for column, levels in known.items():
        if column not in frame.columns:
            continue
        values = frame.select(_normalized_category(column).cast(pl.String))[column]
        bad = values.is_not_null() & ~values.is_in(pl.Series(levels, dtype=pl.String).implode())
        examples = ", ".join(levels[:8]) + (", ..." if len(levels) > 8 else "")
        for row in bad.arg_true().to_list():
            out.setdefault(row, []).append(
                f"{column} {values[row]!r} was not seen in training (treated as missing; known: {examples})"
            )
    return out


# ---------------------------------------------------------------------------------------------------
# raw records (online serving)

_NUMBER_RULES: dict[str, str] = {
    "story_points": "float",
    "original_estimate_h": "float",
    "description_length": "int",
    "n_labels": "int",
}
# Far above any real estimate, count or description; beyond it values overflow 64-bit features (1e20 chars).
_NUMBER_MAX = 1e9


def _utc_or_problem(name: str, value: Any, parsed: datetime) -> tuple[datetime | None, str | None]:
    try:
        out = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00:00-05:00: past the calendar's end once in UTC
        return None, f"{name} {value!r} falls outside years 1-9999 once converted to UTC"
    if name == "created_at":  # the rule cleaning quarantines by: what the warehouse refuses, serving refuses
        problem = task_rules.created_at_problem(out, datetime.now(UTC))
        if problem:
            return None, problem
    return out, None


def _parse_time(name: str, value: Any) -> tuple[datetime | None, str | None]:
    date_ok = name in ("due_at", "deadline_at")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return None, f"{name} {value.isoformat()!r} has no UTC offset: send an aware time"
        return _utc_or_problem(name, value, value)
    if isinstance(value, date) and date_ok:
        return datetime(value.year, value.month, value.day, tzinfo=UTC), None
    if not isinstance(value, str):
        return None, f"{name} must be an ISO 8601 string, got {type(value).__name__} {value!r}"
    text = value.strip()
    try:
        if date_ok and len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), None
        parsed = datetime.fromisoformat(text)
    except ValueError:
        shape = "'2024-05-01T09:30:00Z'" + (" or '2024-05-01'" if date_ok else "")
        return None, f"{name} {value!r} is not an ISO 8601 timestamp (e.g. {shape})"
    if parsed.tzinfo is None and len(text) == 10:
        return None, f"{name} {value!r} is a date without a time: send a timestamp with a UTC offset"
    if parsed.tzinfo is None:
        return None, f"{name} {value!r} has no UTC offset: add 'Z' or '+00:00' (a local time would shift it)"
    return _utc_or_problem(name, value, parsed)


def _parse_value(name: str, value: Any) -> tuple[Any, str | None]:
    """(typed value, None) or (None, message)."""
    dtype = INPUT_COLUMNS[name]
    if dtype == UTC_DATETIME:
        return _parse_time(name, value)
    if dtype == pl.String:
        if not isinstance(value, str):
            return None, f"{name} must be a string, got {type(value).__name__} {value!r}"
        if name in REQUIRED_INPUT_COLUMNS and not value.strip():
            return None, f"{name} is empty"
        return value, None
    kind = _NUMBER_RULES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{name} must be a number, got {type(value).__name__} {value!r}"
    if not math.isfinite(value):
        return None, f"{name} is {value!r}: send null for an unknown value"
    if value < 0:
        return None, f"{name} is {value!r}: it cannot be negative"
    if value > _NUMBER_MAX:
        return None, f"{name} is {value!r}: more than {_NUMBER_MAX:,.0f} is not a plausible value"
    if kind == "int":
        if value != int(value):
            return None, f"{name} must be a whole number, got {value!r}"
        return int(value), None
    return float(value), None


# A hostile record can carry tens of thousands of unknown keys (a 950 KB body held the event loop
# for 2.3 s suggesting a name for each): name the first few, suggest only for short names.
UNKNOWN_FIELDS_SHOWN = 10
_SUGGEST_MAX_CHARS = 64


def _unknown_field_message(names: list[str]) -> str:
    parts = []
    for name in names[:UNKNOWN_FIELDS_SHOWN]:
        shown = repr(name if len(name) <= _SUGGEST_MAX_CHARS else name[:_SUGGEST_MAX_CHARS] + "...")
        if name in EXCLUDED_FEATURES:
            parts.append(f"{shown} ({EXCLUDED_FEATURES[name]})")
            continue
        close = (
            difflib.get_close_matches(name, list(INPUT_COLUMNS), n=1)
            if len(name) <= _SUGGEST_MAX_CHARS
            else []
        )
        parts.append(shown + (f" (did you mean {close[0]!r}?)" if close else ""))
    more = f" and {len(names) - UNKNOWN_FIELDS_SHOWN:,} more" if len(names) > UNKNOWN_FIELDS_SHOWN else ""
    return f"unknown field(s) {', '.join(parts)}{more}; accepted fields: {', '.join(INPUT_COLUMNS)}, {EVENTS_FIELD}"


# An online record may carry its task's history: "events": [{"changed_at", "field", "from_value",
# "to_value"}, ...] (clean.task_events' shape). Sent (even empty), it replaces what the service holds.
EVENTS_FIELD = "events"
EVENT_FIELDS = ("status", "assignee", "priority", "duedate", "fix_version", "comment")
EVENTS_DTYPE = pl.List(pl.Struct({"changed_at": UTC_DATETIME, "field": pl.String(), "from_value": pl.String(),
                                  "to_value": pl.String()}))  # fmt: skip
MAX_EVENTS = 2_000  # far above a real task's history; a bound on the work one request can ask for


def _parse_events(value: Any, created_at: datetime | None) -> tuple[list[dict[str, Any]] | None, str | None]:
    """A record's events, typed, or (None, why not)."""
    if not isinstance(value, list):
        return None, f"events must be a list of objects, got {type(value).__name__}"
    if len(value) > MAX_EVENTS:
        return None, f"events has {len(value):,} entries: at most {MAX_EVENTS:,} are accepted"
    out = []
    for i, event in enumerate(value):
        if not isinstance(event, dict):
            return None, f"events[{i}] must be an object, got {type(event).__name__}"
        extra = sorted(set(event) - {"changed_at", "field", "from_value", "to_value"})
        if extra:
            return (
                None,
                f"events[{i}] has unknown key(s) {extra}: use changed_at, field, from_value, to_value",
            )
        if event.get("field") not in EVENT_FIELDS:
            return None, f"events[{i}].field is {event.get('field')!r}: use one of {', '.join(EVENT_FIELDS)}"
        when, problem = _parse_time("changed_at", event.get("changed_at"))
        if problem:
            return None, f"events[{i}]: {problem}"
        for key in ("from_value", "to_value"):
            if event.get(key) is not None and not isinstance(event[key], str):
                return None, f"events[{i}].{key} must be a string or null, got {type(event[key]).__name__}"
        out.append({"changed_at": when, "field": event["field"], "from_value": event.get("from_value"),
                    "to_value": event.get("to_value")})  # fmt: skip
    return out, None


def records_to_frame(records: list[dict[str, Any]]) -> tuple[pl.DataFrame, dict[int, str]]:
    """Validate raw task records (as an online client sends them) into a typed frame.

    Returns (frame of the valid records, {index of each bad record: message}). The frame has every
    INPUT_COLUMNS column (absent optional fields as null) plus ``record_index``, the record's position
    in `records`. Nothing is defaulted: a missing optional field stays null (the model treats it as
    missing). Category values are not checked here: see unknown_categories().
    """
    if not isinstance(records, list):
        raise TypeError(f"records must be a list of dicts, got {type(records).__name__}")
    rows: list[dict[str, Any]] = []
    errors: dict[int, str] = {}
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors[index] = (
                f"record is not an object of task fields: got {type(record).__name__} {record!r:.60}"
            )
            continue
        problems = []
        unknown = sorted(k for k in record if k not in INPUT_COLUMNS and k != EVENTS_FIELD)
        if unknown:
            problems.append(_unknown_field_message(unknown))
        missing = [k for k in REQUIRED_INPUT_COLUMNS if record.get(k) is None]
        if missing:
            problems.append(f"missing required field(s) {', '.join(missing)}")
        row: dict[str, Any] = {"record_index": index}
        for name in INPUT_COLUMNS:
            value = record.get(name)
            if value is None:
                row[name] = None
                continue
            row[name], problem = _parse_value(name, value)
            if problem:
                problems.append(problem)
        if record.get(EVENTS_FIELD) is not None:
            row[EVENTS_FIELD], problem = _parse_events(record[EVENTS_FIELD], row.get("created_at"))
            if problem:
                problems.append(problem)
        task_id = row.get("task_id")
        if not problems and task_id in seen:
            problems.append(f"duplicate task_id {task_id!r} (also record {seen[task_id]})")
        if problems:
            errors[index] = "; ".join(problems)
            continue
        seen[task_id] = index
        rows.append(row)
    schema = {"record_index": pl.Int64(), **INPUT_COLUMNS, EVENTS_FIELD: EVENTS_DTYPE}
    return pl.DataFrame(rows, schema=schema), errors


# How a task record's times travel (what :func:`records_to_frame` reads back): ISO 8601, UTC, microseconds.
WIRE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6f+00:00"


def wire_frame(tasks: pl.DataFrame) -> pl.DataFrame:
    """clean.tasks-shaped rows as task records travel: the INPUT_COLUMNS fields the frame has (in that
    order), every time as an ISO 8601 UTC string (:data:`WIRE_TIME_FORMAT`), other values unchanged.

    The one encoder of the wire format that :func:`records_to_frame` reads; ``scoring.task_records``
    (JSON-ready dicts) and ``pyfunc.wire_records`` (a pandas frame, MLflow's input example) only add
    their container's number types on top.
    """
    return tasks.select(
        pl.col(name).dt.convert_time_zone("UTC").dt.strftime(WIRE_TIME_FORMAT)
        if tasks.schema[name].is_temporal()
        else pl.col(name)
        for name in INPUT_COLUMNS
        if name in tasks.columns
    )
