"""history_index.feature_columns: exactly build_features, row for row, on the cases that can drift apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib import features, history_index, scoring
from mlops_assets.serving.sandbox import clean_tasks

TASKS = clean_tasks(1500, seed=13)
HISTORY = features.History.from_tasks(TASKS)
INDEX = history_index.HistoryIndex.from_history(HISTORY)


def _assert_equal(records: pl.DataFrame) -> None:
    expected = history_index.FeatureColumns.from_frame(features.build_features(records, HISTORY))
    got = history_index.feature_columns(records, INDEX)
    assert got.task_id == expected.task_id
    assert np.array_equal(got.created_us, expected.created_us)
    for name in features.NUMERIC_FEATURES:
        same = np.array_equal(got.numeric[name], expected.numeric[name], equal_nan=True)
        assert same, f"{name}: {got.numeric[name][:5]} != {expected.numeric[name][:5]}"
    assert got.categorical == expected.categorical


def _records(rows: list[dict]) -> pl.DataFrame:
    frame, errors = features.records_to_frame(rows)
    assert errors == {}
    return frame


def test_every_task_of_the_sample_gets_the_build_features_row():
    _assert_equal(_records(scoring.task_records(TASKS)))


# A task created at exactly the time of other events of its project/assignee (strictly-before rule),
# at a resolution time, before any history, after the snapshot; unknown and missing keys.
def _tie_cases() -> list[tuple[str, dict]]:
    base = scoring.task_records(TASKS.filter(pl.col("assignee_id").is_not_null()).head(1))[0]
    resolved = TASKS.filter(pl.col("resolved_at").is_not_null()).row(5, named=True)
    created = TASKS.row(700, named=True)
    at = lambda value: value.astimezone(UTC).isoformat()  # noqa: E731
    busiest = TASKS.group_by("created_at").len().sort("len", descending=True).row(0, named=True)
    tie_row = TASKS.filter(pl.col("created_at") == busiest["created_at"]).row(0, named=True)
    return [
        ("same instant as another creation", {**base, "project": created["project"], "assignee_id": created["assignee_id"],
                                               "created_at": at(created["created_at"])}),
        ("same instant as a resolution", {**base, "project": resolved["project"], "assignee_id": resolved["assignee_id"],
                                           "created_at": at(resolved["resolved_at"])}),
        ("one microsecond after a resolution", {**base, "project": resolved["project"],
                                                "assignee_id": resolved["assignee_id"],
                                                "created_at": at(resolved["resolved_at"] + timedelta(microseconds=1))}),
        ("busiest instant", {**base, "project": tie_row["project"], "assignee_id": tie_row["assignee_id"],
                             "created_at": at(busiest["created_at"])}),
        ("before any history", {**base, "created_at": "2001-01-01T00:00:00+00:00"}),
        ("after the snapshot", {**base, "created_at": at(HISTORY.as_of + timedelta(days=60))}),  # not in the future: refused
        ("unknown project", {**base, "project": "NOWHERE"}),
        ("unknown assignee", {**base, "assignee_id": "ghost-0000"}),
        ("no assignee", {k: v for k, v in base.items() if k != "assignee_id"}),
        ("only required fields", {"task_id": "t-min", "project": base["project"], "created_at": base["created_at"]}),
    ]  # fmt: skip


TIE_CASES = _tie_cases()


@pytest.mark.parametrize("record", [c[1] for c in TIE_CASES], ids=[c[0] for c in TIE_CASES])
def test_history_edge_cases_equal_build_features(record):
    _assert_equal(_records([record]))


TEXT_CASES = [
    ("padded and upper case", {"source": " Jira ", "type": "\tBUG\n", "priority": "  High"}),
    ("blank categories are missing", {"source": "   ", "type": "", "priority": "\t"}),
    ("padded project keeps its case", {"project": "  " + TASKS["project"][0] + " "}),
    ("unicode", {"type": "Ünïcode Tÿpe", "priority": "ΣΑΣ", "project": "\u00a0Proj\u2003"}),
    ("labels counted from text", {"labels": "a, b,,c ,  ", "n_labels": None}),
    ("unicode labels", {"labels": "é,\u2003, ü", "n_labels": None}),
    ("n_labels wins over labels", {"labels": "a,b", "n_labels": 7}),
    ("due date only", {"deadline_at": None, "due_at": "2026-03-01"}),
    ("deadline before creation", {"deadline_at": "2020-01-01T00:00:00+00:00"}),
    ("no deadline", {"deadline_at": None, "due_at": None}),
    ("odd offset and hour", {"created_at": "2026-02-28T23:59:59.999999-05:00"}),
    ("leap day", {"created_at": "2024-02-29T12:00:00+00:00", "deadline_at": "2024-12-31T00:00:00+00:00"}),
]


@pytest.mark.parametrize("changes", [c[1] for c in TEXT_CASES], ids=[c[0] for c in TEXT_CASES])
def test_attribute_edge_cases_equal_build_features(changes):
    base = scoring.task_records(TASKS.head(1))[0]
    record = {k: v for k, v in {**base, **changes}.items() if v is not None}
    _assert_equal(_records([record]))


def test_many_rows_in_one_call_keep_their_order():
    shuffled = TASKS.sample(fraction=1.0, shuffle=True, seed=3).head(300)
    _assert_equal(_records(scoring.task_records(shuffled)))


def test_a_clean_tasks_frame_works_too():
    _assert_equal(TASKS.head(200))


def test_frames_of_another_shape_are_refused_with_a_pointer():
    with pytest.raises(ValueError, match="records_to_frame"):
        history_index.feature_columns(TASKS.drop("labels"), INDEX)
    with pytest.raises(ValueError, match="records_to_frame"):
        history_index.feature_columns(TASKS.with_columns(pl.col("due_at").dt.date()), INDEX)


def test_epoch_round_trip():
    moment = datetime(2026, 5, 1, 9, 30, 0, 123456, tzinfo=UTC)
    assert history_index.from_epoch_us(history_index.epoch_us(moment)) == moment
