"""A task's state at a prediction time ``t`` from its event history, reading only events strictly before ``t``.

``clean.task_events`` holds what happened to a task (status moves, reassignments, priority and due-date
edits, fix-version changes, comments). :func:`task_state` folds one task's events into its state at
``t``; ``features.build_features`` (training, batch) and ``history_index.feature_columns`` (online) both
call it, so the three uses share one definition::

    events = TaskEvents.from_frame(clean_task_events)       # grouped by task, time-ordered
    state = task_state(events.of(task_id), t_us, created_us)

The rules, each chosen so that nothing at or after ``t`` changes the answer (the leakage tests delete
or rewrite every event at/after ``t``, and roll the task row back to its values at ``t``):

* **counts** (status changes, reassignments, priority changes, deadline moves, reopenings, comments) are
  over events with ``changed_at < t``. A reassignment is an assignee change away from someone (a first
  assignment is not one); a deadline move is a due-date or fix-version change away from a value (a
  first due date is not one); a reopening is a status move out of a done status.
* **status at t** is the stage (to do, in progress, review, done) of the last status event before
  ``t``; before any, a task is in a to-do status (where every tracker starts it). The row's own status is never read: it is the *final*
  status, and a source without status history (GitHub, Asana, CSV) would hand the outcome to the model.
  ``days_in_status`` runs from that event (or from creation).
* **field values at t** (priority, assignee, due date) are the last event's ``to_value`` before ``t``;
  with none before ``t`` but some later, the first later event's ``from_value`` (the value the field
  had at ``t``); with no events, the row's value. A row without field history keeps its final value:
  the bounded skew documented in ``features``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "changed_at": UTC_DATETIME,
    "field": pl.String(),
    "from_value": pl.String(),
    "to_value": pl.String(),
}

# Numeric features this module gives (features.NUMERIC_FEATURES lists them with the others).
STATE_FEATURES: tuple[str, ...] = (
    "status_stage",
    "days_in_status",
    "days_in_progress",
    "n_status_changes",
    "n_reopenings",
    "n_reassignments",
    "n_priority_changes",
    "n_deadline_moves",
    "deadline_moved_days",
    "n_comments_so_far",
)

# status stages in the order work moves through them; review (review, test, QA, verification) is split
# off in-progress: a task in review 7 days before its deadline is nearly done, one in progress is not
STAGE = {"todo": 0, "in_progress": 1, "review": 2, "done": 3}
_REVIEW_WORDS = ("review", "test", "qa", "verif", "validat", "approval", "staging")
US_PER_DAY = 86_400 * 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Event = tuple[int, str, str | None, str | None]  # (changed_at in us since the epoch, field, from, to)


def status_category(name: str | None) -> str:
    """Todo | in_progress | review | done of a status name: the rule Trello lists and Jira CSVs use, with
    review-like in-progress statuses (In Review, Testing, QA) apart.
    """
    from mlops_assets.lib.sources.base import category_from_status_name

    category = category_from_status_name(name)
    if category == "in_progress" and any(word in name.lower() for word in _REVIEW_WORDS):
        return "review"
    return category


_PRIORITY_CACHE: dict[str, str | None] = {}


def canonical_priority(name: str | None) -> str | None:
    """A tracker's priority name on the canonical scale (cleaning's synonyms); None when unknown."""
    if name is None:
        return None
    hit = _PRIORITY_CACHE.get(name)
    if hit is None and name not in _PRIORITY_CACHE:
        from mlops_assets.lib.cleaning import PRIORITY_SYNONYMS  # only when a priority event is seen

        hit = PRIORITY_SYNONYMS.get(name.strip().lower())
        _PRIORITY_CACHE[name] = hit
    return hit


def _day_us(value: str | None) -> int | None:
    """Microseconds since the epoch of a YYYY-MM-DD due date (midnight UTC); None when not a date."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return None
    return (day - date(1970, 1, 1)).days * US_PER_DAY


@dataclass(frozen=True)
class TaskState:
    """A task at t: the fields with history (``has_*``: the value comes from events) and the numeric features."""

    has_priority: bool
    priority: str | None
    has_assignee: bool
    assignee_id: str | None
    has_due: bool
    due_us: int | None
    features: tuple[float, ...]  # STATE_FEATURES, NaN = null


