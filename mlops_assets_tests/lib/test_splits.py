"""Time-aware splits, content hashes and expanding-window folds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib.splits import (
    frame_hash,
    hash_as_logged,
    legacy_frame_hash,
    time_series_folds,
    time_split,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _frame(n: int = 200, tie_every: int = 7) -> pl.DataFrame:
    """N rows, several sharing one timestamp (ties), in a scrambled order."""
    times = [T0 + timedelta(hours=(i // tie_every) * 5 + (i % 3)) for i in range(n)]
    frame = pl.DataFrame(
        {"task_id": [f"t{i:04d}" for i in range(n)], "created_at": times, "y": [i % 2 for i in range(n)]}
    )
    return frame.sample(fraction=1.0, shuffle=True, seed=3)


@pytest.mark.parametrize("fractions", [(0.7, 0.15, 0.15), (0.5, 0.25, 0.25), (0.8, 0.1, 0.1)])
def test_splits_follow_time_without_overlap_and_conserve_rows(fractions):
    frame = _frame()
    parts = time_split(frame, fractions=fractions)
    train, val, test = parts["train"], parts["validation"], parts["test"]
    assert train.height + val.height + test.height == frame.height
    assert set(train["task_id"]) | set(val["task_id"]) | set(test["task_id"]) == set(frame["task_id"])
    assert train["created_at"].max() < val["created_at"].min()  # strictly: a tie never straddles a cut
    assert val["created_at"].max() < test["created_at"].min()
    assert abs(train.height - fractions[0] * frame.height) <= 7  # a cut moves at most past one tie
    for part in parts.values():
        assert part.select(pl.col("created_at").is_sorted()).item()


def test_splits_are_deterministic_whatever_the_input_order():
    frame = _frame()
    a = time_split(frame)
    b = time_split(frame.sample(fraction=1.0, shuffle=True, seed=99))
    for name in a:
        assert a[name].equals(b[name])


def test_gap_drops_rows_just_before_the_next_split():
    frame = _frame(400)
    plain = time_split(frame)
    gapped = time_split(frame, gap_days=0.5)
    for earlier, later in (("train", "validation"), ("validation", "test")):
        start = gapped[later]["created_at"].min()
        assert gapped[earlier]["created_at"].max() <= start - timedelta(days=0.5)
        dropped = plain[earlier].filter(pl.col("created_at") > start - timedelta(days=0.5))
        assert gapped[earlier].height == plain[earlier].height - dropped.height > 0
    assert gapped["test"].equals(plain["test"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.7, 0.2, 0.2)}, "fractions must sum to 1"),
        ({"fractions": (0.9, 0.1, 0.0)}, "every fraction must be a positive number"),
        ({"fractions": (0.5, 0.5)}, "fractions must be three numbers"),
        ({"gap_days": -1}, "gap_days must be a non-negative"),
        ({"time_col": "resolved_at"}, r"needs column\(s\) \['resolved_at'\]"),
        ({"gap_days": 30}, "the train split is empty after dropping its rows within gap_days=30"),
    ],
)
def test_bad_split_requests_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_split(_frame(), **kwargs)


def test_too_few_rows_says_how_many_are_needed():
    with pytest.raises(
        ValueError, match=r"only 12 labelled rows: need at least 20 for train/validation/test"
    ):
        time_split(_frame(12), fractions=(0.9, 0.05, 0.05))


def test_a_tie_too_large_to_split_is_explained():
    frame = pl.DataFrame(
        {"task_id": [f"t{i}" for i in range(30)], "created_at": [T0] * 28 + [T0 + timedelta(1)] * 2}
    )
    with pytest.raises(ValueError, match="the largest tie has 28 rows"):
        time_split(frame)


def test_null_times_are_refused():
    frame = _frame().with_columns(
        pl.when(pl.col("task_id") == "t0001").then(None).otherwise(pl.col("created_at")).alias("created_at")
    )
    with pytest.raises(ValueError, match="1 row\\(s\\) have a null created_at"):
        time_split(frame)


def test_frame_hash_depends_on_content_not_order():
    frame = _frame()
    h = frame_hash(frame)
    assert len(h) == 64
    assert frame_hash(frame.sample(fraction=1.0, shuffle=True, seed=5)) == h
    assert frame_hash(frame.select(reversed(frame.columns))) == h
    changed = frame.with_columns(
        pl.when(pl.col("task_id") == "t0005").then(1 - pl.col("y")).otherwise(pl.col("y")).alias("y")
    )
    assert frame_hash(changed) != h
    assert frame_hash(frame.head(199)) != h
    assert frame_hash(frame.with_columns(pl.col("y").cast(pl.Float64))) != h  # the schema counts


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (pl.DataFrame({"s": [""]}), pl.DataFrame({"s": [None]}, schema={"s": pl.String})),
        (pl.DataFrame({"f": [float("nan")]}), pl.DataFrame({"f": [None]}, schema={"f": pl.Float64})),
        (pl.DataFrame({"f": [0.1]}), pl.DataFrame({"f": [0.1 + 1e-16]})),
    ],
)
def test_frame_hash_tells_apart_values_that_print_alike(a, b):
    assert frame_hash(a) != frame_hash(b) or a.equals(b)


def test_a_hash_logged_the_legacy_way_is_still_recognised():
    """Runs logged before issue 14 hold the JSON-row hash: gate and reproduce compare like with like."""
    frame = _frame()
    legacy = legacy_frame_hash(frame)
    assert legacy != frame_hash(frame) and len(legacy) == 64
    assert legacy_frame_hash(frame.sample(fraction=1.0, shuffle=True, seed=5)) == legacy
    assert hash_as_logged(frame, legacy) == legacy  # same content, older hash: recognised
    assert hash_as_logged(frame, frame_hash(frame)) == frame_hash(frame)
    changed = frame.head(199)
    assert hash_as_logged(changed, legacy) == frame_hash(changed) != legacy  # other content: the new hash
    assert hash_as_logged(frame, "") == frame_hash(frame)


def test_frame_hash_of_an_empty_frame_depends_on_its_schema():
    assert frame_hash(pl.DataFrame(schema={"a": pl.Int64})) == frame_hash(
        pl.DataFrame(schema={"a": pl.Int64})
    )
    assert frame_hash(pl.DataFrame(schema={"a": pl.Int64})) != frame_hash(
        pl.DataFrame(schema={"b": pl.Int64})
    )


@pytest.mark.parametrize(("n_rows", "k", "gap_rows"), [(100, 5, 0), (101, 3, 0), (57, 4, 2), (12, 5, 0)])
def test_folds_expand_and_always_train_on_the_past(n_rows, k, gap_rows):
    folds = time_series_folds(n_rows, k, min_train_fraction=0.5, gap_rows=gap_rows)
    assert len(folds) == k
    validation = np.concatenate([v for _, v in folds])
    assert validation.tolist() == list(range(int(np.ceil(n_rows * 0.5)), n_rows))  # blocks tile the tail
    previous = 0
    for train, val in folds:
        assert len(val) > 0 and train.max() < val.min()
        assert train.tolist() == list(range(0, val.min() - gap_rows))
        assert len(train) > previous
        previous = len(train)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((8, 5), "n_rows=8 is too few for 5 folds"),
        ((100, 0), "k must be at least 1"),
        ((100, 5, 1.0), "min_train_fraction must be between 0 and 1"),
    ],
)
def test_bad_fold_requests_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        time_series_folds(*args)
