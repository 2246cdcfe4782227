"""As-of features at a prediction time t: a worked example, the leakage proof over events and task rows,
and the online path (history_index.feature_columns) equal to build_features at any t.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlops_assets.lib import asof, history_index
from mlops_assets.lib.features import NUMERIC_FEATURES, History, build_features, records_to_frame
from mlops_assets_tests.lib.test_features import ROWS, _frame

D = timedelta(days=1)
T0 = datetime(2024, 1, 1, 9, tzinfo=UTC)
_PRIORITY_NAMES = {"low": "Minor", "medium": "Major", "high": "Critical"}


def _event(task_id: str, when: datetime, field: str, old: str | None, new: str | None) -> dict:
    return {"task_id": task_id, "changed_at": when, "field": field, "from_value": old, "to_value": new}


def _events(frame: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(frame, schema={**asof.EVENT_COLUMNS, "task_id": pl.String}, orient="row")


def test_worked_example():
    task = {"task_id": "w1", "project": "ALPHA", "created_at": T0, "priority": "high", "assignee_id": "u_b",
            "due_at": datetime(2024, 1, 24, tzinfo=UTC), "deadline_at": datetime(2024, 1, 24, tzinfo=UTC),
            "resolved_at": T0 + 20 * D, "status": "Closed"}  # fmt: skip
    events = _events([
        _event("w1", T0 + 1 * D, "comment", None, None),
        _event("w1", T0 + 2 * D, "status", "Open", "In Progress"),
        _event("w1", T0 + 4 * D, "assignee", "u_a", "u_b"),
        _event("w1", T0 + 5 * D, "priority", "Major", "Critical"),
        _event("w1", T0 + 7 * D, "duedate", "2024-01-15", "2024-01-24"),
        _event("w1", T0 + 8 * D, "comment", None, None),
        _event("w1", T0 + 9 * D, "status", "In Progress", "Resolved"),
        _event("w1", T0 + 11 * D, "status", "Resolved", "Reopened"),
        _event("w1", T0 + 20 * D, "status", "Reopened", "Closed"),
    ])  # fmt: skip
    tasks = pl.DataFrame([task])
    history = History.from_tasks(tasks)
    at = [T0, T0 + 8.5 * D, T0 + 12 * D]
    rows = pl.concat([build_features(tasks, history, events, at=t) for t in at])
    get = {name: rows[name].to_list() for name in rows.columns}
    assert get["age_days"] == [0.0, 8.5, 12.0]
    # at creation: the values before their first change (Major = medium, u_a, due 15 January)
    assert get["priority"] == ["medium", "high", "high"]
    assert get["has_assignee"] == [1.0, 1.0, 1.0]
    assert get["deadline_horizon_days"][0] == pytest.approx((datetime(2024, 1, 15, tzinfo=UTC) - T0) / D)
    assert get["days_to_deadline"][1] == pytest.approx((datetime(2024, 1, 24, tzinfo=UTC) - T0 - 8.5 * D) / D)
    assert get["status_stage"] == [0.0, 1.0, 0.0]  # to do, in progress, reopened (to do again)
    assert get["days_in_status"] == [0.0, 6.5, 1.0]
    assert get["days_in_progress"] == [0.0, 6.5, 0.0]
    assert get["n_status_changes"] == [0.0, 1.0, 3.0]
    assert get["n_reopenings"] == [0.0, 0.0, 1.0]
    assert get["n_reassignments"] == [0.0, 1.0, 1.0]
    assert get["n_priority_changes"] == [0.0, 1.0, 1.0]
    assert get["n_deadline_moves"] == [0.0, 1.0, 1.0]
    assert get["deadline_moved_days"] == [0.0, 9.0, 9.0]
    assert get["n_comments_so_far"] == [0.0, 2.0, 2.0]
    assert get["predicted_at"] == at


# ---------------------------------------------------------------------------------------------------
# the leakage proof: a timeline per task (initial values + changes), events drawn from it


def _timeline(row: dict) -> dict:
    """Initial values and dated changes of one fixture task, from which its events and its row at any t follow."""
    rng = random.Random(row["task_id"])
    created, end = row["created_at"], row["resolved_at"] or row["created_at"] + 30 * D
    span = max((end - created) / D, 0.5)

    def when() -> datetime:
        return created + timedelta(hours=rng.uniform(0.1, span * 24))

    changes: list[tuple[datetime, str, str | None, str | None]] = []
    first = {"priority": row["priority"], "assignee_id": row["assignee_id"], "due_at": row["due_at"]}
    if row["priority"] and rng.random() < 0.5:
        first["priority"] = rng.choice([p for p in _PRIORITY_NAMES if p != row["priority"]])
        changes.append(
            (when(), "priority", _PRIORITY_NAMES[first["priority"]], _PRIORITY_NAMES[row["priority"]])
        )
    if rng.random() < 0.5:
        first["assignee_id"] = rng.choice(["u_a", "u_b", "u_c", None])
        changes.append((when(), "assignee", first["assignee_id"], row["assignee_id"]))
    if row["due_at"] is not None and rng.random() < 0.5:
        first["due_at"] = row["due_at"] - rng.randrange(1, 10) * D
        changes.append(
            (when(), "duedate", first["due_at"].date().isoformat(), row["due_at"].date().isoformat())
        )
    started = when()
    changes.append((started, "status", "Open", "In Progress"))
    if row["resolved_at"] is not None:
        if rng.random() < 0.3:
            changes.append((started + (end - started) / 3, "status", "In Progress", "Resolved"))
            changes.append((started + (end - started) / 2, "status", "Resolved", "Reopened"))
            changes.append((end, "status", "Reopened", "Closed"))
        else:
            changes.append((end, "status", "In Progress", "Closed"))
    changes += [(when(), "comment", None, None) for _ in range(rng.randrange(0, 4))]
    return {"first": first, "changes": sorted(changes, key=lambda c: c[0])}


TIMELINES = {r["task_id"]: _timeline(r) for r in ROWS}
EVENTS = _events([_event(task_id, *c) for task_id, tl in TIMELINES.items() for c in tl["changes"]])
TASKS = _frame(ROWS)
HISTORY = History.from_tasks(TASKS)


def _value_at(task_id: str, field: str, t: datetime):
    """What the tracker showed in `field` at t: replayed from the timeline, not from asof."""
    name = {"assignee_id": "assignee", "due_at": "duedate", "priority": "priority"}[field]
    value = TIMELINES[task_id]["first"][field]
    for when, f, _, _new in TIMELINES[task_id]["changes"]:
        if f == name and when < t:
            row = next(r for r in ROWS if r["task_id"] == task_id)
            value = row[field]  # one change per field: after it, the final value
    return value


def _cases() -> list[tuple[str, int]]:
    """(task, which t): tasks with several changes, at creation, at an event's exact time, between, late."""
    busy = sorted(TIMELINES, key=lambda k: -len(TIMELINES[k]["changes"]))[:8]
    return [(task_id, k) for task_id in busy for k in range(4)]


