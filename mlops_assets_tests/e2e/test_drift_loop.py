"""The self-healing loop with the REAL Dagster daemon: drifted batch -> ingestion -> drift -> one retrain -> gate -> scores.

A temporary instance (DAGSTER_HOME with the repo's dagster.yaml), warehouse, landing zone, reports and MLflow
store; `make run` is done in-process on 1,500 tasks, then `mlops-assets drift-demo` lands a drifted batch,
starts `dagster-daemon run`, waits for the loop and stops the daemon. The test then reads the instance.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.lib import monitoring, synthetic
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets_tests.conftest import ROOT

MAIN_TASKS = 1500
DRIFT_TASKS = 600
FAST = {"n_trials": 2, "timeout_s": 60, "seed": 1, "cv_folds": 2}


@pytest.mark.slow
def test_a_drifted_batch_is_detected_and_retrained_on_exactly_once(tmp_path, empty_mlflow_store):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    (tmp_path / "mlflow").mkdir()
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow" / "mlflow.db")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MLOPS_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "MLOPS_LANDING_DIR": str(tmp_path / "landing"),
        "MLOPS_REPORTS_DIR": str(tmp_path / "reports"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        "MLOPS_MLFLOW_ARTIFACTS": str(tmp_path / "mlflow" / "artifacts"),
        "MLOPS_RETRAIN_TRIALS": "3",
        "MLOPS_RETRAIN_COOLDOWN_S": "3600",
        "MLOPS_ALERT_WEBHOOK": "",
        "MLOPS_SENSOR_INTERVAL_S": "10",  # retrain, alert and re-measure sensors; the automation ticks every 30 s
    }
    mp = pytest.MonkeyPatch()
    for key, value in env.items():
        if key.startswith(("DAGSTER_", "MLOPS_", "MLFLOW_")):
            mp.setenv(key, value)
    try:
        # `make run`, in-process against the temporary instance
        from mlops_assets.definitions import build_resources, defs

        synthetic.generate(tmp_path / "landing", n_tasks=MAIN_TASKS, seed=5, main_tasks=MAIN_TASKS)
        instance = dg.DagsterInstance.get()
        ops = {f"models__{m}_candidate": {"config": FAST} for m in ("late_risk", "cycle_time")}
        made = dg.materialize(
            list(defs.assets),
            instance=instance,
            run_config=dg.RunConfig(ops=ops),
            resources=build_resources(
                env["MLOPS_WAREHOUSE"], env["MLOPS_LANDING_DIR"], env["MLOPS_REPORTS_DIR"]
            ),
        )
        assert made.success

        demo = subprocess.run(
            [
                str(Path(sys.executable).parent / "mlops-assets"),
                "drift-demo",
                "--tasks",
                str(DRIFT_TASKS),
                "--main-tasks",
                str(MAIN_TASKS),
                "--seed",
                "5",
                "--timeout",
                "600",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=720,
            start_new_session=True,
        )
        print(demo.stdout[-6000:], demo.stderr[-3000:])
        assert demo.returncode == 0, demo.stdout[-3000:]
        assert "drift check FAILED (ERROR)" in demo.stdout
        assert "the loop completed" in demo.stdout

        runs = instance.get_runs(dg.RunsFilter(tags={"mlops/trigger": "retrain"}))
        assert len(runs) == 1, [r.run_id for r in runs]  # exactly one retraining run for the drift event
        [retrain] = runs
        assert monitoring.DRIFT_CHECK in retrain.tags["mlops/failed_checks"]

        check = dg.AssetCheckKey(dg.AssetKey(["monitoring", "data_drift"]), monitoring.DRIFT_CHECK)
        history = instance.event_log_storage.get_asset_check_execution_history(check, limit=20)
        failed = [h for h in history if h.status.value == "FAILED"]
        # drift was measured again after the retraining (still drifted), and the sensor did not retrain again
        assert len(failed) >= 2
        evaluated = [h.event.timestamp for h in failed if h.event is not None]
        assert max(evaluated) > instance.get_run_record_by_id(retrain.run_id).end_time

        wh = Warehouse(env["MLOPS_WAREHOUSE"])
        if retrain.status == dg.DagsterRunStatus.SUCCESS:
            decisions = wh.read_table("models.late_risk_champion")
            assert (
                decisions.height == 2
            )  # the first champion and the retrained candidate, each with its reason
            assert "gate late_risk: " in demo.stdout
        else:  # a candidate stopped by its blocking check: the champion stays, and the demo says why
            assert retrain.status == dg.DagsterRunStatus.FAILURE
            assert "stopped by blocking check beats_naive_baseline" in demo.stdout
        scores = wh.read_table("serving.task_risk_scores")
        from mlops_assets.lib import registry

        champion = registry.champion_version("late_risk", registry.get_client(env["MLFLOW_TRACKING_URI"]))
        assert set(scores["late_risk_version"]) == {champion}
        projects = scores.join(wh.read_table("clean.tasks").select("task_id", "project"), on="task_id")[
            "project"
        ]
        assert (projects == "GROW").any()  # the drifted batch's new project is scored
    finally:
        mp.undo()
