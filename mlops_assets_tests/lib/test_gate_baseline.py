"""lib/gate.beats_baseline: a candidate's first bar, the naive baseline (was a helper of the training assets)."""

from __future__ import annotations

import polars as pl
import pytest

from mlops_assets.lib import training
from mlops_assets.lib.gate import beats_baseline

PARTS = {
    "train": pl.DataFrame({"target": [0.0, 0.0, 0.0, 1.0]}),
    "test": pl.DataFrame({"target": [0.0, 1.0]}),
}


def test_a_binary_candidate_must_beat_the_train_rate_brier_and_chance_roc_auc():
    spec = training.get_spec("late_risk")
    # always predicting the train rate 0.25: Brier ((0.25)^2 + (0.75)^2) / 2 = 0.3125
    passed, detail = beats_baseline(spec, PARTS, {"test_brier": 0.2, "test_roc_auc": 0.7})
    assert passed and detail == {
        "test_brier": 0.2,
        "baseline_brier": pytest.approx(0.3125),
        "test_roc_auc": 0.7,
    }
    assert not beats_baseline(spec, PARTS, {"test_brier": 0.4, "test_roc_auc": 0.7})[0]
    assert not beats_baseline(spec, PARTS, {"test_brier": 0.2, "test_roc_auc": 0.5})[0]
    assert not beats_baseline(spec, PARTS, {})[0]


def test_a_regression_candidate_must_have_a_lower_mae_than_the_baseline():
    spec = training.get_spec("cycle_time")
    assert beats_baseline(spec, PARTS, {"test_mae": 3.0, "test_baseline_mae": 4.0}) == (
        True,
        {"test_mae": 3.0, "test_baseline_mae": 4.0},
    )
    assert not beats_baseline(spec, PARTS, {"test_mae": 4.0, "test_baseline_mae": 4.0})[0]
    assert not beats_baseline(spec, PARTS, {"test_mae": 3.0})[0]
