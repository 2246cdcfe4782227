"""The whole asset graph in both profiles on the same landing files: per-step wall time and the cluster
profile's overhead per step.

    .venv/bin/python scripts/bench_cluster.py [--tasks 1500] [--profiles cluster,local]
        [--n-trials 1 --cv-folds 2] [--out /tmp/bench-cluster.md]

Both profiles run `dagster asset materialize -m mlops_assets.definitions --select '*'` with the same
run config for both trainings (a reduced search: --n-trials, --cv-folds), one profile after the other:
- cluster: PostgreSQL + Redis (scripts/ci_services.sh), an MLflow server on PostgreSQL, two Celery
  workers (--concurrency 1), a DuckLake warehouse, the PostgreSQL instance of deploy/cluster/dagster.yaml;
- local: the in-process executor, a DuckDB file, an MLflow SQLite store, a SQLite instance (dagster.yaml).
Step times come from each instance's event log (STEP_START -> STEP_SUCCESS). The load average is
sampled every 15 s while a profile runs. Prints markdown (and writes it to --out after each profile,
so a long run leaves its first half behind if the second fails). Needs PostgreSQL and Redis binaries
for the cluster profile (scripts/ci_services.sh install).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops_assets.devtools.cluster_services import BIN, start_cluster, stop_services  # noqa: E402

MODELS = ("late_risk", "cycle_time")


class LoadSampler:
    """os.getloadavg() every `every` seconds in a thread, until stopped."""

    def __init__(self, every: float = 15.0) -> None:
        self.every, self.samples, self._stop = every, [os.getloadavg()[0]], threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> str:
        s = self.samples
        return f"1-min load average min {min(s):.1f}, median {statistics.median(s):.1f}, max {max(s):.1f} ({len(s)} samples)"


def step_timings(instance, run_id: str) -> dict[str, dict[str, float]]:
    """Per step: Celery submission (cluster only), start and success timestamps from the event log."""
    import dagster as dg

    steps: dict[str, dict[str, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if not event or not entry.step_key:
            continue
        row = steps.setdefault(entry.step_key, {})
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and "Submitting celery task" in (
            entry.message or ""
        ):
            row["submitted"] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_START:
            row["start"] = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            row["end"] = entry.timestamp
    return steps


def run_graph(env: dict[str, str], run_config: dict, log: Path) -> tuple[float, int]:
    """The whole graph through the CLI; (wall seconds, return code). No timeout: a 1M run takes long."""
    cmd = [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "-m",
        "mlops_assets.definitions",
        "--select",
        "*",
        "--config-json",
        json.dumps(run_config),
    ]
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - t0, code


def bench_cluster(root: Path, landing: Path, run_config: dict) -> dict:
    cluster = start_cluster(root / "cluster")
    try:
        cluster.env["MLOPS_LANDING_DIR"] = str(landing)
        cluster.start_mlflow()
        cluster.start_worker("w1")
        cluster.start_worker("w2")
        cluster.wait_workers_ready()
        cluster.wait_mlflow()
        with LoadSampler() as load:
            wall, code = run_graph(cluster.env, run_config, root / "cluster-run.log")
        instance = cluster.instance()
        run = instance.get_runs(limit=1)[0]
        return {
            "wall": wall,
            "ok": code == 0,
            "status": run.status.value,
            "load": load.summary(),
            "steps": step_timings(instance, run.run_id),
            "log": str(root / "cluster-run.log"),
        }
    finally:
        cluster.stop()
        stop_services(root / "cluster")


def bench_local(root: Path, landing: Path, run_config: dict) -> dict:
    import dagster as dg

    home = root / "local_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))}
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "MLOPS_LANDING_DIR": str(landing),
            "MLOPS_WAREHOUSE": str(root / "local.duckdb"),
            "MLOPS_REPORTS_DIR": str(root / "local_reports"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'local_mlflow.db'}",
            "MLOPS_MLFLOW_ARTIFACTS": str(root / "local_artifacts"),
        }
    )
    with LoadSampler() as load:
        wall, code = run_graph(env, run_config, root / "local-run.log")
    instance = dg.DagsterInstance.from_config(str(home))
    run = instance.get_runs(limit=1)[0]
    return {
        "wall": wall,
        "ok": code == 0,
        "status": run.status.value,
        "load": load.summary(),
        "steps": step_timings(instance, run.run_id),
        "log": str(root / "local-run.log"),
    }


def durations(result: dict) -> dict[str, float]:
    return {k: s["end"] - s["start"] for k, s in result["steps"].items() if "end" in s and "start" in s}


def report(args, run_config: dict, results: dict[str, dict], generate_s: float) -> str:
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}; "
        f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"- command: `.venv/bin/python scripts/bench_cluster.py --tasks {args.tasks} --profiles {args.profiles} "
        f"--n-trials {args.n_trials} --cv-folds {args.cv_folds}`",
        f"- data: {args.tasks:,} synthetic tasks (seed 5, generated or copied once in {generate_s:.0f} s, the same landing "
        f"files for both profiles); both trainings with run config "
        f"`{json.dumps(run_config['ops'][f'models__{MODELS[0]}_candidate']['config'])}`",
    ]
    for name, res in results.items():
        lines.append(
            f"- {name} profile: whole graph {res['wall']:.1f} s wall (CLI start-up included), run "
            f"{res['status']}, {len(durations(res))} steps succeeded; {res['load']}"
        )
    if "cluster" in results:
        steps = results["cluster"]["steps"]
        dispatch = sorted(
            s["start"] - s["submitted"] for s in steps.values() if "start" in s and "submitted" in s
        )
        if dispatch:
            lines.append(
                f"- Celery dispatch (task submitted -> step started in a worker, includes waiting for a "
                f"free worker): median {statistics.median(dispatch):.2f} s, max {max(dispatch):.2f} s "
                f"over {len(dispatch)} steps"
            )
    names = list(results)
    per = {name: durations(res) for name, res in results.items()}
    keys = sorted(set().union(*per.values()), key=lambda k: -max(p.get(k, 0.0) for p in per.values()))
    header = "| step | " + " | ".join(f"{n} (s)" for n in names)
    header += " | cluster - local (s) |" if len(names) == 2 else " |"
    lines += ["", header, "|---|" + "---:|" * (len(names) + (len(names) == 2))]
    for key in keys:
        cells = [f"{per[n][key]:.2f}" if key in per[n] else "-" for n in names]
        if len(names) == 2:
            c, lo = per["cluster"].get(key), per["local"].get(key)
            cells.append(f"{c - lo:+.2f}" if c is not None and lo is not None else "-")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    if len(names) == 2:
        both = [k for k in keys if all(k in per[n] for n in names)]
        total = {n: sum(per[n][k] for k in both) for n in names}
        diff = [per["cluster"][k] - per["local"][k] for k in both]
        lines.append(
            "| **sum of steps** | "
            + " | ".join(f"{total[n]:.2f}" for n in names)
            + f" | {total['cluster'] - total['local']:+.2f} |"
        )
        if diff:
            lines.append(
                f"\nPer-step difference (cluster - local) over {len(diff)} steps: median "
                f"{statistics.median(diff):+.2f} s, min {min(diff):+.2f} s, max {max(diff):+.2f} s."
            )
    return "\n".join(lines)


def main() -> None:
    from mlops_assets.lib import synthetic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--profiles", default="cluster,local", help="comma-separated, run in this order")
    parser.add_argument("--n-trials", type=int, default=1, help="Optuna trials per training (both profiles)")
    parser.add_argument("--cv-folds", type=int, default=2, help="CV folds per trial (both profiles)")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="search timeout per training")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, warehouses)")
    parser.add_argument(
        "--landing",
        type=Path,
        default=None,
        help="reuse a landing folder generated by an earlier run at the same --tasks (seed 5)",
    )
    args = parser.parse_args()
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    unknown = set(profiles) - {"cluster", "local"}
    if unknown:
        parser.error(f"unknown profiles {sorted(unknown)}: use cluster and/or local")
    training = {"n_trials": args.n_trials, "timeout_s": args.timeout_s, "seed": 1, "cv_folds": args.cv_folds}
    run_config = {"ops": {f"models__{m}_candidate": {"config": training} for m in MODELS}}

    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    print(f"work folder {root}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    if args.landing:
        shutil.copytree(args.landing, root / "landing")
    else:
        synthetic.generate(root / "landing", n_tasks=args.tasks, seed=5)
    generate_s = time.perf_counter() - t0
    results: dict[str, dict] = {}
    try:
        for profile in profiles:
            print(f"{time.strftime('%H:%M:%S')} {profile} profile starts", file=sys.stderr, flush=True)
            bench = bench_cluster if profile == "cluster" else bench_local
            results[profile] = bench(root, root / "landing", run_config)
            print(
                f"{time.strftime('%H:%M:%S')} {profile} profile done: {results[profile]['wall']:.0f} s, "
                f"{results[profile]['status']}",
                file=sys.stderr,
                flush=True,
            )
            text = report(args, run_config, results, generate_s)
            if args.out:
                args.out.write_text(text + "\n")
            if not results[profile]["ok"]:
                print(f"{profile} run failed: see {results[profile]['log']}", file=sys.stderr, flush=True)
        print(text)
    finally:
        if not args.keep and all(r["ok"] for r in results.values()):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
