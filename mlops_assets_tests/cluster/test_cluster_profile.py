"""The cluster profile on real services: PostgreSQL (Dagster instance, MLflow store, DuckLake catalog),
Redis + two Celery workers, an MLflow tracking server. Skips only when the binaries are absent.
"""

from __future__ import annotations

import os
import signal
import time

import dagster as dg
import polars as pl
import pytest

from mlops_assets.devtools.cluster_services import ServicesUnavailable, start_cluster, stop_services
from mlops_assets.lib import synthetic
from mlops_assets.lib.warehouse import Warehouse

pytestmark = pytest.mark.slow

MODELS = ("late_risk", "cycle_time")
FAST = {"n_trials": 2, "timeout_s": 30, "seed": 1, "cv_folds": 2}
RUN_CONFIG = {"ops": {f"models__{m}_candidate": {"config": FAST} for m in MODELS}}
SPLITS = [dg.AssetKey(["model_input", f"{m}_splits"]) for m in MODELS]
# Columns that record when a row was built, not what it says.
BUILD_TIME = {"ingested_at"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Services, an MLflow server and two Celery workers; the sample landed once (1,500 tasks)."""
    root = tmp_path_factory.mktemp("cluster")
    try:
        try:
            c = start_cluster(root)
        except ServicesUnavailable as exc:
            pytest.skip(str(exc))
        synthetic.generate(root / "landing", n_tasks=1500, seed=5)
        c.start_mlflow()
        c.start_worker("w1")
        c.start_worker("w2")
        yield c
    finally:
        if "c" in locals():
            c.stop()
        stop_services(root)


@pytest.fixture(scope="module")
def local(cluster):
    """The local profile (DuckDB file, in-process) on the same landing files: the reference."""
    from mlops_assets.definitions import build_resources, defs

    path = cluster.root / "local.duckdb"
    result = dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.groups("ingestion", "cleaning", "features")
        | dg.AssetSelection.assets(*SPLITS),
        resources=build_resources(
            str(path), str(cluster.root / "landing"), str(cluster.root / "local_reports")
        ),
    )
    assert result.success
    hashes = {
        key: _hashes(result.asset_materializations_for_node(key.to_python_identifier())[0].metadata)
        for key in SPLITS
    }
    return {"wh": Warehouse(path), "hashes": hashes}


@pytest.fixture(scope="module")
def full_run(cluster, local):
    """The whole asset graph materialized once in the cluster profile."""
    cluster.wait_workers_ready()
    cluster.wait_mlflow()
    out = cluster.materialize("*", RUN_CONFIG)
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def _hashes(metadata) -> dict[str, str]:
    return {k: v.value if hasattr(v, "value") else v for k, v in metadata.items() if k.endswith("_hash")}


def _lake(cluster) -> Warehouse:
    return Warehouse(cluster.env["MLOPS_WAREHOUSE"], data_path=cluster.env["MLOPS_WAREHOUSE_DATA_PATH"])


def _same_table(a: Warehouse, b: Warehouse, table: str, key: list[str]) -> None:
    left, right = a.read_table(table), b.read_table(table)
    cols = [c for c in left.columns if c not in BUILD_TIME]
    assert left.height > 0
    assert left.select(cols).sort(key).equals(right.select(cols).sort(key)), table


def _last_run(instance, before: set[str]):
    runs = [r for r in instance.get_runs() if r.run_id not in before]
    assert runs, "no new run in the instance"
    return runs[0]


def test_whole_graph_runs_on_several_celery_workers(cluster, full_run):
    instance = cluster.instance()
    run = instance.get_runs(limit=1)[0]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    logs = instance.all_logs(run.run_id)
    workers = {
        e.dagster_event.engine_event_data.metadata["Celery worker"].value
        for e in logs
        if e.dagster_event
        and e.dagster_event.event_type == dg.DagsterEventType.ENGINE_EVENT
        and "Celery worker" in (e.dagster_event.engine_event_data.metadata or {})
    }
    step_pids = {
        e.dagster_event.pid
        for e in logs
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_START
    }
    assert len(workers) == 2, workers  # w1@host and w2@host both ran steps
    assert len(step_pids) >= 2 and os.getpid() not in step_pids
    steps = {
        e.step_key
        for e in logs
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS
    }
    assert {"clean_tasks", "models__late_risk_champion", "serving__task_risk_scores"} <= steps


def test_cluster_tables_and_split_hashes_equal_the_local_profile(cluster, local, full_run):
    lake = _lake(cluster)
    _same_table(lake, local["wh"], "clean.tasks", ["task_id"])
    _same_table(lake, local["wh"], "clean.task_events", ["task_id", "event_id"])
    _same_table(lake, local["wh"], "features.task_features", ["task_id"])
    instance = cluster.instance()
    for key in SPLITS:
        event = instance.get_latest_materialization_event(key)
        cluster_hashes = _hashes(event.asset_materialization.metadata)
        assert cluster_hashes and cluster_hashes == local["hashes"][key]


def test_models_are_registered_in_the_mlflow_server(cluster, full_run):
    from mlflow import MlflowClient

    uri = cluster.env["MLFLOW_TRACKING_URI"]
    assert uri.startswith("http://127.0.0.1:")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = cluster.instance().get_runs(limit=1)[0]
    for model in MODELS:
        champion = client.get_model_version_by_alias(model, "champion")
        assert client.get_run(champion.run_id).data.tags["dagster_run_id"] == run.run_id
    scores = _lake(cluster).read_table("serving.task_risk_scores")
    assert scores.height > 0 and set(scores["late_risk_version"]) == {
        str(client.get_model_version_by_alias("late_risk", "champion").version)
    }


def test_model_artifacts_go_through_the_server_to_its_artifacts_destination(cluster, full_run):
    import subprocess
    import sys

    from mlflow import MlflowClient

    uri = cluster.env["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("late_risk", "champion")
    run = client.get_run(champion.run_id)
    # Proxied artifacts: the workers never wrote to a path of their own (MLOPS_MLFLOW_ARTIFACTS).
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    assert not (cluster.root / "client-artifacts").exists()
    stored = cluster.root / "mlflow-artifacts"  # the server's --artifacts-destination
    model_id = run.data.tags["model_id"]  # MLflow 3 keeps a logged model under models/<model id>/artifacts
    assert model_id and list(stored.glob(f"*/models/{model_id}/artifacts/MLmodel")), sorted(
        stored.rglob("MLmodel")
    )
    assert list(stored.rglob("evaluation/*"))  # the evaluation report went the same way
    # A client with only the server's address (no MLOPS_MLFLOW_ARTIFACTS, another folder) loads the champion.
    env = {k: v for k, v in cluster.env.items() if k != "MLOPS_MLFLOW_ARTIFACTS"}
    code = (
        "import sys; from mlops_assets.lib import registry; "
        "m = registry.load_champion('late_risk', sys.argv[1]); print(m.metadata.run_id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, uri],
        cwd=cluster.root / "landing",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == champion.run_id


def test_two_runs_at_the_same_time_both_succeed_without_lost_rows(cluster, full_run):
    import shutil

    from mlops_assets.definitions import build_resources, defs

    # A second batch lands (the workers read the landing zone and lake of their own environment).
    synthetic.generate(cluster.root / "batch2", n_tasks=400, seed=11)
    for source in (cluster.root / "batch2").iterdir():
        shutil.copytree(source, cluster.root / "landing" / source.name / "batch2")
    # Disjoint sources, shared bookkeeping tables (raw.ingested_files, raw.rejects) written by both.
    first = cluster.materialize(
        "raw/jira_tasks,raw/jira_events,raw/jira_comments,raw/trello_tasks,"
        "raw/trello_events,raw/trello_comments",
        wait=False,
    )
    second = cluster.materialize("raw/github_tasks,raw/asana_tasks,raw/csv_tasks", wait=False)
    for proc in (first, second):
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-4000:]
    # Then both rebuild the same clean and feature tables at once.
    both = [
        cluster.materialize(
            "clean/tasks,clean/task_events,clean/quarantine,features/task_features,features/task_snapshots",
            wait=False,
        )
        for _ in range(2)
    ]
    for proc in both:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-4000:]
    # The reference: the local profile ingesting both batches at once.
    path = cluster.root / "local_both.duckdb"
    assert dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.groups("ingestion", "cleaning", "features"),
        resources=build_resources(str(path), str(cluster.root / "landing")),
    ).success
    lake, reference = _lake(cluster), Warehouse(path)
    for table in (
        "raw.jira_tasks",
        "raw.github_tasks",
        "raw.trello_events",
        "raw.csv_tasks",
        "raw.ingested_files",
        "raw.rejects",
    ):
        assert lake.read_table(table).height == reference.read_table(table).height, table
    _same_table(lake, reference, "clean.tasks", ["task_id"])
    _same_table(lake, reference, "features.task_features", ["task_id"])
    assert (
        lake.read_table("features.task_snapshots").height
        == reference.read_table("features.task_snapshots").height
    )


def test_a_worker_killed_mid_step_fails_the_run_cleanly_and_the_next_run_succeeds(cluster, full_run):
    instance = cluster.instance()
    lake = _lake(cluster)
    before_rows = lake.read_table("models.late_risk_candidate").height
    before_runs = {r.run_id for r in instance.get_runs()}
    slow = {"ops": {"models__late_risk_candidate": {"config": {**FAST, "n_trials": 500, "timeout_s": 60}}}}
    proc = cluster.materialize("models/late_risk_candidate", slow, wait=False)
    step_pid, deadline = None, time.monotonic() + 120
    while step_pid is None and time.monotonic() < deadline:
        time.sleep(1)
        runs = [r for r in instance.get_runs() if r.run_id not in before_runs]
        if runs:
            starts = [e for e in instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)]
            step_pid = starts[0].dagster_event.pid if starts else None
    assert step_pid, "the training step never started"
    time.sleep(4)  # mid-training
    os.kill(step_pid, signal.SIGKILL)  # the worker process executing the step dies (e.g. the OOM killer)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode != 0
    failed = _last_run(instance, before_runs)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert "Worker exited prematurely" in err or "WorkerLostError" in err, err[-3000:]
    # Nothing half-written: the killed step added no row, and the table still reads whole.
    rows = lake.read_table("models.late_risk_candidate")
    assert rows.height == before_rows and failed.run_id not in set(rows["dagster_run_id"])
    # The next run (what the daemon's run retry does) succeeds on the surviving workers.
    again = cluster.materialize(
        "models/late_risk_candidate", {"ops": {"models__late_risk_candidate": {"config": FAST}}}
    )
    assert again.returncode == 0, again.stderr[-4000:]
    rows = lake.read_table("models.late_risk_candidate")
    assert rows.height == before_rows + 1
    assert (
        rows.filter(
            pl.col("dagster_run_id") == _last_run(instance, before_runs | {failed.run_id}).run_id
        ).height
        == 1
    )


@pytest.fixture
def daemon(cluster):
    """Start `dagster-daemon run` on demand (after the run is queued and the sensors stopped); stopped at teardown."""
    started = []
    yield lambda: started.append(cluster.start_daemon())
    for proc in started:
        cluster.stop_process(proc)


def _wait_for(what: str, get, timeout_s: float, log):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = get()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what} not within {timeout_s:.0f}s; daemon log:\n{log.read_text()[-3000:]}")


def test_a_queued_run_whose_worker_is_killed_is_retried_once_by_the_daemon(cluster, full_run, daemon):
    """Run retries (deploy/cluster/dagster.yaml): the daemon re-executes the lost step; no table is half-written."""
    from mlops_assets.definitions import build_resources, defs

    instance = cluster.instance()
    lake = _lake(cluster)
    before_rows = lake.read_table("models.late_risk_candidate").height
    # A search bounded by time (not trials), so the killed attempt is mid-way and the retry ends soon.
    slow = {"ops": {"models__late_risk_candidate": {"config": {**FAST, "n_trials": 500, "timeout_s": 10}}}}
    select = "features/task_features,features/task_snapshots,model_input/late_risk_splits,models/late_risk_candidate"
    run_id = cluster.launch(select, slow, stop_instigators=True)  # queued, as from the UI
    daemon()
    log = cluster.root / "daemon.log"

    def candidate_pid():
        starts = [
            e
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
            if e.step_key == "models__late_risk_candidate"
        ]
        return starts[0].dagster_event.pid if starts else None

    step_pid = _wait_for("the training step of the queued run", candidate_pid, 180, log)
    time.sleep(3)  # mid-training
    os.kill(step_pid, signal.SIGKILL)  # the Celery worker process running the step dies

    # The reference while the daemon retries: the local profile on the same landing files.
    path = cluster.root / "local_retry.duckdb"
    assert dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.groups("ingestion", "cleaning", "features")
        | dg.AssetSelection.assets(SPLITS[0]),
        resources=build_resources(str(path), str(cluster.root / "landing")),
    ).success

    def retried():
        group = instance.get_run_group(run_id)[1]
        done = [r for r in group if r.run_id != run_id and r.is_finished]
        return group if done else None

    group = _wait_for("the retry run", retried, 180, log)
    failed = instance.get_run_by_id(run_id)
    (retry,) = [r for r in group if r.run_id != run_id]  # exactly one retry
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert (
        failed.tags.get("dagster/failure_reason") == "RUN_EXCEPTION"
    )  # the worker was lost, no asset failed
    assert retry.status == dg.DagsterRunStatus.SUCCESS, instance.all_logs(retry.run_id)[-5:]
    assert retry.parent_run_id == run_id and retry.tags.get("dagster/retry_number") == "1"
    # From failure: features and splits succeeded in the first run; only the lost step ran again.
    ran = {e.step_key for e in instance.all_logs(retry.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
    assert ran == {"models__late_risk_candidate"}
    # Whole tables: the killed attempt wrote nothing, the retry one row; the earlier steps' tables match local.
    rows = lake.read_table("models.late_risk_candidate")
    assert rows.height == before_rows + 1
    assert rows.filter(pl.col("dagster_run_id") == retry.run_id).height == 1 and run_id not in set(
        rows["dagster_run_id"]
    )
    reference = Warehouse(path)
    for table in ("features.task_features", "model_input.late_risk_splits"):
        assert lake.read_table(table).height == reference.read_table(table).height, table
    time.sleep(6)  # one more tick of the daemon's retry loop: still no second retry
    assert len(instance.get_run_group(run_id)[1]) == 2
