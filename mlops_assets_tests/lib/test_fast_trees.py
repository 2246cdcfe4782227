"""fast_trees: compiled predictions bit-identical to LightGBM, compiled TreeSHAP equal to pred_contrib."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import itertools
import math

import lightgbm as lgb
import numpy as np
import pytest

from mlops_assets.lib import fast_trees

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("lleaves") is None,
    reason="lleaves/llvmlite are installed on Python 3.11-3.13 only (pyproject.toml)",
)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numerics with NaN and exact zeros, a category column (codes 0..5, NaN, unseen 9, negative)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    x[:, 1] = np.round(x[:, 1])  # many exact zeros
    x[rng.random(n) < 0.15, 0] = np.nan
    x[rng.random(n) < 0.1, 2] = np.nan
    x[:, 4] = rng.integers(0, 6, n).astype(float)
    y = (
        np.nan_to_num(x[:, 0]) * 0.5
        + np.nan_to_num(x[:, 2])
        - (x[:, 4] % 2)
        + x[:, 1] * x[:, 3]
        + rng.normal(scale=0.3, size=n)
    )
    return x, y


def _booster(
    objective: str, num_leaves: int, seed: int = 1, zero_as_missing: bool = False, rounds: int = 120
) -> lgb.Booster:
    x, y = _data(3000, seed)
    label = (y > np.median(y)).astype(float) if objective == "binary" else y
    params = {
        "objective": objective, "num_leaves": num_leaves, "learning_rate": 0.1, "min_data_in_leaf": 5,
        "verbose": -1, "seed": seed, "zero_as_missing": zero_as_missing, "cat_smooth": 1, "min_data_per_group": 5,
    }  # fmt: skip
    return lgb.train(params, lgb.Dataset(x, label, categorical_feature=[4]), num_boost_round=rounds)


def _probe(n: int = 4000) -> np.ndarray:
    x, _ = _data(n, 99)
    x[::50, 4] = 9.0  # a category never seen in training
    x[1::50, 4] = np.nan
    x[2::50, 4] = -1.0
    x[3::50, 1] = 1e-40  # LightGBM reads this as zero
    x[4::50, 3] = np.inf
    return x


@pytest.mark.parametrize(("objective", "num_leaves", "zero_as_missing"),
                         [("binary", 5, False), ("regression", 8, True), ("regression", 31, False)])  # fmt: skip
def test_compiled_predictions_are_bit_identical_to_lightgbm(objective, num_leaves, zero_as_missing, tmp_path):
    booster = _booster(objective, num_leaves, zero_as_missing=zero_as_missing, rounds=60)
    x = _probe(40_000)  # several blocks of rows shared by two threads
    compiled = fast_trees.compile_forest(booster.model_to_string(), tmp_path)
    expected = booster.predict(x)
    assert np.array_equal(compiled.predict(x, n_jobs=2), expected)
    assert np.array_equal(compiled.predict(x[:1]), expected[:1])  # one row, one thread
    # more than one block of trees (lleaves groups 34 at a time): the running sum must carry over
    assert booster.num_trees() > 34


def test_a_second_compile_loads_the_cache_and_another_model_gets_another_file(tmp_path):
    first = _booster("binary", 5)
    a = fast_trees.compile_forest(first.model_to_string(), tmp_path)
    b = fast_trees.compile_forest(first.model_to_string(), tmp_path)
    other = fast_trees.compile_forest(_booster("binary", 5, seed=2).model_to_string(), tmp_path)
    assert a.cache_file == b.cache_file != other.cache_file
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.cache_file.name, other.cache_file.name])
    x = _probe(200)
    assert np.array_equal(b.predict(x), first.predict(x))


@pytest.mark.parametrize(("objective", "num_leaves", "zero_as_missing"),
                         [("binary", 5, False), ("regression", 6, True), ("binary", 4, True),
                          ("regression", 13, False)])  # fmt: skip
def test_compiled_shap_equals_lightgbm_pred_contrib(objective, num_leaves, zero_as_missing, tmp_path):
    booster = _booster(objective, num_leaves, zero_as_missing=zero_as_missing, rounds=40)  # 2 blocks of trees
    x = _probe(40_000)
    expected = booster.predict(x, pred_contrib=True)
    got = fast_trees.compile_shap(booster.model_to_string(), tmp_path).contributions(x, n_jobs=2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)
    assert np.array_equal(got == 0.0, expected == 0.0)  # a feature a row's trees never use stays exactly 0
    # the contributions add up to the raw score, as SHAP values do
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(x, raw_score=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tree_index", [3, 17])
def test_the_shap_table_holds_the_shapley_values_of_every_decision_pattern(tree_index):
    """One tree, every decision pattern: the table row is the exact Shapley value of the path-dependent game."""
    booster = _booster("regression", 6, zero_as_missing=tree_index == 17)
    tree = booster.dump_model()["tree_info"][tree_index]["tree_structure"]
    nodes = fast_trees._internal_nodes(tree)
    features, table = fast_trees._tree_table(tree)
    assert features == sorted({n["split_feature"] for n in nodes}) and table.shape == (
        2 ** len(nodes),
        len(features),
    )

    def value(goes_left: list[bool], known: set[int], item: dict) -> float:
        if "split_index" not in item:
            return item["leaf_value"]
        left, right = item["left_child"], item["right_child"]
        if item["split_feature"] in known:
            return value(goes_left, known, left if goes_left[item["split_index"]] else right)
        count = lambda c: c.get("internal_count", c.get("leaf_count"))  # noqa: E731
        return (
            count(left) * value(goes_left, known, left) + count(right) * value(goes_left, known, right)
        ) / count(item)

    d = len(features)
    for pattern in range(2 ** len(nodes)):
        goes_left = [bool(pattern >> k & 1) for k in range(len(nodes))]
        for j, f in enumerate(features):
            others = [g for g in features if g != f]
            exact = sum(
                math.factorial(len(s)) * math.factorial(d - len(s) - 1) / math.factorial(d)
                * (value(goes_left, {*s, f}, tree) - value(goes_left, set(s), tree))
                for r in range(d) for s in itertools.combinations(others, r)
            )  # fmt: skip
            assert table[pattern, j] == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_the_shap_tables_are_built_once_and_loaded_from_the_cache(tmp_path, monkeypatch):
    booster = _booster("binary", 5)
    x = _probe(500)
    built = fast_trees.compile_shap(booster.model_to_string(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [built.cache_file.name]

    def no_build(tree):
        raise AssertionError("the tables were built again")

    monkeypatch.setattr(fast_trees, "_tree_table", no_build)
    loaded = fast_trees.compile_shap(booster.model_to_string(), tmp_path)
    assert np.array_equal(loaded.contributions(x), built.contributions(x))
    with pytest.raises(AssertionError, match="built again"):  # another model is not taken from this cache
        fast_trees.compile_shap(_booster("binary", 5, seed=2).model_to_string(), tmp_path)


def test_big_forests_build_their_tables_in_worker_processes_and_get_the_same_bytes(tmp_path, monkeypatch):
    """Past PARALLEL_TABLE_ENTRIES the trees are split over processes (issue 14): the same tables, in order."""
    dump = _booster("regression", 11, rounds=60).dump_model()
    alone = fast_trees._packed_tables(dump)
    monkeypatch.setattr(fast_trees.os, "cpu_count", lambda: 3)  # three parts, also on a one-core machine
    monkeypatch.setattr(fast_trees, "PARALLEL_TABLE_ENTRIES", 0)
    spawned = []

    class CountingPool(concurrent.futures.ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            spawned.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountingPool)
    split = fast_trees._packed_tables(dump)
    assert len(spawned) == 2 and 0 < sum(spawned) < 60  # two parts in workers, the first one here
    assert alone.keys() == split.keys()
    for name, values in alone.items():
        assert np.array_equal(values, split[name]), name


def test_sparse_category_codes_are_explained_and_a_huge_look_up_table_is_refused(tmp_path, monkeypatch):
    """Category codes far apart (0, 1000, ... 5000) take a look-up table that big per categorical node."""
    x, y = _data(3000, 1)
    x[:, 4] *= 1000
    params = {
        "objective": "regression",
        "num_leaves": 5,
        "verbose": -1,
        "seed": 1,
        "min_data_per_group": 5,
        "cat_smooth": 1,
    }
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[4]), num_boost_round=30)
    probe = _probe(2000)
    probe[:, 4] = np.where(np.isnan(probe[:, 4]), np.nan, probe[:, 4] * 1000)
    got = fast_trees.compile_shap(booster.model_to_string(), tmp_path).contributions(probe)
    np.testing.assert_allclose(got, booster.predict(probe, pred_contrib=True), rtol=1e-12, atol=1e-13)
    entries = fast_trees.shap_table_nodes(booster)
    monkeypatch.setattr(
        fast_trees, "MAX_TABLE_ENTRIES", entries
    )  # the tables fit, the 5,001-code look-ups do not
    assert fast_trees.shap_table_nodes(booster) is None


def test_big_trees_are_left_to_lightgbm(tmp_path):
    booster = _booster("regression", 31, rounds=10)
    assert fast_trees.shap_table_nodes(booster) is None
    with pytest.raises(ValueError, match="pred_contrib"):
        fast_trees.compile_shap(booster.model_to_string(), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-built left behind
    assert fast_trees.shap_table_nodes(_booster("binary", 5)) > 0


def test_a_matrix_of_the_wrong_width_is_refused(tmp_path):
    booster = _booster("binary", 5)
    compiled = fast_trees.compile_forest(booster.model_to_string(), tmp_path)
    with pytest.raises(ValueError, match="takes 5 columns"):
        compiled.predict(np.zeros((3, 4)))


def test_the_compiled_model_cache_follows_mlops_model_cache(monkeypatch, tmp_path):
    """On a cluster every worker points MLOPS_MODEL_CACHE at one shared folder: one compile per champion."""
    monkeypatch.setenv("MLOPS_MODEL_CACHE", str(tmp_path / "shared"))
    assert fast_trees.default_cache_dir() == tmp_path / "shared"
    monkeypatch.delenv("MLOPS_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fast_trees.default_cache_dir() == tmp_path / "xdg" / "mlops_assets" / "forests"
