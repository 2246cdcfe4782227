"""Model specs, labels, data validation and tuned training on the seeded synthetic sample."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib import features, splits, synthetic, training

FAST = training.TrainConfig(n_trials=3, seed=11, cv_folds=3)


@pytest.fixture(scope="module")
def tasks() -> pl.DataFrame:
    return synthetic.synthetic_tasks(3000, seed=7)


@pytest.fixture(scope="module")
def feature_frame(tasks: pl.DataFrame) -> pl.DataFrame:
    return features.task_features(tasks)


@pytest.fixture(scope="module")
def now(tasks: pl.DataFrame):
    return tasks.select(pl.max_horizontal(pl.col("created_at").max(), pl.col("resolved_at").max())).item()


@pytest.fixture(scope="module")
def model_splits(tasks, feature_frame, now) -> dict[str, dict[str, pl.DataFrame]]:
    return {
        name: splits.time_split(training.model_input(spec, tasks, feature_frame, now))
        for name, spec in training.MODEL_SPECS.items()
    }


def test_every_spec_is_complete():
    for name, spec in training.MODEL_SPECS.items():
        assert spec.name == name
        assert spec.primary_metric in spec.metrics
        assert spec.feature_columns() == tuple(features.FEATURE_COLUMNS)
        for floor in spec.gate.floors:
            assert floor.metric.removeprefix("test_") in spec.metrics


def test_late_risk_labels_match_the_ground_truth_for_known_outcomes(tasks, feature_frame, now):
    spec = training.MODEL_SPECS["late_risk"]
    frame = training.model_input(spec, tasks, feature_frame, now)
    truth = frame.join(tasks.select("task_id", "is_late", "deadline_at", "resolved_at"), on="task_id")
    assert truth.height == frame.height
    assert truth["deadline_at"].null_count() == 0
    assert (truth["target"] == truth["is_late"].cast(pl.Float64)).all()
    # Tasks still open before their deadline date have no outcome yet and are not trained on.
    pending = tasks.filter(
        pl.col("deadline_at").is_not_null()
        & pl.col("resolved_at").is_null()
        & (pl.col("deadline_at").dt.date() >= now.date())
    )
    assert pending.height > 0
    assert frame.join(pending, on="task_id", how="semi").height == 0
    assert frame["created_at"].is_sorted()


def test_labels_are_point_in_time(tasks, feature_frame, now):
    """Backdated training sees a task resolved after `now` as still open."""
    spec = training.MODEL_SPECS["cycle_time"]
    earlier = now - timedelta(days=120)
    frame = training.model_input(spec, tasks, feature_frame, earlier)
    resolved_later = tasks.filter(pl.col("resolved_at") > earlier)
    assert frame.join(resolved_later, on="task_id", how="semi").height == 0
    full = training.model_input(spec, tasks, feature_frame, now).join(tasks, on="task_id")
    assert np.allclose(full["target"].to_numpy(), np.log1p(full["cycle_time_days"].to_numpy()))


@pytest.mark.parametrize("name", list(training.MODEL_SPECS))
def test_train_model_reports_named_metrics_on_the_original_scale(name, model_splits):
    spec = training.MODEL_SPECS[name]
    trained = training.train_model(spec, model_splits[name], FAST)
    m = trained.metrics
    expected = {f"{split}_{metric}" for split in ("val", "test") for metric in spec.metrics}
    expected |= {f"cv_{spec.primary_metric}_mean", f"cv_{spec.primary_metric}_std"}
    assert expected <= set(m)
    assert all(math.isfinite(m[k]) for k in expected)
    assert trained.n_trials == FAST.n_trials
    # The benchmark's "LightGBM's own time" is measured inside the training, and is part of it.
    assert 0 < trained.lightgbm_seconds < trained.train_seconds
    assert set(trained.category_levels) == set(features.CATEGORICAL_FEATURES)
    test = model_splits[name]["test"]
    prediction = trained.predict(test)
    if spec.kind == "binary":
        assert m["test_roc_auc"] > 0.65
        assert ((prediction > 0) & (prediction < 1)).all()
    else:
        # Days, not log-days: the model's MAE is below the per-project median baseline's.
        assert m["test_mae"] < m["test_baseline_mae"]
        days = np.expm1(test["target"].to_numpy())
        assert m["test_mae"] == pytest.approx(np.mean(np.abs(prediction - days)))


def test_same_inputs_and_config_give_the_same_model(model_splits):
    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    first = training.train_model(spec, data, FAST)
    second = training.train_model(spec, data, FAST)
    assert first.params == second.params
    assert np.array_equal(first.predict(data["test"]), second.predict(data["test"]))
    assert first.metrics == second.metrics
    other_seed = training.train_model(spec, data, dataclasses.replace(FAST, seed=12))
    assert other_seed.params != first.params


def test_unseen_categories_score_as_missing(model_splits):
    spec = training.MODEL_SPECS["cycle_time"]
    data = model_splits["cycle_time"]
    trained = training.train_model(spec, data, FAST)
    rows = data["test"].head(5)
    unseen = rows.with_columns(pl.lit("a-project-never-seen").alias("project"))
    missing = rows.with_columns(pl.lit(None, pl.String).alias("project"))
    assert np.array_equal(trained.predict(unseen), trained.predict(missing))


def _with_target(frame: pl.DataFrame, values) -> pl.DataFrame:
    return frame.with_columns(pl.Series("target", values, dtype=pl.Float64))


BAD_DATA = {
    "too few labelled rows": (
        "late_risk",
        lambda s: {**s, "train": s["train"].head(20)},
        "only 20 labelled rows in train (need at least 50)",
    ),
    "a single class": (
        "late_risk",
        lambda s: {**s, "train": _with_target(s["train"], np.zeros(s["train"].height))},
        "the train split has a single class (0.0) in target",
    ),
    "NaN targets": (
        "late_risk",
        lambda s: {
            **s,
            "validation": _with_target(
                s["validation"], np.r_[[np.nan] * 3, s["validation"]["target"].to_numpy()[3:]]
            ),
        },
        "3 of {n_validation} validation targets are null, NaN or infinite",
    ),
    "infinite targets": (
        "cycle_time",
        lambda s: {**s, "test": _with_target(s["test"], np.r_[np.inf, s["test"]["target"].to_numpy()[1:]])},
        "1 of {n_test} test targets are null, NaN or infinite",
    ),
    "constant features": (
        "cycle_time",
        lambda s: {
            **s,
            "train": s["train"].with_columns(
                [pl.lit(1.0).alias(c) for c in features.NUMERIC_FEATURES]
                + [pl.lit("x").alias(c) for c in features.CATEGORICAL_FEATURES]
            ),
        },
        f"all {len(features.FEATURE_COLUMNS)} features are constant in train",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_training_data_is_refused_with_what_is_wrong(case, model_splits):
    name, corrupt, message = BAD_DATA[case]
    data = corrupt(model_splits[name])
    expected = message.format(n_validation=data["validation"].height, n_test=data["test"].height)
    with pytest.raises(training.TrainingDataError, match=f"^{name}: cannot train: .*{re.escape(expected)}"):
        training.train_model(training.MODEL_SPECS[name], data, FAST)


def test_floor_against_another_metric():
    floor = training.Floor("test_mae", "<", "test_baseline_mae")
    assert floor.check({"test_mae": 3.0, "test_baseline_mae": 4.0}) is None
    assert floor.check({"test_mae": 5.0, "test_baseline_mae": 4.0}) == (
        "test_mae=5.0000 fails floor < test_baseline_mae=4.0000"
    )
    assert "not finite" in training.Floor("test_roc_auc", ">=", 0.65).check({"test_roc_auc": float("nan")})


def test_cross_validation_folds_can_split_when_the_tuned_leaves_are_large(model_splits):
    """A fold trains on part of train: with the tuned min_data_in_leaf unscaled, small folds cannot split,
    every fold predicts a constant and the CV ROC-AUC reads exactly 0.5 (it did on the real Apache issues).
    """
    data = dict(model_splits["late_risk"])
    data["train"] = data["train"].head(300)
    config = dataclasses.replace(FAST, min_data_in_leaf=(130, 130), bagging_fraction=(1.0, 1.0), n_trials=1)
    trained = training.train_model(training.MODEL_SPECS["late_risk"], data, config)
    assert trained.params["min_data_in_leaf"] == 130  # folds of 150-250 rows: at most one leaf unscaled
    assert trained.metrics["cv_folds"] == 3
    assert trained.metrics["cv_roc_auc_mean"] > 0.6, trained.metrics
    assert trained.metrics["cv_roc_auc_std"] > 0


def test_trials_fit_the_latest_rows_then_the_best_is_refit_on_all_of_them(model_splits):
    """Past tune_rows the search fits the most recent train rows only; the kept model is fit on all of them."""
    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    n_train = data["train"].height
    lines: list[str] = []
    config = dataclasses.replace(FAST, tune_rows=n_train // 3)
    trained = training.train_model(spec, data, config, progress=lines.append)
    assert trained.metrics["tune_rows"] == n_train // 3
    refit = [line for line in lines if "refit" in line]
    assert (
        len(refit) == 1
        and f"all {n_train:,} train rows" in refit[0]
        and f"latest {n_train // 3:,}" in refit[0]
    )
    # the kept forest is the refit's: its length is what early stopping chose on all rows
    assert trained.booster.num_trees() == trained.params["num_boost_round"]
    assert trained.params["learning_rate"] >= config.refit_learning_rate  # a short forest on the many rows
    assert trained.metrics["test_roc_auc"] > 0.65
    again = training.train_model(spec, data, config)  # same config, same model
    assert np.array_equal(trained.predict(data["test"]), again.predict(data["test"]))
    assert (
        training.train_model(spec, data, dataclasses.replace(FAST, tune_rows=0)).metrics["tune_rows"]
        == n_train
    )


def test_a_refit_on_a_big_validation_split_judges_it_every_few_rounds(model_splits):
    """Past refit_eval_rows validation rows the refit computes its metric every (rows / refit_eval_rows)
    rounds (issue 14: LightGBM's AUC sorts all scores each time): the kept forest is the best of those
    rounds; judged every round it is lgb.train's early-stopped one.
    """
    import lightgbm as lgb

    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    feats = spec.feature_columns()
    levels = training.category_levels(data["train"], training.categorical_columns(data["train"], feats))
    rows = lgb.Dataset(
        training.to_matrix(data["train"], feats, levels),
        data["train"]["target"].to_numpy(),
        free_raw_data=False,
    ).construct()
    validation = lgb.Dataset(
        training.to_matrix(data["validation"], feats, levels),
        data["validation"]["target"].to_numpy(),
        reference=rows,
    ).construct()
    params = {**training._base_params(spec, FAST), "learning_rate": 0.3, "num_leaves": 15}
    reference = lgb.train(
        params, rows, num_boost_round=300, valid_sets=[validation], valid_names=["validation"],
        callbacks=[lgb.early_stopping(20, verbose=False)],
    )  # fmt: skip
    every_round = training._early_stopped_every(params, rows, validation, 300, 1, 20, spec.eval_metric)
    assert every_round.best_iteration == reference.best_iteration
    assert every_round.best_score == {"validation": {"auc": reference.best_score["validation"]["auc"]}}
    assert (
        every_round.model_to_string(num_iteration=every_round.best_iteration).split("parameters:")[0]
        == (reference.model_to_string(num_iteration=reference.best_iteration).split("parameters:")[0])
    )
    coarse = training._early_stopped_every(params, rows, validation, 300, 7, 20, spec.eval_metric)
    judged = [i for i in range(7, coarse.current_iteration() + 1, 7)] + [coarse.current_iteration()]
    assert coarse.best_iteration in judged
    assert coarse.current_iteration() < 300  # it stopped early
    assert coarse.current_iteration() - coarse.best_iteration < 20 + 7
    scores = {
        i: training.score(spec, data["validation"]["target"].to_numpy(), coarse.predict(
            training.to_matrix(data["validation"], feats, levels), num_iteration=i), "val")["val_roc_auc"]
        for i in judged
    }  # fmt: skip
    assert scores[coarse.best_iteration] == max(scores.values())
    # the graph's setting: every round below 50,000 validation rows (100k tasks), every 5 at 1M's 242k
    assert max(1, round(242_367 / FAST.refit_eval_rows)) == 5 and round(20_000 / FAST.refit_eval_rows) == 0


def test_a_refit_on_many_rows_builds_histograms_row_wise_and_grows_the_same_forest(model_splits, monkeypatch):
    """ROW_WISE_MIN_ROWS only picks LightGBM's faster histogram layout: the trees are the same."""
    spec = training.MODEL_SPECS["cycle_time"]
    data = model_splits["cycle_time"]
    config = dataclasses.replace(FAST, tune_rows=data["train"].height // 3)
    columns = training.train_model(spec, data, config)
    monkeypatch.setattr(training, "ROW_WISE_MIN_ROWS", 1)
    rows = training.train_model(spec, data, config)
    assert columns.params["force_col_wise"] and "force_row_wise" not in columns.params
    assert rows.params["force_row_wise"] and not rows.params["force_col_wise"]
    trees = lambda model: model.model_string.split("parameters:")[0]  # noqa: E731
    assert trees(rows) == trees(columns)
    assert np.array_equal(rows.predict(data["test"]), columns.predict(data["test"]))


def test_the_refit_grows_the_same_forest_on_two_threads_as_on_one(model_splits):
    """refit_threads only changes the speed: the model (but for its recorded thread count) is the same."""
    spec = training.MODEL_SPECS["cycle_time"]
    data = model_splits["cycle_time"]
    config = dataclasses.replace(FAST, tune_rows=data["train"].height // 3)
    two = training.train_model(spec, data, dataclasses.replace(config, refit_threads=2))
    one = training.train_model(spec, data, dataclasses.replace(config, refit_threads=1))

    def without_threads(model: training.TrainedModel) -> str:
        return "\n".join(
            line for line in model.model_string.splitlines() if not line.startswith("[num_threads:")
        )

    assert two.params["num_threads"] == 2 and one.params["num_threads"] == 1
    assert without_threads(two) == without_threads(one)
    assert np.array_equal(two.predict(data["test"]), one.predict(data["test"]))


def test_past_many_times_the_tuning_rows_the_refit_grows_its_trees(model_splits):
    """The refit's trees get sqrt(rows beyond refit_grow_from x tune rows) times the tuned leaves, capped."""
    config = dataclasses.replace(FAST, refit_grow_from=10.0, refit_max_leaves=64)
    assert training.refit_leaves(8, 952_027, 20_000, config) == 17  # 1M tasks: 4.76x beyond -> x2.18
    assert training.refit_leaves(6, 93_000, 20_000, config) == 6  # 100k: 4.6x the tuning rows, kept
    assert training.refit_leaves(40, 10_000_000, 20_000, config) == 64  # capped
    assert training.refit_leaves(8, 952_027, 20_000, dataclasses.replace(config, refit_grow_from=0)) == 8
    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    n_train, tune = data["train"].height, data["train"].height // 8
    lines: list[str] = []
    grown = training.train_model(
        spec, data, dataclasses.replace(config, tune_rows=tune, refit_grow_from=2.0), progress=lines.append
    )
    (refit,) = [line for line in lines if "refit" in line]
    tuned = int(refit.split("(tuned: ")[1].split(")")[0])
    expected = max(tuned, min(round(tuned * (n_train / (tune * 2.0)) ** 0.5), 64))
    assert f"{expected} leaves a tree" in refit, refit
    # the kept forest is the grown one (its parameters say so, its trees have up to that many leaves)
    assert grown.params["num_leaves"] == expected
    assert max(t["num_leaves"] for t in grown.booster.dump_model()["tree_info"]) <= expected
    # ... and stops by twice the best trial's rounds
    trial_rounds = int(refit.split("(the best trial: ")[1].split(")")[0])
    assert f"at most {2 * trial_rounds:,} rounds" in refit
    assert grown.booster.num_trees() <= 2 * trial_rounds
    assert grown.metrics["test_roc_auc"] > 0.65


def test_trials_fit_two_at_a_time_are_the_same_search_on_every_run(model_splits):
    """parallel_trials asks trials in pairs and tells them in order: TPE's random first 10 trials are the
    ones a one-at-a-time search draws, every run gives the same model, and progress comes in trial order.
    """
    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    config = dataclasses.replace(FAST, n_trials=12, cv_folds=0, prune_every=0)  # pruning: the next test
    runs: dict[str, list[str]] = {"one": [], "two": [], "two again": []}
    models = {
        label: training.train_model(
            spec,
            data,
            dataclasses.replace(config, parallel_trials=1 if label == "one" else 2),
            runs[label].append,
        )
        for label in runs
    }

    def values(lines: list[str]) -> list[str]:
        return [line.split(" validation ")[1].split(",")[0] for line in lines if ": trial " in line]

    assert [line.split(" validation ")[0] for line in runs["two"] if ": trial " in line] == [
        f"late_risk: trial {i}/12" for i in range(1, 13)
    ]
    assert values(runs["two"])[:10] == values(runs["one"])[:10]  # the random start: the same trials
    assert values(runs["two again"]) == values(runs["two"])
    assert models["two again"].model_string == models["two"].model_string
    with pytest.raises(ValueError, match="parallel_trials >= 1"):
        training.train_model(spec, data, dataclasses.replace(config, parallel_trials=0))


def _trained(spec, data, configs: dict) -> tuple[dict, dict[str, list[str]]]:
    """`spec` trained once per labelled config: the models and each one's progress lines, by label."""
    lines: dict[str, list[str]] = {label: [] for label in configs}
    models = {
        label: training.train_model(spec, data, config, lines[label].append)
        for label, config in configs.items()
    }
    return models, lines


def test_trials_behind_the_median_are_pruned_and_the_search_stays_the_same(model_splits):
    """A trial that trails the finished trials' median at a checked round stops there: it is counted and
    reported as pruned, the best trial is a finished one, and two runs give the same search and model.
    """
    spec = training.MODEL_SPECS["cycle_time"]
    data = model_splits["cycle_time"]
    config = dataclasses.replace(FAST, n_trials=12, cv_folds=0, prune_every=1, prune_startup_trials=3,
                                 prune_warmup_rounds=1)  # fmt: skip
    models, lines = _trained(
        spec,
        data,
        {"first": config, "second": config, "unpruned": dataclasses.replace(config, prune_every=0)},
    )
    pruned = [line for line in lines["first"] if " pruned at round " in line]
    assert pruned, lines["first"]
    assert all("/12 pruned at round " in line and "behind the median" in line for line in pruned)
    assert len([line for line in lines["first"] if ": trial " in line]) == models["first"].n_trials == 12
    strip = lambda text: [line.rsplit(", ", 1)[0] for line in text if ": trial " in line]  # noqa: E731
    assert strip(lines["second"]) == strip(lines["first"])  # the same trials pruned at the same rounds
    assert models["second"].model_string == models["first"].model_string
    assert not any(" pruned at round " in line for line in lines["unpruned"])
    assert models["first"].metrics["test_mae"] > 0


def test_train_model_judges_a_big_validation_split_every_few_rounds_in_its_refit(model_splits):
    """train_model hands the refit to the every-few-rounds early stopping past refit_eval_rows."""
    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    every = 4
    config = dataclasses.replace(
        FAST,
        tune_rows=data["train"].height // 3,
        refit_eval_rows=data["validation"].height // every,
        sorted_metric_every=1,  # the rows' rule alone (the next test: AUC's own)
    )
    trained = training.train_model(spec, data, config)
    # the kept forest ends on a judged round (nothing here runs to the round cap)
    assert trained.params["num_boost_round"] % every == 0
    assert trained.booster.num_trees() == trained.params["num_boost_round"]
    assert trained.metrics["test_roc_auc"] > 0.65


def test_a_sorted_metric_is_judged_every_few_rounds_in_the_trials_and_the_refit(model_splits):
    """LightGBM's AUC sorts every validation score each time: late_risk's trials and refit judge it every
    sorted_metric_every rounds (their kept forests end on such a round), and pruning still stops trials at
    the checked rounds, the same way on every run; cycle_time's l1 is judged every round, its model the same.
    """
    spec = training.MODEL_SPECS["late_risk"]
    data = model_splits["late_risk"]
    every = 4
    config = dataclasses.replace(
        FAST, n_trials=10, cv_folds=0, tune_rows=data["train"].height // 3, sorted_metric_every=every,
        prune_every=8, prune_startup_trials=3, prune_warmup_rounds=1,
    )  # fmt: skip
    models, lines = _trained(
        spec,
        data,
        {
            "first": config,
            "second": config,
            "every round": dataclasses.replace(config, sorted_metric_every=1),
        },
    )
    refit = {label: next(line for line in text if " refit of " in line) for label, text in lines.items()}
    best_trial = {
        label: int(line.split("(the best trial: ")[1].split(")")[0]) for label, line in refit.items()
    }
    assert best_trial["first"] % every == 0
    assert models["first"].params["num_boost_round"] % every == 0
    assert models["first"].booster.num_trees() == models["first"].params["num_boost_round"]
    pruned = [line for line in lines["first"] if " pruned at round " in line]
    assert pruned, lines["first"]
    assert all(int(line.split(" pruned at round ")[1].split(" ")[0]) % 8 == 0 for line in pruned)
    strip = lambda text: [line.rsplit(", ", 1)[0] for line in text if ": trial " in line]  # noqa: E731
    assert strip(lines["second"]) == strip(lines["first"])
    assert models["second"].model_string == models["first"].model_string
    # judged every round, the kept rounds are LightGBM's own early stop: not all on multiples of `every`
    assert (
        models["every round"].metrics["test_roc_auc"] > 0.65
        and models["first"].metrics["test_roc_auc"] > 0.65
    )
    assert abs(models["every round"].metrics["test_roc_auc"] - models["first"].metrics["test_roc_auc"]) < 0.02

    ct = training.MODEL_SPECS["cycle_time"]
    ct_config = dataclasses.replace(config, tune_rows=model_splits["cycle_time"]["train"].height // 3)
    assert (
        training.train_model(ct, model_splits["cycle_time"], ct_config).model_string
        == training.train_model(
            ct, model_splits["cycle_time"], dataclasses.replace(ct_config, sorted_metric_every=1)
        ).model_string
    )
    with pytest.raises(ValueError, match="sorted_metric_every >= 1"):
        training.train_model(spec, data, dataclasses.replace(config, sorted_metric_every=0))
