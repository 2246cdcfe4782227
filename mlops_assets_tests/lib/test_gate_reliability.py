"""The gate and the MLflow store under concurrency and crashes, with real separate processes.

- Two processes on a fresh data folder create the store once and promote once (issue 16).
- Two gates comparing with the same old champion: one promotes, the other is re-decided (issue 12).
- A gate killed at every boundary between its writes converges when run again (issue 23).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_assets.lib import features, gate, registry, splits, synthetic, training
from mlops_assets.lib.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
FAST = training.TrainConfig(n_trials=2, seed=5, cv_folds=2)
SPEC = training.MODEL_SPECS["late_risk"]
WEAK_SPEC = dataclasses.replace(SPEC, features=("priority",))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A weak old champion and a better candidate on 2,000 generated tasks, pickled for the workers."""
    tasks = synthetic.synthetic_tasks(2000, seed=7)
    history = features.History.from_tasks(tasks)
    feats = features.build_features(tasks, history)
    parts = splits.time_split(training.model_input(SPEC, tasks, feats, history.as_of))
    good = training.train_model(SPEC, parts, FAST)
    weak = training.train_model(WEAK_SPEC, parts, FAST)
    path = tmp_path_factory.mktemp("gate_models") / "data.pkl"
    data = {"spec": SPEC, "trained": good, "splits": parts, "tasks": tasks, "history": history}
    path.write_bytes(pickle.dumps(data))
    return {**data, "weak": weak, "features": feats, "path": path}


def _start(jobs: list[dict], workdir: Path) -> list[subprocess.Popen]:
    """Start one worker per job, wait until all are ready, then let them go at once."""
    go = workdir / "go"
    procs = []
    for i, job in enumerate(jobs):
        job_path = workdir / f"job{i}.json"
        job_path.write_text(json.dumps({"go": str(go), "out": str(workdir / f"out{i}.json"), **job}))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlops_assets_tests.lib.gate_worker", str(job_path)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 120
    while not all((workdir / f"out{i}.ready").exists() for i in range(len(jobs))):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.02)
    go.touch()
    return procs


def _results(procs: list[subprocess.Popen], workdir: Path) -> list[dict]:
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    return [json.loads((workdir / f"out{i}.json").read_text()) for i in range(len(procs))]


def _log(models, uri: str, trained=None, spec=SPEC) -> str:
    return registry.log_training_run(
        spec,
        trained or models["trained"],
        models["splits"],
        tasks=models["tasks"],
        history=models["history"],
        tracking_uri=uri,
        artifacts_dir=Path(uri.removeprefix("sqlite:///")).parent / "artifacts",
    )


def test_two_runs_on_a_fresh_folder_create_the_store_once_and_promote_once(models, tmp_path):
    store = tmp_path / "data" / "mlflow"  # nothing exists yet: not even the folder
    uri = f"sqlite:///{store / 'mlflow.db'}"
    job = {
        "kind": "log_and_gate",
        "uri": uri,
        "artifacts": str(store / "artifacts"),
        "data": str(models["path"]),
    }
    first, second = _results(_start([job, job], tmp_path), tmp_path)
    winner, other = (first, second) if first["before"] is None else (second, first)
    assert winner["promoted"] and winner["before"] is None  # the first champion, decided once
    assert other["before"] == winner["version"] and not other["promoted"], other  # re-decided against it
    client = registry.get_client(uri)
    assert sorted(str(v.version) for v in client.search_model_versions("name='late_risk'")) == ["1", "2"]
    assert registry.champion_version("late_risk", client) == winner["version"]
    assert (
        len(client.search_runs([client.get_experiment_by_name(registry.DEFAULT_EXPERIMENT).experiment_id]))
        == 2
    )


