"""Evaluation library: metrics against scikit-learn, calibration, slices, SHAP reasons, plots, HTML report."""

from __future__ import annotations

import base64
import struct
from html.parser import HTMLParser
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn import metrics as skm

from mlops_assets.lib.explain import (
    CYCLE_TIME_EFFECTS,
    Phrase,
    feature_importance_table,
    shap_contributions,
    top_reasons,
    top_reasons_arrays,
    top_reasons_table,
)
from mlops_assets.lib.metrics import (
    SKIPPED_METRIC,
    calibration_table,
    choose_threshold,
    classification_metrics,
    expected_calibration_error,
    median_baseline,
    metrics_by_slice,
    regression_metrics,
)
from mlops_assets.lib.report import (
    plot_calibration,
    plot_feature_importance,
    plot_pr,
    plot_residuals,
    plot_roc,
    write_evaluation_html,
)

# small inputs with tied scores, the case where hand-written curves usually drift from sklearn
Y_SMALL = np.array([0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1])
P_SMALL = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.35, 0.2, 0.6, 0.6, 0.05, 0.5])


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("threshold", [None, 0.35, 0.6, 0.0, 1.0])
def test_classification_metrics_match_sklearn(threshold):
    result = classification_metrics(Y_SMALL, P_SMALL, threshold)
    cut = 0.5 if threshold is None else threshold
    flagged = (P_SMALL >= cut).astype(int)
    assert result["n"] == 12 and result["threshold"] == cut
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(Y_SMALL, P_SMALL))
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(Y_SMALL, P_SMALL))
    assert result["brier"] == pytest.approx(skm.brier_score_loss(Y_SMALL, P_SMALL))
    assert result["log_loss"] == pytest.approx(skm.log_loss(Y_SMALL, P_SMALL))
    assert result["recall"] == pytest.approx(skm.recall_score(Y_SMALL, flagged))
    assert result["positive_rate"] == pytest.approx(0.5)
    assert result["predicted_positive_rate"] == pytest.approx(flagged.mean())
    if flagged.any():
        assert result["precision"] == pytest.approx(skm.precision_score(Y_SMALL, flagged))
        assert result["f1"] == pytest.approx(skm.f1_score(Y_SMALL, flagged))
    else:  # nothing flagged: precision is undefined, not 0
        assert result["precision"] is None
        assert result["f1"] == 0.0


def test_classification_metrics_match_sklearn_on_random_data():
    rng = np.random.default_rng(1)
    p = np.round(rng.random(3000), 2)  # many ties
    y = (rng.random(3000) < p).astype(int)
    result = classification_metrics(y, p)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, p))


def test_classification_metrics_accept_polars_and_bool_labels():
    from_polars = classification_metrics(pl.Series(Y_SMALL.astype(bool)), pl.Series(P_SMALL))
    assert from_polars == classification_metrics(Y_SMALL, P_SMALL)


@pytest.mark.parametrize(
    ("y", "p", "undefined"),
    [
        ([1, 1, 1], [0.2, 0.7, 0.9], {"roc_auc", "pr_auc"}),
        ([0, 0, 0, 0], [0.2, 0.7, 0.9, 0.1], {"roc_auc", "pr_auc", "recall"}),
        ([0, 0], [0.1, 0.2], {"roc_auc", "pr_auc", "recall", "precision", "f1"}),
        ([1], [0.9], {"roc_auc", "pr_auc"}),
        (
            [],
            [],
            {
                "roc_auc",
                "pr_auc",
                "recall",
                "precision",
                "f1",
                "brier",
                "log_loss",
                "ece",
                "positive_rate",
                "predicted_positive_rate",
                "mean_predicted",
            },
        ),
    ],
)
def test_degenerate_inputs_give_none_for_undefined_metrics_only(y, p, undefined):
    result = classification_metrics(y, p)
    assert {name for name, value in result.items() if value is None} == undefined
    assert result["n"] == len(y)


