"""Features: the leakage proof, a brute-force reference for history features, and record validation."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlops_assets.lib.features import (
    CATEGORICAL_FEATURES,
    EXCLUDED_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    OUTPUT_COLUMNS,
    History,
    build_features,
    records_to_frame,
    task_features,
    task_labels,
    unknown_categories,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _fixture_rows(n: int = 80, seed: int = 7) -> list[dict]:
    """Small clean.tasks-like rows with deliberate ties (6-hour grid), open and overdue tasks."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        created = T0 + timedelta(hours=6 * rng.randrange(0, 240))
        resolved = created + timedelta(hours=6 * rng.randrange(0, 60)) if rng.random() < 0.75 else None
        deadline = None
        if rng.random() < 0.7:  # date-only deadlines (midnight UTC), some already past at creation
            deadline = datetime.combine(
                (created + timedelta(days=rng.randrange(-3, 20))).date(), datetime.min.time(), UTC
            )
        rows.append(
            {
                "task_id": f"t{i:03d}",
                "source": rng.choice(["jira", "github"]),
                "project": rng.choice(["ALPHA", "BETA", "GAMMA"]),
                "key": f"K-{i}",
                "title": "x" * rng.randrange(5, 60),
                "type": rng.choice(["Bug", "Task", "Story"]),
                "priority": rng.choice(["low", "medium", "high", None]),
                "status": "Done" if resolved else "Open",
                "status_category": "done" if resolved else "todo",
                "assignee_id": rng.choice(["u_a", "u_b", "u_c", "u_d", None]),
                "created_at": created,
                "updated_at": resolved or created,
                "resolved_at": resolved,
                "due_at": deadline,
                "deadline_at": deadline,
                "story_points": rng.choice([1.0, 2.0, 3.0, 5.0, None]),
                "original_estimate_h": rng.choice([4.0, 8.0, None]),
                "time_spent_h": rng.random() * 10,
                "n_comments": rng.randrange(0, 9),
                "n_links": rng.randrange(0, 3),
                "n_labels": None,
                "labels": rng.choice(["a,b", "", "c", None]),
                "description_length": rng.randrange(0, 500),
                "is_late": None,
                "cycle_time_days": None,
            }
        )
    return rows


def _frame(rows: list[dict]) -> pl.DataFrame:
    utc = pl.Datetime("us", "UTC")
    schema = {
        "created_at": utc, "updated_at": utc, "resolved_at": utc, "due_at": utc, "deadline_at": utc,
        "n_labels": pl.Int64, "is_late": pl.Boolean, "cycle_time_days": pl.Float64,
        "story_points": pl.Float64, "original_estimate_h": pl.Float64, "priority": pl.String,
        "assignee_id": pl.String, "labels": pl.String,
    }  # fmt: skip
    return pl.DataFrame(rows, schema_overrides=schema)


ROWS = _fixture_rows()
TASKS = _frame(ROWS)


# ---------------------------------------------------------------------------------------------------
# brute-force reference: the documented definitions, one task at a time


def _overdue(deadline: datetime) -> datetime:
    return datetime.combine(deadline.date(), datetime.min.time(), UTC) + timedelta(days=1)