@pytest.fixture(scope="module")
def champion_store(models, tmp_path_factory, empty_mlflow_store):
    """A store whose champion v1 is the weak model, a warehouse with its reference, and a better run logged."""
    root = tmp_path_factory.mktemp("gate_template")
    (root / "mlflow").mkdir()
    shutil.copy(empty_mlflow_store, root / "mlflow" / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    client = registry.get_client(uri)
    wh = Warehouse(root / "wh.duckdb")
    wh.replace_tables({"features.task_features": models["features"]})
    weak_run = _log(models, uri, models["weak"], WEAK_SPEC)
    old = registry.register_and_gate(WEAK_SPEC, weak_run, models["weak"].metrics, floors=(), client=client)
    gate.record_decision(wh, "late_risk", weak_run, old)  # an old champion from before the floor
    assert old.promoted and gate.converge_reference(wh, "late_risk", "1", client)[0] == "1"
    runs = [_log(models, uri), _log(models, uri)]
    return {"root": root, "runs": runs}


def _copy_store(champion_store, dest: Path) -> tuple[str, Warehouse]:
    shutil.copytree(champion_store["root"] / "mlflow", dest / "mlflow")
    shutil.copy(champion_store["root"] / "wh.duckdb", dest / "wh.duckdb")
    return f"sqlite:///{dest / 'mlflow' / 'mlflow.db'}", Warehouse(dest / "wh.duckdb")


def test_two_gates_against_the_same_champion_promote_once(models, champion_store, tmp_path):
    uri, _ = _copy_store(champion_store, tmp_path)
    jobs = [
        {"kind": "gate", "uri": uri, "data": str(models["path"]), "run_id": run}
        for run in champion_store["runs"]
    ]
    decisions = _results(_start(jobs, tmp_path), tmp_path)
    against_v1 = [d for d in decisions if d["before"] == "1"]
    assert len(against_v1) == 1 and against_v1[0]["promoted"], decisions  # only one compared with v1 ...
    (winner,), (other,) = against_v1, [d for d in decisions if d["before"] != "1"]
    assert other["before"] == winner["version"], decisions  # ... the other was re-decided against the new one
    assert not other["promoted"] and "does not beat champion v" + winner["version"] in other["reason"]
    client = registry.get_client(uri)
    assert registry.champion_version("late_risk", client) == winner["version"]
    assert str(client.get_model_version_by_alias("late_risk", "challenger").version) == other["version"]
    assert client.get_model_version("late_risk", winner["version"]).tags["previous_champion"] == "1"
    assert "previous_champion" not in client.get_model_version("late_risk", other["version"]).tags


def test_a_champion_moved_during_the_comparison_is_compared_again(models, champion_store, tmp_path):
    """The re-check just before the alias moves, against a writer that does not take the gate's lock."""
    uri, _ = _copy_store(champion_store, tmp_path)
    client = registry.get_client(uri)
    first, second = champion_store["runs"]
    winner = registry.register_and_gate(
        SPEC, first, models["trained"].metrics, test=models["splits"]["test"], client=client
    )
    client.set_registered_model_alias("late_risk", "champion", "1")  # an unlocked writer puts v1 back
    scored = []

    def score(version, c):
        if not scored:  # while the second gate compares with v1, the writer moves the alias again
            c.set_registered_model_alias("late_risk", "champion", winner.version)
        scored.append(version)
        return registry.champion_scorer(SPEC, models["splits"]["test"])(version, c)

    decision = registry.register_and_gate(
        SPEC, second, models["trained"].metrics, score_champion=score, client=client
    )
    assert scored == ["1", winner.version]
    assert not decision.promoted and decision.champion_version_before == winner.version
    assert registry.champion_version("late_risk", client) == winner.version


@pytest.fixture(scope="module")
def crashed(models, champion_store, tmp_path_factory):
    """One gate per boundary, each on its own copy of the store, SIGKILLed there (in forked workers)."""
    from mlops_assets_tests.lib.gate_worker import KILL_POINTS

    root = tmp_path_factory.mktemp("crashed")
    candidate = {"run_id": champion_store["runs"][0], "metrics": json.dumps(models["trained"].metrics)}
    copies = {point: _copy_store(champion_store, root / point) for point in KILL_POINTS}
    job = {
        "kind": "crash",
        "data": str(models["path"]),
        "candidate": candidate,
        "out": str(root / "out.json"),
        "targets": {
            point: {"uri": uri, "warehouse": str(wh.location)} for point, (uri, wh) in copies.items()
        },
    }
    (root / "job.json").write_text(json.dumps(job))
    subprocess.run(
        [sys.executable, "-m", "mlops_assets_tests.lib.gate_worker", str(root / "job.json")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert json.loads((root / "out.json").read_text()) == dict.fromkeys(KILL_POINTS, -signal.SIGKILL)
    return {"copies": copies, "candidate": candidate}


@pytest.mark.parametrize(
    "kill_at", ["version_created", "decision_tagged", "alias_moved", "registry_done", "decision_recorded"]
)
def test_a_gate_killed_at_any_boundary_converges_when_run_again(models, crashed, kill_at):
    uri, wh = crashed["copies"][kill_at]
    client = registry.get_client(uri)
    before_rerun = registry.champion_version("late_risk", client)
    assert before_rerun == ("2" if kill_at in ("alias_moved", "registry_done", "decision_recorded") else "1")
    if before_rerun == "2":  # the state of issue 23: the model that serves is not the one monitoring judges
        assert gate.reference_version(wh, "late_risk") == "1"

    out = gate.run_gate(SPEC, wh, client, crashed["candidate"], models["splits"])
    assert (
        out.decision.promoted and out.decision.version == "2" and out.decision.champion_version_before == "1"
    )
    assert out.consistent and registry.champion_version("late_risk", client) == "2" == out.reference
    assert gate.reference_version(wh, "late_risk") == "2"
    assert sorted(str(v.version) for v in client.search_model_versions("name='late_risk'")) == ["1", "2"]
    version = client.get_model_version("late_risk", "2")
    assert version.tags["gate.applied"] == "true" and version.tags["previous_champion"] == "1"
    assert client.get_run(crashed["candidate"]["run_id"]).data.tags["registered_version"] == "2"
    rows = wh.query(
        "SELECT run_id FROM models.late_risk_champion WHERE run_id = ?", [crashed["candidate"]["run_id"]]
    )
    assert rows.height == 1
    again = gate.run_gate(SPEC, wh, client, crashed["candidate"], models["splits"])  # and stays converged
    assert again.decision.reason.startswith("already decided") and again.consistent and again.reference == "2"


def test_a_reference_left_behind_is_rebuilt_by_the_next_gate_of_another_candidate(
    models, champion_store, tmp_path
):
    """Issue 23 as reported: the re-run trains a new candidate that stays challenger; the reference still converges."""
    uri, wh = _copy_store(champion_store, tmp_path)
    client = registry.get_client(uri)
    first, second = champion_store["runs"]
    registry.register_and_gate(
        SPEC, first, models["trained"].metrics, test=models["splits"]["test"], client=client
    )
    assert gate.reference_version(wh, "late_risk") == "1"  # as a crash before save_reference leaves it
    out = gate.run_gate(
        SPEC,
        wh,
        client,
        {"run_id": second, "metrics": json.dumps(models["trained"].metrics)},
        models["splits"],
    )
    assert not out.decision.promoted and out.champion == "2" == out.reference
    reference = wh.read_table("models.late_risk_reference")
    window = models["splits"]["train"]["created_at"]
    assert reference["created_at"].min() >= window.min() and reference["created_at"].max() <= window.max()
    assert reference["trained_as_of"][0] == models["history"].as_of

    registry.rollback("late_risk", client)  # a rollback is converged to as well, from the old champion's run
    assert (
        gate.converge_reference(wh, "late_risk", "1", client)[0]
        == "1"
        == gate.reference_version(wh, "late_risk")
    )