def test_single_class_keeps_the_metrics_that_exist():
    result = classification_metrics([0, 0, 0, 0], [0.2, 0.7, 0.9, 0.1])
    assert result["brier"] == pytest.approx(np.mean(np.square([0.2, 0.7, 0.9, 0.1])))
    assert result["precision"] == 0.0  # two flagged, none late


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 2], [0.1, 0.2], "0/1"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, np.nan], [0.1, 0.2], "1 missing"),
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
    ],
)
def test_invalid_binary_inputs_raise_clear_errors(y, p, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(y, p)


def test_choose_threshold_maximizes_f1_over_all_cuts():
    threshold = choose_threshold(Y_SMALL, P_SMALL)
    best = max(skm.f1_score(Y_SMALL, (P_SMALL >= cut).astype(int)) for cut in np.unique(P_SMALL))
    assert threshold in set(P_SMALL)
    assert classification_metrics(Y_SMALL, P_SMALL, threshold)["f1"] == pytest.approx(best)


def test_choose_threshold_prefers_the_highest_of_equal_cuts():
    # flagging at 0.8 or at 0.6 both catch the one positive with no false alarm beyond it
    assert choose_threshold([0, 1, 0], [0.1, 0.8, 0.6]) == 0.8


def test_choose_threshold_refuses_labels_without_positives():
    with pytest.raises(ValueError, match="no positive"):
        choose_threshold([0, 0, 0], [0.1, 0.5, 0.9])


# ---------------------------------------------------------------- calibration


def test_calibrated_synthetic_data_has_small_ece_and_miscalibrated_large():
    rng = np.random.default_rng(7)
    p = rng.random(50_000)
    calibrated = (rng.random(50_000) < p).astype(int)
    overconfident = (rng.random(50_000) < p**2).astype(int)
    table = calibration_table(calibrated, p)
    assert table.height == 10
    assert table["count"].sum() == 50_000
    assert table["count"].min() >= 4_900  # quantile bins hold about equal counts
    assert expected_calibration_error(table) < 0.02
    assert expected_calibration_error(calibration_table(overconfident, p)) > 0.1
    assert classification_metrics(calibrated, p)["ece"] == pytest.approx(expected_calibration_error(table))


def test_calibration_table_values_on_known_input():
    table = calibration_table([0, 1, 0, 1, 1, 1], [0.1, 0.1, 0.2, 0.2, 0.9, 0.9], n_bins=3)
    assert table.to_dicts() == [
        {"bin": 0, "prob_min": 0.1, "prob_max": 0.1, "mean_predicted": 0.1, "observed_rate": 0.5, "count": 2},
        {"bin": 1, "prob_min": 0.2, "prob_max": 0.2, "mean_predicted": 0.2, "observed_rate": 0.5, "count": 2},
        {"bin": 2, "prob_min": 0.9, "prob_max": 0.9, "mean_predicted": 0.9, "observed_rate": 1.0, "count": 2},
    ]
    assert expected_calibration_error(table) == pytest.approx((0.4 + 0.3 + 0.1) / 3)


def test_calibration_table_merges_tied_bins_and_handles_empty_input():
    tied = calibration_table([0, 1, 1, 0], [0.3, 0.3, 0.3, 0.3])
    assert tied.select("count", "observed_rate").rows() == [(4, 0.5)]
    empty = calibration_table([], [])
    assert empty.height == 0 and expected_calibration_error(empty) is None


# ---------------------------------------------------------------- regression


def test_regression_metrics_match_sklearn():
    y = np.array([1.0, 3.0, 10.0, 0.5, 7.0, 2.0])
    pred = np.array([2.0, 2.5, 6.0, 1.0, 7.5, 2.0])
    baseline = np.full(6, 3.0)
    result = regression_metrics(y, pred, baseline)
    assert result["n"] == 6
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert result["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert result["median_ae"] == pytest.approx(skm.median_absolute_error(y, pred))
    assert result["baseline_mae"] == pytest.approx(skm.mean_absolute_error(y, baseline))
    assert result["baseline_rmse"] == pytest.approx(skm.root_mean_squared_error(y, baseline))
    assert result["baseline_median_ae"] == pytest.approx(skm.median_absolute_error(y, baseline))
    assert result["mae_improvement"] == pytest.approx(1 - result["mae"] / result["baseline_mae"])


def test_regression_metrics_degenerate_cases():
    empty = regression_metrics([], [], [])
    assert empty["n"] == 0 and all(value is None for name, value in empty.items() if name != "n")
    perfect_baseline = regression_metrics([1.0, 2.0], [1.5, 2.0], [1.0, 2.0])
    assert perfect_baseline["baseline_mae"] == 0.0 and perfect_baseline["mae_improvement"] is None
    no_baseline = regression_metrics([1.0, 2.0], [1.5, 2.0])
    assert no_baseline["mae"] == 0.25 and no_baseline["baseline_mae"] is None
    with pytest.raises(ValueError, match="y_true_days has 1 missing"):
        regression_metrics([1.0, None], [1.0, 2.0])


def test_median_baseline_by_project_with_global_fallback_in_test_order():
    train = pl.DataFrame(
        {
            "project": ["A", "A", "A", "B", "B", "C"],
            "cycle_time_days": [1.0, 2.0, 9.0, 4.0, None, 100.0],
        }
    )
    test = pl.DataFrame({"project": ["B", "Z", "A", None, "C", "A"]})
    baseline = median_baseline(train, test)
    # global median of the labelled train rows [1, 2, 9, 4, 100] is 4
    assert baseline.to_list() == [4.0, 4.0, 2.0, 4.0, 100.0, 2.0]
    assert baseline.name == "baseline_cycle_time_days"


def test_median_baseline_explains_missing_columns_and_labels():
    with pytest.raises(ValueError, match="test_frame lacks column"):
        median_baseline(pl.DataFrame({"project": ["A"], "cycle_time_days": [1.0]}), pl.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="no non-null"):
        median_baseline(
            pl.DataFrame(
                {"project": ["A"], "cycle_time_days": [None]},
                schema_overrides={"cycle_time_days": pl.Float64},
            ),
            pl.DataFrame({"project": ["A"]}),
        )


# ---------------------------------------------------------------- slices


@pytest.fixture
def scored_tasks() -> pl.DataFrame:
    rng = np.random.default_rng(3)
    n_a, n_b, n_c = 60, 40, 5
    probability = rng.random(n_a + n_b + n_c)
    is_late = np.r_[
        (rng.random(n_a) < probability[:n_a]), np.zeros(n_b, bool), [True, False, True, True, False]
    ]
    return pl.DataFrame(
        {
            "source": ["jira"] * (n_a + n_b) + ["trello"] * n_c,
            "project": ["A"] * n_a + ["B"] * n_b + ["C"] * n_c,
            "priority": (["high", None] * 60)[: n_a + n_b + n_c],
            "is_late": is_late,
            "prediction": probability,
        }
    )


def test_binary_slices_compute_skip_and_mark_undefined(scored_tasks):
    slices = metrics_by_slice(
        scored_tasks, slice_columns=("project", "priority"), threshold=0.4, min_slice_size=30
    )
    assert slices.columns == ["slice_column", "slice_value", "metric", "value", "n"]

    project_a = scored_tasks.filter(pl.col("project") == "A")
    expected = classification_metrics(project_a["is_late"], project_a["prediction"], 0.4)
    got = dict(slices.filter(pl.col("slice_value") == "A").select("metric", "value").rows())
    assert got == {name: value for name, value in expected.items() if name not in ("n", "threshold")}

    # B has no late task: ranking metrics undefined, not an error and not a number
    b = dict(slices.filter(pl.col("slice_value") == "B").select("metric", "value").rows())
    assert b["roc_auc"] is None and b["recall"] is None and b["brier"] is not None

    # C (5 rows) is skipped and named, with its size
    assert slices.filter(pl.col("metric") == SKIPPED_METRIC).select(
        "slice_column", "slice_value", "n"
    ).rows() == [("project", "C", 5)]

    # every row lands in exactly one slice per column, null priorities included
    sizes = slices.unique(["slice_column", "slice_value"]).group_by("slice_column").agg(pl.col("n").sum())
    assert dict(sizes.rows()) == {"overall": 105, "project": 105, "priority": 105}
    assert set(slices.filter(pl.col("slice_column") == "priority")["slice_value"]) == {"high", "(missing)"}


def test_regression_slices_include_baseline_metrics():
    frame = pl.DataFrame(
        {
            "type": ["bug"] * 3 + ["story"] * 3,
            "cycle_time_days": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0],
            "prediction": [1.0, 2.0, 4.0, 12.0, 20.0, 30.0],
            "baseline": [2.0] * 3 + [20.0] * 3,
        }
    )
    slices = metrics_by_slice(
        frame,
        slice_columns=("type",),
        kind="regression",
        baseline_column="baseline",
        min_slice_size=3,
        include_overall=False,
    )
    story = dict(slices.filter(pl.col("slice_value") == "story").select("metric", "value").rows())
    assert story["mae"] == pytest.approx(2 / 3)
    assert story["baseline_mae"] == pytest.approx(20 / 3)
    assert story["mae_improvement"] == pytest.approx(0.9)


def test_slices_explain_missing_columns_and_bad_kind(scored_tasks):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['type'\]"):
        metrics_by_slice(scored_tasks)
    with pytest.raises(ValueError, match="kind must be"):
        metrics_by_slice(scored_tasks, slice_columns=("project",), kind="multiclass")


# ---------------------------------------------------------------- SHAP and reasons


@pytest.fixture(scope="module")
def task_features() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 600
    frame = pd.DataFrame(
        {
            "deadline_horizon_days": rng.integers(1, 40, n).astype(float),
            "assignee_open_tasks": rng.integers(0, 25, n).astype(float),
            "priority": pd.Categorical(rng.choice(["low", "medium", "high"], n)),
            "story_points": rng.choice([1.0, 2.0, 3.0, 5.0, np.nan], n),
            "unheard_of_signal": rng.normal(size=n),
        }
    )
    return frame


@pytest.fixture(scope="module")
def late_risk_booster(task_features) -> lgb.Booster:
    rng = np.random.default_rng(12)
    logit = 1.5 - 0.12 * task_features["deadline_horizon_days"] + 0.1 * task_features["assignee_open_tasks"]
    y = (rng.random(len(task_features)) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1, "seed": 1}
    return lgb.train(params, lgb.Dataset(task_features, y), num_boost_round=20)


def test_shap_contributions_sum_to_raw_score(late_risk_booster, task_features):
    contribs = shap_contributions(late_risk_booster, task_features)
    assert list(contribs.columns) == [*late_risk_booster.feature_name(), "base_value"]
    np.testing.assert_allclose(
        contribs.sum(axis=1), late_risk_booster.predict(task_features, raw_score=True), atol=1e-9
    )


def test_shap_contributions_sum_to_regression_prediction(task_features):
    target = 2 + 0.5 * task_features["deadline_horizon_days"].to_numpy()
    booster = lgb.train(
        {"objective": "regression", "num_leaves": 7, "verbose": -1},
        lgb.Dataset(task_features, target),
        num_boost_round=15,
    )
    contribs = shap_contributions(booster, task_features[list(reversed(task_features.columns))])
    np.testing.assert_allclose(contribs.sum(axis=1), booster.predict(task_features), atol=1e-9)


def test_shap_contributions_from_tables_are_pred_contrib_and_land_in_the_model_cache(
    late_risk_booster, task_features, tmp_path, monkeypatch
):
    """The evaluation's path: the SHAP tables (built into MLOPS_MODEL_CACHE, where the batch scores look)
    give LightGBM's pred_contrib, a categorical column and missing values included, in the frame's order.
    """
    from mlops_assets.lib import fast_trees

    if not fast_trees.available():
        pytest.skip("no native code here (lleaves/llvmlite): the tables path falls back to pred_contrib")
    monkeypatch.setenv("MLOPS_MODEL_CACHE", str(tmp_path))
    frame = task_features[list(reversed(task_features.columns))]
    tables = shap_contributions(late_risk_booster, frame, tables=True)
    exact = shap_contributions(late_risk_booster, frame)
    assert list(tables.columns) == list(exact.columns)
    np.testing.assert_allclose(tables.to_numpy(), exact.to_numpy(), rtol=0, atol=1e-12)
    assert fast_trees.shap_is_cached(late_risk_booster.model_to_string(), tmp_path)


def test_shap_contributions_name_missing_features(late_risk_booster, task_features):
    with pytest.raises(ValueError, match="assignee_open_tasks"):
        shap_contributions(late_risk_booster, task_features.drop(columns="assignee_open_tasks"))


def test_feature_importance_table_ranks_by_mean_abs_shap(late_risk_booster, task_features):
    contribs = shap_contributions(late_risk_booster, task_features)
    table = feature_importance_table(late_risk_booster, task_features, contribs)
    assert table.columns == ["feature", "mean_abs_shap", "share", "gain"]
    assert table["share"].sum() == pytest.approx(1.0)
    assert table["mean_abs_shap"].to_list() == sorted(table["mean_abs_shap"].to_list(), reverse=True)
    assert table["feature"][0] == "deadline_horizon_days"  # the strongest signal in the synthetic labels
    gains = dict(
        zip(
            late_risk_booster.feature_name(),
            late_risk_booster.feature_importance(importance_type="gain"),
            strict=True,
        )
    )
    assert dict(table.select("feature", "gain").rows()) == pytest.approx(gains)


def test_top_reasons_read_like_a_project_manager_would_say_them():
    contribs = {
        "deadline_horizon_days": 1.2,
        "assignee_open_tasks": 0.8,
        "priority": -0.5,
        "title_length": 0.01,
        "base_value": -1.0,
    }
    values = {"deadline_horizon_days": 3.0, "assignee_open_tasks": 14, "priority": "high", "title_length": 40}
    assert top_reasons(contribs, values) == [
        "deadline 3 days after creation raises the risk",
        "assignee already had 14 open tasks raises the risk",
        "high priority lowers the risk",
    ]


@pytest.mark.parametrize(
    ("feature", "value", "contribution", "expected"),
    [
        ("mystery_score", 0.374, 0.3, "mystery score (0.4) raises the risk"),
        ("mystery_score", None, 0.3, "mystery score not recorded raises the risk"),
        ("story_points", np.nan, -0.2, "no story points lowers the risk"),
        ("story_points", 1.0, -0.2, "1 story point lowers the risk"),
        ("project_late_rate", 0.372, 0.4, "the project's history of 37% late tasks raises the risk"),
        ("created_weekday", 5, 0.1, "created on a Friday raises the risk"),
        ("created_hour", 9, 0.1, "created at 09:00 raises the risk"),
        ("priority_ordinal", 5, -0.3, "highest priority lowers the risk"),
        ("original_estimate_h", 1.0, 0.2, "an estimate of 1 hour raises the risk"),
        ("deadline_horizon_days", 0.3, 0.9, "deadline under a day after creation raises the risk"),
        ("project", "ACME", 0.5, "project ACME raises the risk"),
        ("has_deadline", 1.0, 0.5, "a deadline was set raises the risk"),
        ("has_deadline", "false", -0.5, "no deadline was set lowers the risk"),
        ("assignee_open_tasks", 0, -0.5, "assignee had no other open tasks lowers the risk"),
        ("assignee_late_rate", None, 0.2, "no assignee deadline track record raises the risk"),
    ],
)
def test_top_reasons_phrases_and_fallback(feature, value, contribution, expected):
    assert top_reasons({feature: contribution, "base_value": 0.0}, {feature: value}) == [expected]


def test_top_reasons_merges_aliases_skips_zero_and_speaks_cycle_time():
    # priority and priority_ordinal are one thing: their contributions add, one sentence
    merged = top_reasons(
        {"priority": 0.3, "priority_ordinal": -0.5, "n_labels": 0.0},
        {"priority": "high", "priority_ordinal": 4, "n_labels": 2},
        k=3,
    )
    assert merged == ["high priority lowers the risk"]
    cycle = top_reasons({"assignee_open_tasks": 2.5}, {"assignee_open_tasks": 1}, effects=CYCLE_TIME_EFFECTS)
    assert cycle == ["assignee already had 1 open task adds to the expected time to finish"]


def test_top_reasons_accepts_extra_phrases():
    phrases = {"sprint_load": Phrase("a sprint {value} full", "percent")}
    assert top_reasons({"sprint_load": 0.2}, {"sprint_load": 0.95}, phrases=phrases) == [
        "a sprint 95% full raises the risk"
    ]


def test_top_reasons_table_matches_row_by_row(late_risk_booster, task_features):
    contribs = shap_contributions(late_risk_booster, task_features)
    table = top_reasons_table(contribs, task_features, k=3)
    assert table.columns == ["reason_1", "reason_2", "reason_3"] and table.height == len(task_features)
    for row in (0, 17, 599):
        expected = top_reasons(contribs.iloc[row], task_features.iloc[row].to_dict(), k=3)
        assert [reason for reason in table.row(row) if reason is not None] == expected
    first = table["reason_1"].to_list()
    assert all(reason.endswith(("raises the risk", "lowers the risk")) for reason in first)
    assert any(reason.startswith("deadline ") for reason in first)
    assert any(reason.startswith("unheard of signal (") for reason in table.to_series(2).drop_nulls())


def test_top_reasons_table_pads_when_k_exceeds_features():
    contribs = pd.DataFrame({"n_labels": [0.2, -0.1], "base_value": [0.0, 0.0]})
    table = top_reasons_table(contribs, pd.DataFrame({"n_labels": [0, 3]}), k=2)
    assert table.rows() == [("no labels raises the risk", None), ("3 labels lowers the risk", None)]


def test_top_reasons_table_checks_row_counts():
    with pytest.raises(ValueError, match="contribs has 2 rows but X has 1"):
        top_reasons_table(pd.DataFrame({"n_labels": [0.1, 0.2]}), pd.DataFrame({"n_labels": [1]}))


def test_top_reasons_table_on_no_rows_is_empty():
    table = top_reasons_table(
        pd.DataFrame({"n_labels": [], "base_value": []}), pd.DataFrame({"n_labels": []})
    )
    assert table.shape == (0, 3)


# ---------------------------------------------------------------- plots and report


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def plots(tmp_path_factory, late_risk_booster, task_features) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("plots")
    rng = np.random.default_rng(5)
    p = rng.random(400)
    y = (rng.random(400) < p).astype(int)
    importance = feature_importance_table(late_risk_booster, task_features)
    actual = rng.gamma(2, 5, 400)
    return {
        "ROC": plot_roc(y, p, folder / "roc.png"),
        "Precision-recall": plot_pr(y, p, folder / "pr.png"),
        "Calibration": plot_calibration(calibration_table(y, p), folder / "calibration.png"),
        "Feature importance": plot_feature_importance(importance, folder / "nested" / "importance.png"),
        "Residuals": plot_residuals(actual, actual + rng.normal(0, 2, 400), folder / "residuals.png"),
    }


def test_plots_are_small_png_files(plots):
    for name, path in plots.items():
        width, height = _png_size(path)
        assert 300 <= width <= 1200 and 200 <= height <= 800, name
        assert path.stat().st_size < 150_000, name


def test_plots_survive_degenerate_inputs(tmp_path):
    for path in (
        plot_roc([1, 1], [0.2, 0.9], tmp_path / "roc.png"),
        plot_pr([], [], tmp_path / "pr.png"),
        plot_calibration(calibration_table([], []), tmp_path / "cal.png"),
        plot_residuals([], [], tmp_path / "res.png"),
    ):
        _png_size(path)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_html_report_embeds_plots_metrics_and_slices(plots, scored_tasks, tmp_path):
    metrics = classification_metrics(scored_tasks["is_late"], scored_tasks["prediction"])
    slices = metrics_by_slice(scored_tasks, slice_columns=("project",))
    page = write_evaluation_html("late_risk <v3>", metrics, slices, plots, tmp_path / "report" / "late.html")
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "late_risk &lt;v3&gt;" in text

    parser = _Images()
    parser.feed(text)
    assert parser.sources == [
        "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode() for path in plots.values()
    ]
    assert "<td>roc_auc</td>" in text and f"<td>{metrics['roc_auc']:.4g}</td>" in text
    assert "<th>slice_value</th>" in text and "<td>A</td>" in text
    assert "Too small to evaluate: project=C (n=5)" in text
    assert "n/a" in text  # project B's undefined roc_auc


def test_a_reason_list_never_says_the_same_words_twice():
    """An unassigned task's assignee history features all read "no assignee": it is said once, the next
    distinct reasons fill the list, in the table and the numpy path alike.
    """
    features = [
        "assignee_n_outcomes",
        "assignee_n_resolved",
        "assignee_open_tasks",
        "n_reassignments",
        "age_days",
    ]
    contribs = np.array([[0.5, 0.4, 0.3, 0.2, 0.1, 0.0]])
    values = np.array([[np.nan, np.nan, np.nan, 2.0, 30.0]])
    got = [column[0] for column in top_reasons_arrays(contribs, values, features)]
    assert got == [
        "no assignee raises the risk",
        "reassigned twice raises the risk",
        "open for 30 days raises the risk",
    ]
    table = top_reasons_table(
        pd.DataFrame(contribs[:, :5], columns=features), pd.DataFrame(values, columns=features)
    )
    assert table.row(0) == tuple(got)


def test_reasons_of_a_few_rows_are_the_words_of_the_vectorised_path():
    """Online requests (up to 8 rows) are worded row by row; every row must read exactly as in a batch:
    numbers bucketed, categories by their level, flags, missing values, zero and negative contributions,
    ties, and the same words from several features said once.
    """
    from mlops_assets.lib import explain
    from mlops_assets.lib import features as features_lib

    features = [*features_lib.NUMERIC_FEATURES, *features_lib.CATEGORICAL_FEATURES]
    levels = {name: [f"{name}-{i}" for i in range(5)] for name in features_lib.CATEGORICAL_FEATURES}
    rng = np.random.default_rng(14)
    n = 400
    values = rng.gamma(1.5, 20.0, size=(n, len(features))) * rng.choice(
        [-1.0, 0.0, 0.01, 1.0], size=(n, len(features))
    )
    values[rng.random(values.shape) < 0.2] = np.nan
    for j, name in enumerate(features):
        if name in levels:
            values[:, j] = np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 5, n))
    contribs = rng.normal(size=(n, len(features) + 1)) * (rng.random((n, len(features) + 1)) < 0.5)
    contribs[::7, :] = np.round(contribs[::7, :], 1)  # ties
    contribs[::11, :] = 0.0  # nothing to say
    for effects in (explain.RISK_EFFECTS, explain.CYCLE_TIME_EFFECTS):
        batch = explain.top_reasons_arrays(contribs, values, features, levels, k=3, effects=effects)
        assert n > explain._FEW_ROWS  # the vectorised path
        for start in range(0, n, 5):
            few = explain.top_reasons_arrays(contribs[start : start + 5], values[start : start + 5], features,
                                             levels, k=3, effects=effects)  # fmt: skip
            assert few == [column[start : start + 5] for column in batch]
        assert sum(text is not None for text in batch[0]) > 300 and batch[2].count(None) < n
