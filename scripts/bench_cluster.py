"""Per-step overhead of the cluster profile: the whole asset graph on Celery + DuckLake + MLflow server
versus the local profile (in-process, DuckDB file, SQLite), same sample and run config.

    .venv/bin/python scripts/bench_cluster.py [--tasks 1500]

Needs PostgreSQL and Redis binaries (scripts/ci_services.sh install). Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops_assets_tests.cluster.services import BIN, start_cluster, stop_services  # noqa: E402

RUN_CONFIG = {"ops": {f"models__{m}_candidate": {"config": {"n_trials": 2, "timeout_s": 30, "seed": 1, "cv_folds": 2}}
                      for m in ("late_risk", "cycle_time")}}


def step_timings(instance, run_id: str) -> dict[str, dict[str, float]]:
    import dagster as dg

    steps: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if not event or not entry.step_key:
            continue
        row = steps.setdefault(entry.step_key, {})
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and "Submitting celery task" in (entry.message or ""):
            row["submitted"] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_START:
            row["start"] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            row["end"] = entry.timestamp
    return steps


def main() -> None:
    import json

    from mlops_assets.lib import synthetic

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1500)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    cluster = start_cluster(root)
    try:
        synthetic.generate(root / "landing", n_tasks=args.tasks, seed=5)
        cluster.start_mlflow()
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        cluster.wait_workers_ready()
        cluster.wait_mlflow()
        t0 = time.perf_counter()
        out = cluster.materialize("*", RUN_CONFIG)
        cluster_wall = time.perf_counter() - t0
        assert out.returncode == 0, out.stderr[-3000:]
        instance = cluster.instance()
        run = instance.get_runs(limit=1)[0]
        steps = step_timings(instance, run.run_id)

        local_home = root / "local_home"
        local_home.mkdir()
        (local_home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))}
        env.update({"DAGSTER_HOME": str(local_home), "MLOPS_LANDING_DIR": str(root / "landing"),
                    "MLOPS_WAREHOUSE": str(root / "local.duckdb"), "MLOPS_REPORTS_DIR": str(root / "local_reports"),
                    "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local_mlflow.db'}",
                    "MLOPS_MLFLOW_ARTIFACTS": str(root / "local_artifacts")})
        t0 = time.perf_counter()
        local = subprocess.run([str(BIN / "dagster"), "asset", "materialize", "-m", "mlops_assets.definitions",
                                "--select", "*", "--config-json", json.dumps(RUN_CONFIG)], cwd=ROOT, env=env,
                               capture_output=True, text=True)
        local_wall = time.perf_counter() - t0
        assert local.returncode == 0, local.stderr[-3000:]
    finally:
        cluster.stop()
        stop_services(root)

    dispatch = sorted(s["start"] - s["submitted"] for s in steps.values() if "start" in s and "submitted" in s)
    durations = {k: s["end"] - s["start"] for k, s in steps.items() if "end" in s and "start" in s}
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- machine: {os.cpu_count()} cores, load average at end {os.getloadavg()}; Python {platform.python_version()}")
    print(f"- data: {args.tasks} synthetic tasks; run config {json.dumps(RUN_CONFIG['ops']['models__late_risk_candidate'])}")
    print(f"- whole graph (`dagster asset materialize --select '*'`, {len(durations)} steps): cluster profile "
          f"{cluster_wall:.1f} s, local profile {local_wall:.1f} s (both wall time including the CLI's start-up)")
    print(f"- dispatch latency (Celery task submitted -> step started in a worker): median "
          f"{statistics.median(dispatch):.2f} s, max {max(dispatch):.2f} s over {len(dispatch)} steps")
    print("\n| step | duration in the worker (s) |\n|---|---:|")
    for key, value in sorted(durations.items(), key=lambda kv: -kv[1]):
        print(f"| {key} | {value:.2f} |")


if __name__ == "__main__":
    main()