def task_state(events: list[Event], t_us: int, created_us: int) -> TaskState:
    """The state at ``t_us`` of a task created at ``created_us`` from its events (sorted by time)."""
    last_status_us, stage = created_us, 0
    n_status = n_reopen = n_reassign = n_prio = n_moves = n_comments = 0
    moved_us = 0
    values: dict[str, tuple[bool, str | None]] = {}  # field -> (decided, value) for priority/assignee/duedate
    for when, field, old, new in events:
        before = when < t_us
        if field in ("priority", "assignee", "duedate"):
            if before:
                values[field] = (True, new)
            elif field not in values:
                values[field] = (True, old)  # the first later change says what the field held at t
            if not before:
                continue
        if not before:
            continue
        if field == "status":
            n_status += 1
            new_stage = STAGE[status_category(new)]
            if old is not None and status_category(old) == "done" and new_stage != STAGE["done"]:
                n_reopen += 1
            if new_stage != stage:  # a move within a category (In Progress -> In Review) keeps its clock
                last_status_us = when
            stage = new_stage
        elif field == "assignee":
            n_reassign += old is not None
        elif field == "priority":
            n_prio += 1
        elif field == "duedate":
            if old is not None:
                n_moves += 1
                old_us, new_us = _day_us(old), _day_us(new)
                if old_us is not None and new_us is not None:
                    moved_us += new_us - old_us
        elif field == "fix_version":
            n_moves += old is not None
        elif field == "comment":
            n_comments += 1
    in_status = max(t_us - max(last_status_us, created_us), 0) / US_PER_DAY
    prio = values.get("priority")
    who = values.get("assignee")
    due = values.get("duedate")
    return TaskState(
        prio is not None, canonical_priority(prio[1]) if prio else None,
        who is not None, who[1] if who else None,
        due is not None, _day_us(due[1]) if due else None,
        (float(stage), in_status, in_status if stage == STAGE["in_progress"] else 0.0, float(n_status), float(n_reopen),
         float(n_reassign), float(n_prio), float(n_moves), moved_us / US_PER_DAY, float(n_comments)),
    )  # fmt: skip


def initial_state(t_us: int, created_us: int) -> tuple[float, ...]:
    """STATE_FEATURES of a task without events (== task_state([], ...).features)."""
    in_status = max(t_us - created_us, 0) / US_PER_DAY
    return (0.0, in_status, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _epoch_us(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class TaskEvents:
    """Events grouped by task_id, each task's list sorted by time (ties keep the table's order)."""

    by_task: dict[str, list[Event]]

    @classmethod
    def empty(cls) -> TaskEvents:
        return cls({})

    @classmethod
    def from_frame(cls, events: pl.DataFrame | None, task_ids: pl.Series | None = None) -> TaskEvents:
        """From a clean.task_events-shaped frame (extra columns ignored); `task_ids`: keep only those tasks."""
        if events is None or events.height == 0:
            return cls.empty()
        missing = [c for c in EVENT_COLUMNS if c not in events.columns]
        if missing:
            raise ValueError(f"events lack column(s) {missing}; they have {sorted(events.columns)}")
        frame = events.select(
            pl.col("task_id").cast(pl.String),
            pl.col("changed_at").dt.convert_time_zone("UTC").dt.epoch("us").alias("t"),
            pl.col("field").cast(pl.String), pl.col("from_value").cast(pl.String), pl.col("to_value").cast(pl.String),
        ).filter(pl.col("task_id").is_not_null() & pl.col("t").is_not_null())  # fmt: skip
        if task_ids is not None:
            frame = frame.filter(pl.col("task_id").is_in(task_ids.unique().implode()))
        frame = frame.with_row_index("_order").sort("task_id", "t", "_order")
        by_task: dict[str, list[Event]] = {}
        ids, ts, fields, froms, tos = (
            frame.get_column(c).to_list() for c in ("task_id", "t", "field", "from_value", "to_value")
        )
        for task_id, when, field, old, new in zip(ids, ts, fields, froms, tos, strict=True):
            by_task.setdefault(task_id, []).append((when, field, old, new))
        return cls(by_task)

    @classmethod
    def from_records(cls, task_id: str, records: list[dict[str, Any]]) -> TaskEvents:
        """One task's events as an online client sends them: [{changed_at, field, from_value, to_value}]."""
        rows = []
        for record in records:
            when = record["changed_at"]
            if isinstance(when, str):
                when = datetime.fromisoformat(when)
            rows.append(
                (_epoch_us(when), str(record["field"]), record.get("from_value"), record.get("to_value"))
            )
        return cls({task_id: sorted(rows, key=lambda r: r[0])})

    def of(self, task_id: str) -> list[Event]:
        return self.by_task.get(task_id, [])

    def __len__(self) -> int:
        return len(self.by_task)
