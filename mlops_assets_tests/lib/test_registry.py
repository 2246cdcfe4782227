"""MLflow tracking, the champion/challenger gate, rollback and the served pyfunc, on SQLite stores."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlops_assets import __version__
from mlops_assets.lib import features, registry, splits, synthetic, training

FAST = training.TrainConfig(n_trials=3, seed=5, cv_folds=2)
SPEC = training.MODEL_SPECS["late_risk"]


@pytest.fixture
def client(mlflow_uri: str):
    """A client on this test's own store (conftest copies an initialized empty one)."""
    return registry.get_client(mlflow_uri)


@pytest.fixture(scope="module")
def data():
    tasks = synthetic.synthetic_tasks(3000, seed=7)
    history = features.History.from_tasks(tasks)
    frame = training.model_input(SPEC, tasks, features.build_features(tasks, history), history.as_of)
    return tasks, history, splits.time_split(frame)


@pytest.fixture(scope="module")
def good(data) -> training.TrainedModel:
    return training.train_model(SPEC, data[2], FAST)


@pytest.fixture(scope="module")
def weak(data) -> tuple[training.ModelSpec, training.TrainedModel]:
    """An older, weaker model: priority alone."""
    spec = dataclasses.replace(SPEC, features=("priority",))
    return spec, training.train_model(spec, data[2], FAST)


@pytest.fixture(scope="module")
def shuffled(data) -> training.TrainedModel:
    """Trained on shuffled train/validation labels (the test labels stay true)."""
    rng = np.random.default_rng(0)
    noisy = {
        name: frame.with_columns(pl.Series("target", rng.permutation(frame["target"].to_numpy())))
        if name != "test"
        else frame
        for name, frame in data[2].items()
    }
    return training.train_model(SPEC, noisy, FAST)


def _log(spec, trained, data, client, **kw) -> str:
    tasks, history, model_splits = data
    return registry.log_training_run(
        spec,
        trained,
        model_splits,
        tasks=tasks,
        history=history,
        tracking_uri=client.tracking_uri,
        dagster_run_id="run-0123456789",
        git_commit="abc1234",
        **kw,
    )


def _gate(spec, trained, data, client, **kw) -> registry.GateDecision:
    run_id = _log(spec, trained, data, client)
    return registry.register_and_gate(
        spec, run_id, trained.metrics, test=data[2]["test"], client=client, **kw
    )


def test_training_run_records_lineage_and_metrics(good, data, client):
    run_id = _log(SPEC, good, data, client)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == "run-0123456789"
    assert run.data.tags["git_commit"] == "abc1234"
    assert run.data.tags["mlops_assets_version"] == __version__  # the code that trained it (issue 17)
    assert run.data.tags["split_hash.test"] == splits.frame_hash(data[2]["test"])
    assert run.data.params["features"] == ",".join(features.FEATURE_COLUMNS)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(good.metrics["test_roc_auc"])
    contexts = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert set(contexts) == {"train", "validation", "test"}
    assert json.loads(contexts["train"].profile)["num_rows"] == data[2]["train"].height
    assert contexts["test"].digest == splits.frame_hash(data[2]["test"])[:16]
    assert "target" in contexts["test"].schema


def test_the_evaluation_takes_the_runs_logged_predictions_only_when_they_are_the_logged_models(
    good, data, client, mlflow_uri, tmp_path, caplog
):
    """The training's predictions on validation and test are logged with the run (issue 14: the evaluation
    predicted them again, 7.8 s at 1M); the evaluation uses them after checking a sample against the
    logged model, and predicts again when they are not that model's.
    """
    from mlops_assets.lib import reporting

    tasks, _, parts = data
    run_id = _log(SPEC, good, data, client)
    logged = registry.logged_predictions(run_id, mlflow_uri)
    for name in ("validation", "test"):
        rows = logged.filter(pl.col("split") == name).sort("row")
        assert rows["task_id"].to_list() == parts[name]["task_id"].to_list()
        assert np.array_equal(rows["prediction"].to_numpy(), good.predictions[name])
    model = registry.load_run_model(run_id, mlflow_uri)
    assert np.array_equal(model.predict_features(parts["test"]), good.predictions["test"])
    predicted = reporting.evaluate(SPEC, model, parts, tasks, tmp_path / "a")
    taken = reporting.evaluate(SPEC, model, parts, tasks, tmp_path / "b", logged=logged)
    assert taken.metrics == predicted.metrics
    # another model's predictions (a sampled row differs) are not taken: the evaluation predicts again
    wrong = logged.with_columns(
        pl.when(pl.col("row") == 0).then(pl.col("prediction") + 0.25).otherwise(pl.col("prediction"))
    )
    calls = []
    real = model.predict_features
    model.predict_features = lambda frame: calls.append(frame.height) or real(frame)
    again = reporting.evaluate(SPEC, model, parts, tasks, tmp_path / "c", logged=wrong)
    assert again.metrics == predicted.metrics
    assert parts["test"].height in calls and "not this model's" in caplog.text
    assert (
        registry.logged_predictions(
            _log(SPEC, dataclasses.replace(good, predictions={}), data, client), mlflow_uri
        )
        is None
    )