def _reference_history(rows: list[dict], target: dict) -> dict[str, float | None]:
    as_of = max(
        max(r["created_at"] for r in rows),
        max((r["resolved_at"] for r in rows if r["resolved_at"]), default=T0),
    )
    t = target["created_at"]
    out: dict[str, float | None] = {}
    for prefix, key in (("project", "project"), ("assignee", "assignee_id")):
        if target[key] is None:
            out.update(
                {
                    f"{prefix}_{s}": None
                    for s in ("late_rate", "n_outcomes", "median_cycle_days", "n_resolved", "open_tasks")
                }
            )
            continue
        group = [r for r in rows if r[key] == target[key]]
        cycles, n_out, n_late, n_open = [], 0, 0, 0
        for r in group:
            res = max(r["resolved_at"], r["created_at"]) if r["resolved_at"] else None
            if res is not None and res < t:
                cycles.append((res - r["created_at"]).total_seconds() / 86400)
            if r["created_at"] < t and not (res is not None and res < t):
                n_open += 1
            deadline = r["deadline_at"] or r["due_at"]
            if deadline is None:
                continue
            if res is not None and res < _overdue(deadline):
                late, known = False, res
            else:
                late, known = True, max(_overdue(deadline), r["created_at"])
                if known > as_of:
                    continue
            if known < t:
                n_out += 1
                n_late += late
        out[f"{prefix}_late_rate"] = n_late / n_out if n_out else None
        out[f"{prefix}_n_outcomes"] = float(n_out)
        out[f"{prefix}_median_cycle_days"] = statistics.median(cycles) if cycles else None
        out[f"{prefix}_n_resolved"] = float(len(cycles))
        out[f"{prefix}_open_tasks"] = float(n_open)
    return out


def _assert_matches_reference(rows: list[dict], features: pl.DataFrame) -> None:
    by_id = {r["task_id"]: r for r in rows}
    for feat in features.iter_rows(named=True):
        expected = _reference_history(rows, by_id[feat["task_id"]])
        for name, value in expected.items():
            if value is None:
                assert feat[name] is None, (feat["task_id"], name)
            else:
                assert feat[name] == pytest.approx(value, rel=1e-12), (feat["task_id"], name)


def test_history_features_equal_a_brute_force_reference():
    _assert_matches_reference(ROWS, task_features(TASKS))


def test_history_features_on_synthetic_tasks_equal_the_reference():
    synthetic = pytest.importorskip("mlops_assets.lib.synthetic")
    raw = synthetic.synthetic_tasks(300, seed=3, drift=0.0)
    # synthetic_tasks carries assignee_login and priority_canonical where clean.tasks has assignee_id/priority
    tasks = raw.with_columns(
        pl.col("assignee_login").alias("assignee_id"), pl.col("priority_canonical").alias("priority")
    ) if "assignee_id" not in raw.columns else raw  # fmt: skip
    rows = tasks.select(
        "task_id", "project", "assignee_id", "created_at", "resolved_at", "due_at", "deadline_at"
    ).to_dicts()
    features = task_features(tasks)
    assert features.height == 300 and features["task_id"].to_list() == tasks["task_id"].to_list()
    assert features["project_n_resolved"].max() > 0 and features["assignee_late_rate"].drop_nulls().len() > 0
    _assert_matches_reference(rows, features)


def test_worked_example():
    day = lambda d: datetime(2024, 1, d, tzinfo=UTC)  # noqa: E731
    tasks = _frame(
        [
            {
                "task_id": "a",
                "project": "P",
                "assignee_id": "u",
                "created_at": day(1),
                "resolved_at": day(3),
                "deadline_at": day(2),
            },
            {
                "task_id": "b",
                "project": "P",
                "assignee_id": "u",
                "created_at": day(2),
                "resolved_at": None,
                "deadline_at": day(3),
            },
            {
                "task_id": "c",
                "project": "P",
                "assignee_id": "u",
                "created_at": day(5),
                "resolved_at": day(10),
                "deadline_at": day(20),
            },
        ]
    )
    c = task_features(tasks).row(2, named=True)
    # a resolved on day 3 after its day-2 deadline (late, cycle 2d); b open past its day-3 deadline (late on day 4)
    assert (c["project_n_outcomes"], c["project_late_rate"]) == (2.0, 1.0)
    assert (c["project_n_resolved"], c["project_median_cycle_days"], c["project_open_tasks"]) == (
        1.0,
        2.0,
        1.0,
    )
    assert c["deadline_horizon_days"] == 15.0 and c["has_deadline"] == 1.0
    labels = task_labels(tasks)
    assert labels["is_late"].to_list() == [True, True, False]


# ---------------------------------------------------------------------------------------------------
# THE leakage proof


