"""A fast path to ``features.build_features`` for a handful of tasks (online scoring), same numbers.

``build_features`` answers the history features with polars as-of joins: right for many rows, but its
fixed cost (about 5-8 ms of small polars operations whatever the row count) is the whole latency
budget of one online request. :class:`HistoryIndex` holds the same :class:`features.History`
snapshot as per-key arrays sorted by time, and :func:`feature_columns` computes a task's features in
plain Python and ``np.searchsorted``::

    index = HistoryIndex.from_history(history)          # once per snapshot
    frame, errors = features.records_to_frame(records)  # the online records, typed
    columns = feature_columns(frame, index)             # == build_features(frame, history), as arrays

Same definitions as ``build_features`` (tests compare every feature of many tasks, ties at one
instant, unknown and missing projects and assignees): the state of a key strictly before the task's
``created_at`` is the last event row with ``t < created_at``; a key without history has zero counts;
no key (no assignee) gives nulls. Category normalization (trim, lower-case, blank = missing) and the
label count are done in Python for ASCII text and by the polars expressions of ``features`` for
anything else, so Unicode whitespace and case rules cannot drift apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib import asof
from mlops_assets.lib import features as features_lib

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ASCII_SPACE = " \t\n\x0b\x0c\r"  # the ASCII characters Rust (polars strip_chars) calls whitespace
_LABEL = re.compile(r"[^,\s][^,]*")  # features.build_features' label pattern (ASCII text only here)
_PER_MICROSECOND, _PER_DAY = 1 / 1e6, 1 / 86_400.0
_STATS = ("n_created", "n_resolved", "median_cycle_days", "n_outcomes", "n_late")
_HISTORY_FEATURES = ("late_rate", "n_outcomes", "median_cycle_days", "n_resolved", "open_tasks")


def epoch_us(value: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime (exact integer arithmetic)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_us(value: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True)
class KeyIndex:
    """One grouping's cumulative stats (a ``features.KeyHistory``) sorted by (key, time) as numpy arrays.

    Rows ``starts[c]:starts[c + 1]`` are key ``c``'s events in time order (several at one instant keep
    their order, so the last one is the state after all of them).
    """

    codes: dict[str, int]
    starts: np.ndarray
    t_us: np.ndarray
    stats: dict[str, np.ndarray]  # _STATS; median NaN where null

    @classmethod
    def from_key_history(cls, key_history: features_lib.KeyHistory) -> KeyIndex:
        stats = key_history.stats
        code = stats.get_column("code").to_numpy().astype(np.int64)
        order = np.argsort(code, kind="stable")  # rows are in time order: stable keeps it per key
        keys = key_history.keys.to_list()
        starts = np.searchsorted(code[order], np.arange(len(keys) + 1), side="left")
        t_us = stats.get_column("t").dt.epoch("us").to_numpy()[order]
        columns = {
            name: stats.get_column(name).cast(pl.Float64).fill_null(math.nan).to_numpy()[order]
            for name in _STATS
        }
        return cls({key: i for i, key in enumerate(keys)}, starts, np.ascontiguousarray(t_us), columns)

    def row_before(self, key: str, t_us: int) -> int:
        """Index of the key's last event strictly before t_us; -1: key unknown or nothing before."""
        code = self.codes.get(key)
        if code is None:
            return -1
        start, end = int(self.starts[code]), int(self.starts[code + 1])
        row = start + int(np.searchsorted(self.t_us[start:end], t_us, side="left")) - 1
        return row if row >= start else -1

    def features(self, key: str | None, t_us: int) -> tuple[float, ...]:
        """(late_rate, n_outcomes, median_cycle_days, n_resolved, open_tasks) as build_features gives them."""
        if key is None:
            return (math.nan,) * 5
        row = self.row_before(key, t_us)
        if row < 0:  # a key without earlier events: zero counts, no rate, no median
            return (math.nan, 0.0, math.nan, 0.0, 0.0)
        s = self.stats
        n_outcomes, n_late = s["n_outcomes"][row], s["n_late"][row]
        late_rate = n_late / n_outcomes if n_outcomes > 0 else math.nan
        return (float(late_rate), float(n_outcomes), float(s["median_cycle_days"][row]),
                float(s["n_resolved"][row]), float(s["n_created"][row] - s["n_resolved"][row]))  # fmt: skip