def test_first_candidate_becomes_champion_and_shuffled_labels_never_do(good, shuffled, data, client):
    first = _gate(SPEC, good, data, client)
    assert first.promoted and first.version == "1" and first.champion_version_before is None
    assert registry.champion_version("late_risk", client) == "1"

    noise = _gate(SPEC, shuffled, data, client)
    assert not noise.promoted
    assert noise.champion_version_before == "1"
    assert "fails floors: test_roc_auc=" in noise.reason and ">= 0.65" in noise.reason
    assert str(client.get_model_version_by_alias("late_risk", "challenger").version) == noise.version == "2"
    assert registry.champion_version("late_risk", client) == "1"
    version = client.get_model_version("late_risk", noise.version)
    assert version.tags["gate.decision"] == "rejected"
    assert version.tags["gate.reason"] == noise.reason
    assert client.get_run(version.run_id).data.tags["gate.reason"] == noise.reason


def test_shuffled_labels_are_not_promoted_even_without_a_champion(shuffled, data, client):
    decision = _gate(SPEC, shuffled, data, client)
    assert not decision.promoted
    assert registry.champion_version("late_risk", client) is None
    assert str(client.get_model_version_by_alias("late_risk", "challenger").version) == decision.version


def test_better_candidate_is_promoted_on_the_same_window_and_rollback_restores(good, weak, data, client):
    weak_spec, weak_model = weak
    old = _gate(weak_spec, weak_model, data, client, floors=())  # an old champion from before the floor
    assert old.promoted
    better = _gate(SPEC, good, data, client)
    assert better.promoted, better.reason
    assert better.champion_version_before == "1"
    # The champion was re-scored on the candidate's test rows (here the same rows it was tested on).
    assert better.champion_value == pytest.approx(weak_model.metrics["test_roc_auc"])
    assert "beats champion v1" in better.reason
    assert client.get_model_version("late_risk", "2").tags["previous_champion"] == "1"

    assert registry.rollback("late_risk", client) == ("2", "1")
    assert registry.champion_version("late_risk", client) == "1"
    assert client.get_model_version("late_risk", "2").tags["rolled_back_to"] == "1"
    with pytest.raises(registry.RegistryError, match="was the first champion"):
        registry.rollback("late_risk", client)


def test_gate_needs_the_candidate_test_window_once_a_champion_exists(good, data, client):
    _gate(SPEC, good, data, client)
    run_id = _log(SPEC, good, data, client)
    with pytest.raises(registry.RegistryError, match="same test window"):
        registry.register_and_gate(SPEC, run_id, good.metrics, client=client)
    assert [str(v.version) for v in client.search_model_versions("name='late_risk'")] == ["1"]


def test_rollback_without_a_champion_says_so(client):
    with pytest.raises(registry.RegistryError, match="has no champion"):
        registry.rollback("late_risk", client)


def test_a_run_that_fails_midway_is_failed_and_registers_nothing(good, data, client):
    broken = dataclasses.replace(good, booster=None)  # fails when the model is logged, the last step
    with pytest.raises(AttributeError):
        _log(SPEC, broken, data, client)
    (run,) = client.search_runs([client.get_experiment_by_name(registry.DEFAULT_EXPERIMENT).experiment_id])
    assert run.info.status == "FAILED"
    assert "test_roc_auc" in run.data.metrics  # it did get part-way
    with pytest.raises(registry.RegistryError, match="is FAILED: nothing is registered"):
        registry.register_and_gate(SPEC, run.info.run_id, good.metrics, test=data[2]["test"], client=client)
    assert client.search_registered_models() == []


def test_bad_training_data_logs_and_registers_nothing(data, client):
    tasks, history, model_splits = data
    single_class = {**model_splits, "train": model_splits["train"].with_columns(pl.lit(1.0).alias("target"))}
    with pytest.raises(training.TrainingDataError, match="single class"):
        trained = training.train_model(SPEC, single_class, FAST)
        _log(SPEC, trained, data, client)
    assert client.search_experiments(filter_string="name = 'task_models'") == []
    assert client.search_registered_models() == []


def test_served_champion_scores_raw_records_exactly_like_the_pipeline(good, data, client, mlflow_uri):
    from mlops_assets.lib import pyfunc

    tasks, _, model_splits = data
    _gate(SPEC, good, data, client)
    test_ids = model_splits["test"]["task_id"]
    records = pyfunc.wire_records(
        tasks.join(model_splits["test"].select("task_id"), on="task_id", how="semi")
    )
    records.loc[0, "created_at"] = "yesterday"  # one bad record: reported, the rest still scored
    workdir = Path(mlflow_uri.removeprefix("sqlite:///")).parent
    records.to_pickle(workdir / "records.pkl")
    script = (
        "import sys, mlflow.pyfunc, pandas as pd\n"
        "model = mlflow.pyfunc.load_model('models:/late_risk@champion')\n"
        "model.predict(pd.read_pickle(sys.argv[1])).to_pickle(sys.argv[2])\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri}
    subprocess.run(
        [sys.executable, "-c", script, str(workdir / "records.pkl"), str(workdir / "out.pkl")],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    import pandas as pd

    served = pl.from_pandas(pd.read_pickle(workdir / "out.pkl"))
    assert served.height == records.shape[0]
    bad = served.filter(pl.col("error").is_not_null())
    assert bad["task_id"].to_list() == [records.loc[0, "task_id"]]
    assert "created_at 'yesterday' is not an ISO 8601 timestamp" in bad["error"][0]
    pipeline = pl.DataFrame({"task_id": test_ids, "expected": good.predict(model_splits["test"])})
    joined = served.filter(pl.col("error").is_null()).join(pipeline, on="task_id")
    assert joined.height == records.shape[0] - 1
    assert np.array_equal(joined["prediction"].to_numpy(), joined["expected"].to_numpy())