def _targets() -> list[str]:
    ordered = sorted(ROWS, key=lambda r: (r["created_at"], r["task_id"]))
    picks = [ordered[5], ordered[len(ordered) // 3], ordered[len(ordered) // 2], ordered[-10], ordered[-1]]
    picks.append(next(r for r in ordered[10:] if r["assignee_id"] is None))
    picks.append(next(r for r in ordered[10:] if r["deadline_at"] and r["deadline_at"] < r["created_at"]))
    tied = [r for r in ordered[10:] if sum(o["created_at"] == r["created_at"] for o in ROWS) > 1]
    picks.append(tied[0])
    return sorted({r["task_id"] for r in picks})


def _truncate_to_creation(rows: list[dict], target: dict) -> list[dict]:
    """The warehouse as it stood when the target was created: later tasks and later outcomes gone."""
    t = target["created_at"]
    out = []
    for r in rows:
        if r["task_id"] != target["task_id"] and r["created_at"] >= t:
            continue
        r = dict(r)
        if r["resolved_at"] is not None and r["resolved_at"] >= t:
            r.update(resolved_at=None, status="Open", status_category="todo")
        if r["task_id"] == target["task_id"]:
            r.update(
                resolved_at=None,
                is_late=None,
                cycle_time_days=None,
                n_comments=0,
                time_spent_h=0.0,
                n_links=0,
            )
        r["updated_at"] = min(r["updated_at"], t)
        out.append(r)
    return out


def _rewrite_future(rows: list[dict], target: dict) -> list[dict]:
    """Everything after the target's creation rewritten: later tasks, resolutions, outcomes, status."""
    t = target["created_at"]
    rng = random.Random(target["task_id"])
    out = []
    for r in rows:
        r = dict(r)
        if r["task_id"] != target["task_id"] and r["created_at"] > t:
            r.update(project=rng.choice(["ALPHA", "BETA"]), assignee_id=rng.choice(["u_a", "u_b"]),
                     created_at=r["created_at"] + timedelta(days=3), resolved_at=None)  # fmt: skip
        elif r["resolved_at"] is not None and r["resolved_at"] >= t:
            # resolved later instead (late now if it was on time), or never
            r["resolved_at"] = None if rng.random() < 0.5 else r["resolved_at"] + timedelta(days=40)
        elif r["resolved_at"] is None and rng.random() < 0.5:
            r["resolved_at"] = t + timedelta(hours=rng.randrange(0, 400))  # an open task resolved after t
        if r["task_id"] == target["task_id"]:
            r.update(
                resolved_at=t + timedelta(days=99),
                is_late=True,
                cycle_time_days=99.0,
                n_comments=50,
                n_links=9,
            )
        r.update(status=rng.choice(["Open", "Done", "Blocked"]), updated_at=t + timedelta(days=500),
                 time_spent_h=rng.random() * 100)  # fmt: skip
        out.append(r)
    return out


def _feature_row(tasks: pl.DataFrame, task_id: str, history: History | None = None) -> pl.DataFrame:
    features = task_features(tasks) if history is None else build_features(tasks, history)
    return features.filter(pl.col("task_id") == task_id)


@pytest.mark.parametrize("task_id", _targets())
@pytest.mark.parametrize("perturb", ["truncate_to_creation", "rewrite_future", "snapshot_as_of_creation"])
def test_nothing_after_creation_changes_a_feature_row(task_id: str, perturb: str):
    target = next(r for r in ROWS if r["task_id"] == task_id)
    expected = _feature_row(TASKS, task_id)
    assert expected.height == 1
    if perturb == "truncate_to_creation":
        got = _feature_row(_frame(_truncate_to_creation(ROWS, target)), task_id)
    elif perturb == "rewrite_future":
        got = _feature_row(_frame(_rewrite_future(ROWS, target)), task_id)
    else:
        got = _feature_row(TASKS, task_id, History.from_tasks(TASKS, as_of=target["created_at"]))
    assert_frame_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("task_id", _targets())
def test_the_perturbations_really_change_the_future(task_id: str):
    """Guards the proof against being vacuous: each rewrite changes later data and the target's outcome."""
    target = next(r for r in ROWS if r["task_id"] == task_id)
    for perturbed in (_truncate_to_creation(ROWS, target), _rewrite_future(ROWS, target)):
        assert not _frame(perturbed).equals(TASKS)
        own = next(r for r in perturbed if r["task_id"] == task_id)
        assert own["resolved_at"] != target["resolved_at"] or target["resolved_at"] is None


def test_online_records_get_the_same_features_as_training():
    history = History.from_tasks(TASKS)
    row = next(r for r in ROWS if r["task_id"] == _targets()[3])
    record = {k: row[k] for k in ("task_id", "project", "source", "type", "priority", "assignee_id", "title",
                                  "story_points", "original_estimate_h", "description_length", "labels")}  # fmt: skip
    record = {k: v for k, v in record.items() if v is not None}
    record["created_at"] = row["created_at"].isoformat().replace("+00:00", "Z")
    if row["deadline_at"]:
        record["deadline_at"] = row["deadline_at"].date().isoformat()
    frame, errors = records_to_frame([record])
    assert errors == {}
    assert_frame_equal(build_features(frame, history), _feature_row(TASKS, row["task_id"]), check_exact=True)


# ---------------------------------------------------------------------------------------------------
# shape, order and the snapshot


def test_one_row_per_target_in_input_order_with_declared_types():
    shuffled = TASKS.sample(fraction=1.0, shuffle=True, seed=1)
    features = build_features(shuffled, History.from_tasks(TASKS))
    assert features.columns == OUTPUT_COLUMNS == ["task_id", "created_at", "predicted_at", *FEATURE_COLUMNS]
    assert features["task_id"].to_list() == shuffled["task_id"].to_list()
    assert all(features.schema[c] == pl.Float64 for c in NUMERIC_FEATURES)
    assert all(features.schema[c] == pl.String for c in CATEGORICAL_FEATURES)
    assert_frame_equal(features.sort("task_id"), task_features(TASKS).sort("task_id"), check_exact=True)
    assert not set(FEATURE_COLUMNS) & set(EXCLUDED_FEATURES) - {"priority_ordinal"}


def test_history_snapshot_survives_pickling():
    history = History.from_tasks(TASKS)
    restored = History.from_bytes(history.to_bytes())
    assert_frame_equal(build_features(TASKS, restored), build_features(TASKS, history), check_exact=True)


def test_task_attributes_are_normalized():
    features = task_features(TASKS)
    assert set(features["type"].drop_nulls()) == {"bug", "task", "story"}
    row = features.filter(pl.col("priority") == "high").row(0, named=True)
    assert row["priority_ordinal"] == 4.0
    n_labels = dict(zip(TASKS["task_id"], TASKS["labels"], strict=True))
    expected = {"a,b": 2.0, "": 0.0, "c": 1.0, None: None}
    assert all(f["n_labels"] == expected[n_labels[f["task_id"]]] for f in features.iter_rows(named=True))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (TASKS.drop("project"), "lacks required column(s) ['project']"),
        (
            TASKS.with_columns(pl.col("created_at").dt.to_string()),
            "parse raw records with records_to_frame()",
        ),
        (
            TASKS.with_columns(pl.lit(None, pl.String).alias("task_id")),
            "row(s) without task_id, project or created_at",
        ),
    ],
)
def test_bad_frames_are_refused_with_a_clear_message(frame: pl.DataFrame, message: str):
    with pytest.raises(
        ValueError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]"),
    ):
        task_features(frame)