@dataclass(frozen=True)
class HistoryIndex:
    """A :class:`features.History` snapshot as per-key sorted arrays (build once per snapshot)."""

    history: features_lib.History
    project: KeyIndex
    assignee: KeyIndex

    @classmethod
    def from_history(cls, history: features_lib.History) -> HistoryIndex:
        return cls(
            history, KeyIndex.from_key_history(history.project), KeyIndex.from_key_history(history.assignee)
        )


@dataclass(frozen=True)
class FeatureColumns:
    """``build_features`` output as columns: numerics as float64 arrays (NaN = null), categories as lists."""

    task_id: list[str]
    created_us: np.ndarray
    numeric: dict[str, np.ndarray]
    categorical: dict[str, list[str | None]]

    @property
    def height(self) -> int:
        return len(self.task_id)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> FeatureColumns:
        """From a ``build_features`` frame."""
        return cls(
            frame.get_column("task_id").to_list(),
            frame.get_column("created_at").dt.epoch("us").to_numpy(),
            {c: frame.get_column(c).cast(pl.Float64).fill_null(math.nan).to_numpy() for c in features_lib.NUMERIC_FEATURES},
            {c: frame.get_column(c).to_list() for c in features_lib.CATEGORICAL_FEATURES},
        )  # fmt: skip

    def column(self, name: str) -> np.ndarray | list[str | None]:
        if name in self.numeric:
            return self.numeric[name]
        if name in self.categorical:
            return self.categorical[name]
        raise KeyError(f"no feature column {name!r}; features are {[*self.numeric, *self.categorical]}")