def _time(task_id: str, k: int) -> datetime:
    row = next(r for r in ROWS if r["task_id"] == task_id)
    changes = TIMELINES[task_id]["changes"]
    return [row["created_at"], changes[len(changes) // 2][0], changes[len(changes) // 2][0] + timedelta(hours=1),
            changes[-1][0] + timedelta(seconds=1)][k]  # fmt: skip


def _as_of_world(task_id: str, t: datetime, rewrite: bool) -> tuple[pl.DataFrame, pl.DataFrame, History]:
    """The target row, events and history as they could have been seen at t, with the future deleted
    (rewrite=False) or rewritten (rewrite=True), and every final value of the row made up.
    """
    rng = random.Random(f"{task_id}{t}")
    row = dict(next(r for r in ROWS if r["task_id"] == task_id))
    own = EVENTS.filter(pl.col("task_id") == task_id)
    before = own.filter(pl.col("changed_at") < t)
    later = EVENTS.filter((pl.col("task_id") != task_id) | (pl.col("changed_at") < t))
    if rewrite:
        after = own.filter(pl.col("changed_at") >= t).sort("changed_at")
        rows = []
        seen: set[str] = set()
        for e in after.iter_rows(named=True):
            # the first later change of a field still starts from the value held at t; all else is made up
            keep_from = e["field"] in ("priority", "assignee", "duedate") and e["field"] not in seen
            seen.add(e["field"])
            made_up = {"priority": rng.choice(list(_PRIORITY_NAMES.values())), "assignee": rng.choice(["u_x", None]),
                       "duedate": "2031-01-01", "status": rng.choice(["Closed", "Reopened", "Blocked"])}  # fmt: skip
            rows.append(_event(task_id, e["changed_at"] + rng.randrange(0, 40) * D, e["field"],
                               e["from_value"] if keep_from else "garbage", made_up.get(e["field"])))  # fmt: skip
        rows += [
            _event(task_id, t + rng.randrange(0, 40) * D, f, "Closed", "Reopened")
            for f in ("status", "comment")
        ]
        events = pl.concat([later, _events(rows)]).sort("changed_at")
        # the row's final values are what the rewritten later events end at (a field without later
        # events holds its value at t to the end)
        for e in sorted(rows, key=lambda e: e["changed_at"]):
            if e["field"] == "priority":
                row["priority"] = {v: k for k, v in _PRIORITY_NAMES.items()}[e["to_value"]]
            elif e["field"] == "assignee":
                row["assignee_id"] = e["to_value"]
            elif e["field"] == "duedate":
                row["due_at"] = row["deadline_at"] = datetime(2031, 1, 1, tzinfo=UTC)
    else:
        events = pl.concat([EVENTS.filter(pl.col("task_id") != task_id), before])
        row.update({f: _value_at(task_id, f, t) for f in ("priority", "assignee_id", "due_at")})
        row["deadline_at"] = row["due_at"]
    if row["resolved_at"] is None or row["resolved_at"] >= t:  # a resolution before t is history, kept
        row["resolved_at"] = t + rng.randrange(0, 30) * D + timedelta(hours=1)
    row.update(status=rng.choice(["Done", "Open"]),
               status_category=rng.choice(["done", "todo"]), updated_at=t + 400 * D, is_late=rng.random() < 0.5,
               n_comments=rng.randrange(0, 99), n_links=rng.randrange(0, 9))  # fmt: skip
    # history: the target's own resolution rewritten too (its project and final assignee stay, see features)
    world = [dict(r, resolved_at=row["resolved_at"]) if r["task_id"] == task_id else r for r in ROWS]
    return _frame([row]), events, History.from_tasks(_frame(world))


@pytest.mark.parametrize(("task_id", "k"), _cases())
@pytest.mark.parametrize("rewrite", [False, True], ids=["future_deleted", "future_rewritten"])
def test_nothing_at_or_after_t_changes_a_feature(task_id: str, k: int, rewrite: bool):
    t = _time(task_id, k)
    target = TASKS.filter(pl.col("task_id") == task_id)
    expected = build_features(target, HISTORY, EVENTS, at=t)
    row, events, history = _as_of_world(task_id, t, rewrite)
    assert_frame_equal(build_features(row, history, events, at=t), expected, check_exact=True)


def test_the_worlds_really_differ_after_t():
    """Guards the proof against being vacuous: the perturbed worlds change the target's events, final values and outcome."""
    changed_events = changed_rows = 0
    for task_id, k in _cases():
        t = _time(task_id, k)
        original = next(r for r in ROWS if r["task_id"] == task_id)
        for rewrite in (False, True):
            row, events, _ = _as_of_world(task_id, t, rewrite)
            own = events.filter(pl.col("task_id") == task_id).sort("changed_at", "field")
            changed_events += not own.equals(
                EVENTS.filter(pl.col("task_id") == task_id).sort("changed_at", "field")
            )
            changed_rows += row.row(0, named=True)["resolved_at"] != original["resolved_at"]
    assert changed_events >= len(_cases()) and changed_rows >= len(_cases())


def test_reading_a_final_value_would_be_caught():
    """The proof has teeth: a feature built from the row's final status or resolution differs between worlds."""
    task_id, k = _cases()[0]
    t = _time(task_id, k)
    final = TASKS.filter(pl.col("task_id") == task_id)
    row, _, _ = _as_of_world(task_id, t, rewrite=True)
    assert final["resolved_at"].to_list() != row["resolved_at"].to_list()
    assert (
        final["priority"].to_list() != row["priority"].to_list()
        or final["assignee_id"].to_list() != row["assignee_id"].to_list()
    )


# ---------------------------------------------------------------------------------------------------
# online: feature_columns equal to build_features at any t, events passed or looked up


def _assert_columns_equal(records: pl.DataFrame, history: History, events, at) -> None:
    expected = history_index.FeatureColumns.from_frame(build_features(records, history, events, at=at))
    index = history_index.HistoryIndex.from_history(history)
    got = history_index.feature_columns(records, index, asof.TaskEvents.from_frame(events), at=at)
    assert got.task_id == expected.task_id
    for name in NUMERIC_FEATURES:
        assert np.array_equal(got.numeric[name], expected.numeric[name], equal_nan=True), name
    assert got.categorical == expected.categorical


@pytest.mark.parametrize("days_after_start", [0, 3, 9, 40, 400])
def test_online_features_equal_build_features_at_any_time(days_after_start: int):
    keep = ("task_id", "project", "source", "type", "priority", "assignee_id", "title", "story_points",
            "original_estimate_h", "description_length", "labels")  # fmt: skip
    records = []
    for r in ROWS:
        record = {k: r[k] for k in keep if r[k] is not None}
        record["created_at"] = r["created_at"].isoformat()
        if r["deadline_at"]:
            record["deadline_at"] = record["due_at"] = r["deadline_at"].isoformat()
        records.append(record)
    frame, errors = records_to_frame(records)
    assert errors == {}
    at = datetime(2024, 3, 1, tzinfo=UTC) + days_after_start * D
    _assert_columns_equal(frame, HISTORY, EVENTS, at)


def test_the_service_looks_up_events_in_its_snapshot():
    import dataclasses

    history = dataclasses.replace(HISTORY, events=asof.TaskEvents.from_frame(EVENTS))
    at = datetime(2024, 3, 20, tzinfo=UTC)
    looked_up = build_features(TASKS, history, at=at)
    assert_frame_equal(looked_up, build_features(TASKS, HISTORY, EVENTS, at=at), check_exact=True)
    assert looked_up["n_status_changes"].sum() > 0
    restored = History.from_bytes(history.to_bytes())
    assert_frame_equal(build_features(TASKS, restored, at=at), looked_up, check_exact=True)


@pytest.mark.parametrize(
    ("name", "stage"),
    [("Open", "todo"), ("Reopened", "todo"), ("In Progress", "in_progress"), ("Patch Available", "todo"),
     ("In Review", "review"), ("Testing", "review"), ("Resolved", "done"), ("Closed", "done"), (None, "todo")],
)  # fmt: skip
def test_status_names_map_to_stages(name, stage):
    assert asof.status_category(name) == stage


def _wire(events: pl.DataFrame) -> list[dict]:
    return [
        {**e, "changed_at": e["changed_at"].isoformat()} for e in events.drop("task_id").iter_rows(named=True)
    ]


def test_online_records_may_carry_their_events():
    task_id = _cases()[0][0]
    row = next(r for r in ROWS if r["task_id"] == task_id)
    record = {"task_id": task_id, "project": row["project"], "created_at": row["created_at"].isoformat(),
              "assignee_id": row["assignee_id"] or "u_a", "priority": row["priority"] or "low"}  # fmt: skip
    own = EVENTS.filter(pl.col("task_id") == task_id)
    at = _time(task_id, 2)
    carried, errors = records_to_frame([{**record, "events": _wire(own)}])
    plain, _ = records_to_frame([record])
    assert errors == {}
    expected = build_features(plain.drop("events"), HISTORY, own, at=at)
    assert_frame_equal(build_features(carried, HISTORY, at=at), expected, check_exact=True)
    # carried events win over the ones the service holds, online too (an empty list is a history: none)
    held = asof.TaskEvents.from_frame(
        EVENTS.filter(pl.col("task_id") != task_id).with_columns(pl.lit(task_id).alias("task_id"))
    )
    index = history_index.HistoryIndex.from_history(HISTORY)
    online = history_index.feature_columns(carried.drop("record_index"), index, held, at=at)
    assert online.numeric["n_status_changes"][0] == expected["n_status_changes"][0]
    none, _ = records_to_frame([{**record, "events": []}])
    assert (
        history_index.feature_columns(none.drop("record_index"), index, held, at=at).numeric[
            "n_status_changes"
        ][0]
        == 0
    )


@pytest.mark.parametrize(
    ("events", "message"),
    [("x", "events must be a list of objects"), ([1], "events[0] must be an object"),
     ([{"changed_at": "2024-01-01T00:00:00Z", "field": "mood"}], "events[0].field is 'mood'"),
     ([{"changed_at": "yesterday", "field": "status"}], "events[0]: changed_at 'yesterday' is not an ISO 8601"),
     ([{"changed_at": "2024-01-01T00:00:00Z", "field": "status", "to_value": 3}], "events[0].to_value must be a string"),
     ([{"changed_at": "2024-01-01T00:00:00Z", "field": "status", "who": "x"}], "unknown key(s) ['who']")],
)  # fmt: skip
def test_bad_events_get_a_clear_message(events, message):
    _, errors = records_to_frame(
        [{"task_id": "a", "project": "P", "created_at": "2024-01-01T00:00:00Z", "events": events}]
    )
    assert message in errors[0]