def test_history_refuses_repeated_task_ids():
    with pytest.raises(ValueError, match="repeated task_id"):
        History.from_tasks(pl.concat([TASKS, TASKS.head(2)]))


# ---------------------------------------------------------------------------------------------------
# raw records

GOOD = {"task_id": "jira:X-1", "project": "ALPHA", "created_at": "2024-04-02T09:30:00Z"}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"task_id": "x", "created_at": "2024-04-02T09:30:00Z"}, "missing required field(s) project"),
        ({**GOOD, "created_at": None}, "missing required field(s) created_at"),
        (
            {**GOOD, "n_comments": 3},
            "unknown field(s) 'n_comments' (the final count: comments before prediction time come from events",
        ),
        ({**GOOD, "n_lables": 3}, "'n_lables' (did you mean 'n_labels'?)"),
        ({**GOOD, "created_at": "yesterday"}, "created_at 'yesterday' is not an ISO 8601 timestamp"),
        ({**GOOD, "created_at": "2024-04-02T09:30:00"}, "has no UTC offset"),
        ({**GOOD, "created_at": "2024-04-02"}, "created_at '2024-04-02' is a date without a time"),
        ({**GOOD, "deadline_at": "2024-13-40"}, "deadline_at '2024-13-40' is not an ISO 8601"),
        ({**GOOD, "story_points": "5"}, "story_points must be a number, got str '5'"),
        ({**GOOD, "story_points": True}, "story_points must be a number, got bool"),
        ({**GOOD, "story_points": float("nan")}, "send null for an unknown value"),
        ({**GOOD, "description_length": 2.5}, "description_length must be a whole number"),
        ({**GOOD, "n_labels": -1}, "n_labels is -1: it cannot be negative"),
        ({**GOOD, "task_id": 12}, "task_id must be a string, got int 12"),
        ({**GOOD, "task_id": "  "}, "task_id is empty"),
        (["not", "a", "dict"], "record is not an object of task fields: got list"),
    ],
)
def test_bad_records_get_a_clear_message(record, message: str):
    frame, errors = records_to_frame([GOOD, record])
    assert list(errors) == [1]
    assert message in errors[1]
    assert frame["task_id"].to_list() == ["jira:X-1"]