def _category(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if value.isascii():
        text = value.strip(_ASCII_SPACE)
        if name != "project":
            text = text.lower()
        return text or None
    return (
        pl.select(pl.lit(value, pl.String).alias(name)).select(features_lib._normalized_category(name)).item()
    )


def _label_count(labels: str | None) -> int | None:
    if labels is None:
        return None
    if labels.isascii():
        return len(_LABEL.findall(labels))
    return pl.select(pl.lit(labels, pl.String).str.count_matches(_LABEL.pattern)).item()


_INPUT_NAMES = tuple(features_lib.INPUT_COLUMNS)
# (columns, dtypes) of frames that passed the check: records_to_frame's frames, with and without
# record_index; polars dtype comparisons cost ~0.6 us each, so a frame of a known shape skips them
_CHECKED_SCHEMAS: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()


def _check_input_schema(records: pl.DataFrame) -> None:
    shape = (tuple(records.columns), tuple(map(repr, records.dtypes)))
    if shape in _CHECKED_SCHEMAS:
        return
    schema = records.schema  # polars builds a new Schema object on every access: once, not per column
    wrong = {
        name: str(schema[name])
        for name, dtype in features_lib.INPUT_COLUMNS.items()
        if name in schema and schema[name] != dtype
    }
    missing = [name for name in _INPUT_NAMES if name not in schema]
    if wrong or missing:
        raise ValueError(
            f"records have column(s) of another type {wrong} or lack {missing}: pass the frame of "
            "features.records_to_frame(), or use features.build_features for other frames"
        )
    if len(_CHECKED_SCHEMAS) < 64:
        _CHECKED_SCHEMAS.add(shape)


def feature_columns(
    records: pl.DataFrame,
    index: HistoryIndex,
    events: asof.TaskEvents | None = None,
    at: datetime | None = None,
) -> FeatureColumns:
    """The features of typed records (``records_to_frame`` output), as of `at` (None: each one's created_at).

    Equal to ``build_features(records, index.history, events, at)`` (tested); meant for a few rows: it
    is plain Python per row, where build_features has a fixed cost of several ms. `events` None: the
    snapshot's own (``History.events``, looked up by task_id), if it has them.
    """
    _check_input_schema(records)
    n = records.height
    # one block, one row per feature: a numpy call per feature costs more than the features of one task
    numeric = dict(zip(features_lib.NUMERIC_FEATURES, np.full((len(features_lib.NUMERIC_FEATURES), n), math.nan),
                       strict=True))  # fmt: skip
    categorical: dict[str, list[str | None]] = {
        name: [None] * n for name in features_lib.CATEGORICAL_FEATURES
    }
    created_us = np.empty(n, dtype=np.int64)
    task_ids: list[str] = []
    if events is None:
        events = getattr(index.history, "events", None) or asof.TaskEvents.empty()
    if features_lib.EVENTS_FIELD in records.columns:  # records that carry their own history
        events = features_lib.carried_events(records, events)
    at_us = None if at is None else epoch_us(at.astimezone(UTC))
    # every column as it is (record_index, events: read, never used): a select costs ~0.2 ms a call
    for i, row in enumerate(records.iter_rows(named=True)):
        task_ids.append(row["task_id"])
        created = row["created_at"]
        c_us = epoch_us(created)
        created_us[i] = c_us
        t_us = c_us if at_us is None else max(at_us, c_us)
        task_events = events.by_task.get(row["task_id"])
        if task_events:
            state = asof.task_state(task_events, t_us, c_us)
            state_values = state.features
            if state.has_priority:
                row["priority"] = state.priority
            if state.has_assignee:
                row["assignee_id"] = state.assignee_id
            if state.has_due:
                due_t = None if state.due_us is None else from_epoch_us(state.due_us)
                if row["deadline_at"] is None or row["deadline_at"] == row["due_at"]:
                    row["deadline_at"] = due_t
                row["due_at"] = due_t
        else:
            state_values = asof.initial_state(t_us, c_us)
        for name in features_lib.CATEGORICAL_FEATURES:
            categorical[name][i] = _category(name, row[name])
        values: dict[str, Any] = {
            "priority_ordinal": features_lib.PRIORITY_ORDINAL.get(categorical["priority"][i]),
            "story_points": row["story_points"],
            "original_estimate_h": row["original_estimate_h"],
            "title_length": None if row["title"] is None else len(row["title"]),
            "description_length": row["description_length"],
            "n_labels": row["n_labels"] if row["n_labels"] is not None else _label_count(row["labels"]),
            "created_weekday": created.isoweekday(),
            "created_hour": created.hour,
            "created_month": created.month,
            "created_day_of_year": created.timetuple().tm_yday,
        }
        deadline = row["deadline_at"] if row["deadline_at"] is not None else row["due_at"]
        values["has_deadline"] = deadline is not None
        if deadline is not None:
            # polars divides by a constant as a multiplication by its reciprocal: the same rounding here
            values["deadline_horizon_days"] = float(epoch_us(deadline) - c_us) * _PER_MICROSECOND * _PER_DAY
            values["days_to_deadline"] = (epoch_us(deadline) - t_us) / asof.US_PER_DAY
        values["age_days"] = (t_us - c_us) / asof.US_PER_DAY
        values["has_assignee"] = row["assignee_id"] is not None
        values.update(zip(asof.STATE_FEATURES, state_values, strict=True))
        for prefix, keys, key in (("project", index.project, categorical["project"][i]),
                                  ("assignee", index.assignee, row["assignee_id"])):  # fmt: skip
            for name, value in zip(_HISTORY_FEATURES, keys.features(key, t_us), strict=True):
                values[f"{prefix}_{name}"] = value
        for name, value in values.items():
            if value is not None:
                numeric[name][i] = float(value)
    return FeatureColumns(task_ids, created_us, numeric, categorical)
