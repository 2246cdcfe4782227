"""The drift demo's idea of "the loop is complete", on the race it met for real: the monitoring run that
re-measures drift was queued (its check record created) while the retraining was still running, and
evaluated after it. The demo waited for a check "after the retraining" that never came.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import dagster as dg

from mlops_assets.devtools import demo


class _Instance:
    """The three instance calls the demo makes: no new runs, nothing in flight, the latest drift check."""

    def __init__(self, record):
        self.record = record

    def get_runs(self, filters=None):
        return []

    def get_run_ids(self, filters=None):
        return []

    def get_latest_asset_check_evaluation_record(self, key):
        return self.record


def _failed_check(created: float, evaluated: float):
    evaluation = SimpleNamespace(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "drift_share": SimpleNamespace(value=0.23),
            "reason": SimpleNamespace(value="23% of monitored features drifted"),
        },
    )
    return SimpleNamespace(
        id=7,
        status=SimpleNamespace(value="FAILED"),
        evaluation=evaluation,
        create_timestamp=created,
        event=SimpleNamespace(timestamp=evaluated),
    )


def test_a_check_planned_during_the_retrain_and_evaluated_after_it_completes_the_loop():
    now = time.time()
    watch = demo.Watch(
        started=now - 600,
        retrain_runs=["r1"],
        retrain_done_at=now - 100,
        statuses={"r1": "SUCCESS"},
        last_change=now - 90,
    )
    record = _failed_check(
        created=now - 110, evaluated=now - 95
    )  # planned before, evaluated after the retrain
    demo.poll(_Instance(record), watch)
    assert [c[0] for c in watch.drift_checks] == [now - 95]
    assert demo.finished(_Instance(record), watch) == (True, None)


def test_without_a_check_after_the_retrain_the_loop_is_not_complete():
    now = time.time()
    watch = demo.Watch(
        started=now - 600,
        retrain_runs=["r1"],
        retrain_done_at=now - 100,
        statuses={"r1": "SUCCESS"},
        last_change=now - 90,
    )
    record = _failed_check(created=now - 300, evaluated=now - 290)  # the check that triggered the retrain
    demo.poll(_Instance(record), watch)
    assert demo.finished(_Instance(record), watch) == (False, None)