def test_good_records_are_typed_without_defaults():
    records = [
        {
            **GOOD,
            "created_at": "2024-04-02T11:30:00+02:00",
            "deadline_at": "2024-04-10",
            "story_points": 3,
            "description_length": 120.0,
            "priority": "High",
            "labels": "a, b",
        },  # fmt: skip
        {**GOOD, "task_id": "jira:X-1"},  # duplicate of the first
        {"task_id": "gh:2", "project": "BETA", "created_at": datetime(2024, 4, 3, tzinfo=UTC)},
    ]
    frame, errors = records_to_frame(records)
    assert errors == {1: "duplicate task_id 'jira:X-1' (also record 0)"}
    assert frame["record_index"].to_list() == [0, 2]
    first = frame.row(0, named=True)
    assert first["created_at"] == datetime(2024, 4, 2, 9, 30, tzinfo=UTC)
    assert first["deadline_at"] == datetime(2024, 4, 10, tzinfo=UTC)
    assert (first["story_points"], first["description_length"]) == (3.0, 120)
    second = frame.row(1, named=True)
    assert second["story_points"] is None and second["type"] is None  # absent stays missing
    features = build_features(frame, History.from_tasks(TASKS))
    assert features.row(0, named=True)["deadline_horizon_days"] == pytest.approx(7 + 14.5 / 24)
    assert features.row(0, named=True)["n_labels"] == 2.0


def test_unknown_categories_are_reported_not_rejected():
    frame, errors = records_to_frame(
        [
            {**GOOD, "type": "Epic", "priority": "High"},
            {**GOOD, "task_id": "y", "project": "NEW", "type": "bug"},
        ]
    )
    assert errors == {}
    known = {"type": ["bug", "task"], "priority": ["high", "low"], "project": ["ALPHA", "BETA"]}
    report = unknown_categories(frame, known)
    assert list(report) == [0, 1]
    assert report[0] == ["type 'epic' was not seen in training (treated as missing; known: bug, task)"]
    assert "project 'NEW'" in report[1][0]
    assert unknown_categories(build_features(frame, History.from_tasks(TASKS)), known) == report
