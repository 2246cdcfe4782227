"""Batch scores are as of now for live data, else as of the data's own end (or MLOPS_AS_OF), and a task without
a deadline has a band.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from mlops_assets.lib import scoring

UTC_US = pl.Datetime("us", "UTC")


def _tasks(latest: datetime) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "created_at": [datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)],
            "updated_at": [latest, None],
            "resolved_at": [datetime(2026, 2, 1, tzinfo=UTC), None],
        },
        schema={"created_at": UTC_US, "updated_at": UTC_US, "resolved_at": UTC_US},
    )


def test_the_data_is_scored_as_of_its_latest_event_not_the_wall_clock():
    as_of, source = scoring.scoring_as_of(_tasks(datetime(2026, 10, 31, 17, 30, tzinfo=UTC)), environ={})
    assert as_of == datetime(2026, 10, 31, 17, 30, tzinfo=UTC)
    assert "latest" in source


def test_live_data_is_scored_as_of_now_so_the_daily_refresh_ages_open_tasks():
    """Data pulled daily (latest change hours ago, or over a quiet weekend) is scored as of the wall clock."""
    for age in (timedelta(hours=2), timedelta(days=2, hours=20)):
        before = datetime.now(UTC)
        as_of, source = scoring.scoring_as_of(_tasks(before - age), environ={})
        assert before <= as_of <= datetime.now(UTC) and source.startswith("now: the data is live"), source
    # a week-old export is the day it describes, and says how to score it as of today
    end = datetime.now(UTC) - timedelta(days=7)
    as_of, source = scoring.scoring_as_of(_tasks(end), environ={})
    assert as_of == end and "7 days ago; set MLOPS_AS_OF=now" in source


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-09-30", datetime(2026, 9, 30, tzinfo=UTC)),
        ("2026-09-30T12:00:00Z", datetime(2026, 9, 30, 12, tzinfo=UTC)),
        ("2026-09-30T14:00:00+02:00", datetime(2026, 9, 30, 12, tzinfo=UTC)),
    ],
)
def test_mlops_as_of_overrides_it(raw, expected):
    as_of, source = scoring.scoring_as_of(
        _tasks(datetime(2026, 10, 31, tzinfo=UTC)), environ={"MLOPS_AS_OF": raw}
    )
    assert as_of == expected and source == f"MLOPS_AS_OF={raw}"


def test_mlops_as_of_now_is_the_wall_clock_and_a_bad_value_says_what_to_write():
    before = datetime.now(UTC)
    as_of, _ = scoring.scoring_as_of(_tasks(datetime(2026, 1, 1, tzinfo=UTC)), environ={"MLOPS_AS_OF": "now"})
    assert before <= as_of <= datetime.now(UTC)
    with pytest.raises(
        ValueError, match=r"MLOPS_AS_OF='yesterday' is not an ISO 8601 time \(e.g. 2026-10-31"
    ):
        scoring.scoring_as_of(_tasks(datetime(2026, 1, 1, tzinfo=UTC)), environ={"MLOPS_AS_OF": "yesterday"})


@pytest.mark.parametrize("missing", [None, math.nan])
def test_no_late_risk_reads_as_the_no_deadline_band(missing):
    assert scoring.risk_band(missing) == scoring.NO_DEADLINE_BAND == "no deadline"
