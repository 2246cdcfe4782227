"""The hyperparameter search reports one line per Optuna trial: its validation value and the best so far."""

from __future__ import annotations

import re

import polars as pl

from mlops_assets.lib import features, splits, synthetic, training


def test_every_trial_reports_its_value_and_the_best_so_far():
    tasks = synthetic.synthetic_tasks(1500, seed=7)
    now = tasks.select(pl.max_horizontal(pl.col("created_at").max(), pl.col("resolved_at").max())).item()
    spec = training.MODEL_SPECS["late_risk"]
    parts = splits.time_split(training.model_input(spec, tasks, features.task_features(tasks), now))
    lines: list[str] = []
    trained = training.train_model(
        spec, parts, training.TrainConfig(n_trials=4, seed=3, cv_folds=2), progress=lines.append
    )

    assert len(lines) == trained.n_trials == 4
    pattern = re.compile(
        r"late_risk: trial (\d)/4 validation auc (0\.\d{4}), best (0\.\d{4}) \(trial (\d)\), [\d.]+ s"
    )
    values, bests = [], []
    for number, line in enumerate(lines, start=1):
        match = pattern.fullmatch(line)
        assert match, line
        assert int(match[1]) == number
        values.append(float(match[2]))
        bests.append(float(match[3]))
        assert float(match[3]) == max(values)  # the best so far (auc: higher is better)
        assert values[int(match[4]) - 1] == float(match[3])  # ... and the trial that reached it
    assert bests == sorted(bests)


def test_a_failed_or_first_trial_line_is_readable():
    assert training.trial_line("cycle_time", "l1", 0, 15, None, None, None, 0.04) == (
        "cycle_time: trial 1/15 validation l1 failed, best none yet, 0.0 s"
    )
