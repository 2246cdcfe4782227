"""Benchmark: generate N tasks, then materialize each asset of the graph in its own process.

For every step the table gives wall time (the asset's own step, from Dagster's event log), the
whole process' wall time (imports and Dagster start-up included), peak RSS of that process, the
peak memory of its whole process tree (parse workers and their shared-memory files included,
:class:`TreeMemory`), and rows per second. Results go to docs/BENCHMARKS.md between markers, one section per run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

# (label, asset selection, table whose row count is the throughput denominator)
STAGES: list[tuple[str, str, str]] = [
    ("ingest jira", "raw/jira_tasks,raw/jira_events,raw/jira_comments", "raw.jira_tasks"),
    ("ingest github", "raw/github_tasks", "raw.github_tasks"),
    ("ingest asana", "raw/asana_tasks", "raw.asana_tasks"),
    ("ingest trello", "raw/trello_tasks,raw/trello_events,raw/trello_comments", "raw.trello_tasks"),
    ("ingest csv", "raw/csv_tasks", "raw.csv_tasks"),
    ("clean", "clean/tasks,clean/task_events,clean/quarantine", "clean.tasks"),
    ("features", "features/task_features", "features.task_features"),
    ("snapshots", "features/task_snapshots", "features.task_snapshots"),
    ("splits late_risk", "model_input/late_risk_splits", "model_input.late_risk_splits"),
    ("splits cycle_time", "model_input/cycle_time_splits", "model_input.cycle_time_splits"),
    ("train late_risk", "models/late_risk_candidate", "model_input.late_risk_splits"),
    ("train cycle_time", "models/cycle_time_candidate", "model_input.cycle_time_splits"),
    ("evaluate late_risk", "reporting/late_risk_evaluation", "model_input.late_risk_splits"),
    ("evaluate cycle_time", "reporting/cycle_time_evaluation", "model_input.cycle_time_splits"),
    ("gate late_risk", "models/late_risk_champion", "model_input.late_risk_splits"),
    ("gate cycle_time", "models/cycle_time_champion", "model_input.cycle_time_splits"),
    ("batch scores", "serving/task_risk_scores", "serving.task_risk_scores"),
]
DATA_STAGES = 8  # ingestion, cleaning, features and snapshots; `--data-only` stops there
# The search budget of the benchmark's trainings (run config), so sizes compare like for like.
BENCH_TRAINING = {"n_trials": 3, "timeout_s": 600, "seed": 42, "cv_folds": 3}

_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
def peak_rss_mb():
    # VmHWM is this process's own high-water mark; ru_maxrss would carry the parent's over fork+exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
import dagster as dg
from mlops_assets.definitions import defs
from mlops_assets.definitions import build_resources
from pathlib import Path
work = Path(sys.argv[1]); selection = sys.argv[2].split(",")
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work}/mlflow.db")
os.environ.setdefault("MLOPS_MLFLOW_ARTIFACTS", str(work / "mlflow-artifacts"))
training = json.loads(sys.argv[3])
run_config = {"ops": {k.replace("/", "__"): {"config": training} for k in selection if k.endswith("_candidate")}}
res = dg.materialize(list(defs.assets), selection=selection, run_config=run_config,
                     resources=build_resources(str(work / "warehouse.duckdb"), str(work / "landing"), str(work / "reports")),
                     instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
step = [e for e in res.all_events if e.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE")]
dur = sum(e.event_specific_data.duration_ms for e in step if e.event_type_value == "STEP_SUCCESS") / 1000
err = None if res.success else [e.step_failure_data.error.message for e in res.get_step_failure_events()]
print(json.dumps({"ok": res.success, "step_s": dur, "process_s": time.perf_counter() - t0,
                  "peak_rss_mb": peak_rss_mb(), "error": err}))
"""


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(
            next(
                x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")
            ).split()[1]
        )
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem = "unknown RAM"
    return f"{os.cpu_count()} cores ({cpu}), {mem}, Python {platform.python_version()}, {platform.system()}"


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc/<pid>/task/*/children (Linux)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


def _pss_kb(pid: int) -> int:
    """Proportional set size (shared pages split among their users, so a sum over processes is honest),
    without shared-memory (tmpfs) pages: those are counted once, as /dev/shm usage, by the caller.
    """
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Pss:", "Pss_Shmem:")):
                name, value, *_ = line.split()
                fields[name] = int(value)
    except (OSError, ValueError):
        pass
    return fields.get("Pss:", 0) - fields.get("Pss_Shmem:", 0)


def _shm_used_kb() -> int:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024


class TreeMemory:
    """Peak memory of a process and all its descendants (parse workers included), sampled every
    `interval_s`: the sum of their PSS plus what they added to /dev/shm (tmpfs files are RAM).
    """

    def __init__(self, pid: int, interval_s: float = 0.2):
        import threading

        self.pid, self.interval_s, self.peak_kb = pid, interval_s, 0
        self._shm0 = _shm_used_kb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids, todo = [], [self.pid]
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo += _children(pid)
            total = sum(_pss_kb(p) for p in pids) + max(0, _shm_used_kb() - self._shm0)
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.interval_s)

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def run_stage(work: Path, selection: str) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(work), selection, json.dumps(BENCH_TRAINING)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(work / "dagster_home")},
    )
    memory = TreeMemory(proc.pid)
    stdout, stderr = proc.communicate()
    tree_mb = memory.stop()
    lines = [x for x in stdout.splitlines() if x.startswith("{")]
    if not lines:
        return {"ok": False, "error": stderr[-2000:]}
    return {**json.loads(lines[-1]), "tree_mb": tree_mb}


# What `bench --like DIR` times: ingestion and cleaning of a real-shaped landing zone.
LIKE_STAGES = 6


def bench(
    n_tasks: int,
    stages: list[tuple[str, str, str]] | None = None,
    keep: Path | None = None,
    like: Path | None = None,
) -> list[dict]:
    """Generate n_tasks into a work dir and time every stage; returns one row per stage.

    The work dir (its own warehouse, landing zone, reports and MLflow store) is fresh (and removed after a
    run without errors), or ``keep``.
    When ``keep`` already holds a warehouse and ``stages`` starts after ingestion, nothing is generated:
    the stages continue from what an earlier ``--data-only`` run left there. With ``like`` (a folder of
    real exports, as ../shared/data) the landing zone replays those files (lib/replay) instead of the
    synthetic generator, and each ingestion row reports the bytes landed for its source.
    """
    with work_dir(keep, n_tasks) as work:
        (work / "dagster_home").mkdir(parents=True, exist_ok=True)
        rows = []
        stages = stages or STAGES
        if stages[0][0].startswith("ingest") or not (work / "warehouse.duckdb").exists():
            rows.append(generate(work, n_tasks, like))
        # The generator runs in this process; later stages run in children that report their own VmHWM.
        for label, selection, table in stages:
            out = run_stage(work, selection)
            if not out.get("ok"):
                raise RuntimeError(f"benchmark stage {label!r} failed: {out.get('error')}")
            rows.append(stage_row(work, n_tasks, label, table, out))
    return rows


@contextlib.contextmanager
def work_dir(given: Path | None, n_tasks: int) -> Iterator[Path]:
    """``given`` (kept), or a fresh temporary work dir removed once the block ends without an error: a 1M
    run leaves ~9 GB (landing zone, warehouse, MLflow store). A failed run's dir stays for its log, and
    says where.
    """
    if given is not None:
        yield given
        return
    work = Path(tempfile.mkdtemp(prefix=f"mlops-bench-{n_tasks}-"))
    try:
        yield work
    except BaseException:
        sys.stderr.write(f"the benchmark failed; its work dir is kept for its logs: {work}\n")
        raise
    shutil.rmtree(work, ignore_errors=True)


# What a whole-graph run leaves in its work dir. Run again in the same dir, the warehouse's manifest knows
# every landed file and ingestion skips them all (an incremental run, 1M ingested in 2 s, not the graph a
# user's first run is), and a landing zone of a larger earlier size keeps its extra pages.
RUN_STATE = (
    "warehouse.duckdb", "warehouse.duckdb.wal", "mlflow.db", "mlflow-artifacts", "model-cache", "reports",
    "exports", "dagster_home", "landing", "materialize.log",
)  # fmt: skip


def clear_run_state(work: Path) -> list[str]:
    """Remove what an earlier whole-graph run left in ``work`` (only the names in RUN_STATE, and the
    MLflow store's lock files); returns the names removed.
    """
    removed = []
    for name in RUN_STATE:
        path = work / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    for lock in sorted(work.glob("mlflow.db*.lock")):
        lock.unlink()
    return removed


def generate(work: Path, n_tasks: int, like: Path | None = None) -> dict:
    """Land n_tasks (synthetic, or replayed from real exports in ``like``) in work/landing; one table row."""
    t0 = time.perf_counter()
    if like:
        from mlops_assets.lib import replay

        replay.generate_like(like, work / "landing", n_tasks, seed=7)
    else:
        from mlops_assets.lib import synthetic

        synthetic.generate(work / "landing", n_tasks=n_tasks, seed=7)
    return {
        "n_tasks": n_tasks,
        "stage": f"generate {'real-shaped ' if like else ''}sample (not an asset)",
        "step_s": time.perf_counter() - t0,
        "process_s": None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": n_tasks,
        "landed_mb": landed_mb(work / "landing"),
    }


def graph_env(work: Path) -> dict[str, str]:
    """The environment `make run` would have, with every path in `work` (and the local profile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "MLFLOW_"))}
    return {
        **env,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "MLOPS_WAREHOUSE": str(work / "warehouse.duckdb"),
        "MLOPS_LANDING_DIR": str(work / "landing"),
        "MLOPS_REPORTS_DIR": str(work / "reports"),
        "MLOPS_EXPORTS_DIR": str(work / "exports"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
        "MLOPS_MLFLOW_ARTIFACTS": str(work / "mlflow-artifacts"),
        "MLOPS_MODEL_CACHE": str(work / "model-cache"),
    }


SPEED_PROBE = r"""
import json, time
import numpy as np
import lightgbm as lgb

def best(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return min(times)

rng = np.random.default_rng(7)
x = rng.normal(size=(200_000, 20))
y = x[:, 0] * 3 + np.sin(x[:, 1] * 2) + rng.normal(size=200_000)
params = {"objective": "l1", "num_leaves": 15, "learning_rate": 0.1, "num_threads": 2, "deterministic": True,
          "force_row_wise": True, "verbosity": -1, "seed": 7}
print(json.dumps({
    "python_s": best(lambda: sum(i * i for i in range(10**7)), 3),
    "lightgbm_s": best(lambda: lgb.train(params, lgb.Dataset(x, y), num_boost_round=100), 2),
}))
"""


def speed_probe() -> dict[str, float]:
    """How fast this machine runs right now: a pure-Python loop (best of 3) and a fixed 2-thread LightGBM L1 fit,
    200,000 rows x 20 features, 100 rounds (best of 2). Reported beside every whole-graph figure: instances of the
    same `lscpu` model differed by ~60% on the same code (docs/BENCHMARKS.md, session 13), so a wall time is
    read against the probe of its machine.
    """
    done = subprocess.run([sys.executable, "-c", SPEED_PROBE], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _probe_text(before: dict[str, float] | None, after: dict[str, float] | None = None) -> str:
    if not before:
        return ""

    def figure(key: str) -> str:
        return f"{before[key]:.2f}" + (f" / {after[key]:.2f}" if after else "")

    when = " before / after the graph" if after else ""
    return (
        f"; speed probe (`bench.speed_probe`){when}: Python loop {figure('python_s')} s, "
        f"LightGBM fit {figure('lightgbm_s')} s"
    )


def whole_graph(n_tasks: int, work: Path, like: Path | None = None) -> dict:
    """Generate n_tasks, then materialize every asset with one ``dagster asset materialize --select '*'``.

    That is `make run`'s command: the default run config (``TrainingConfig``'s defaults) and the CLI's
    default executor (the local profile's in-process one). Reports the CLI's wall time, the peak memory
    of its whole process tree, each step's own time from the run's event log, and the ratio of the
    wall time to the sum of the steps (what orchestration adds: start-up, event log, IO managers).
    """
    cleared = clear_run_state(work)
    if cleared:
        sys.stderr.write(
            f"{work}: an earlier run's {', '.join(cleared)} removed (a whole-graph run starts empty)\n"
        )
    probe = speed_probe()
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    instance_yaml = Path(__file__).resolve().parents[2] / "dagster.yaml"
    if instance_yaml.is_file():  # `make instance`: the checkout's instance settings (telemetry off)
        shutil.copyfile(instance_yaml, work / "dagster_home" / "dagster.yaml")
    generated = generate(work, n_tasks, like)
    # `make mlflow-store`: make run creates and migrates the MLflow store before the graph runs (a new
    # SQLite store runs MLflow's migrations, about 1.5 s, once in the store's life); timed and reported apart
    store = subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter(); from mlops_assets.lib import registry; "
         "registry.ensure_store(); print(time.perf_counter() - t)"],
        cwd=work, env=graph_env(work), capture_output=True, text=True, check=True,
    )  # fmt: skip
    cmd = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "mlops_assets.definitions",
        "--select",
        "*",
    ]
    log = work / "materialize.log"
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=work, env=graph_env(work), stdout=out, stderr=subprocess.STDOUT)
        memory = TreeMemory(proc.pid)
        code = proc.wait()
        wall = time.perf_counter() - t0
        tree_mb = memory.stop()
    probe_after = speed_probe()  # the machine's speed moves within minutes: bracket the run
    steps = run_steps(work / "dagster_home")
    if code != 0:
        raise RuntimeError(
            f"`{' '.join(cmd)}` failed (exit {code}); its log: {log}\n{log.read_text()[-3000:]}"
        )
    from mlops_assets.lib.warehouse import Warehouse

    wh = Warehouse(work / "warehouse.duckdb")
    quality = {}
    for name in ("late_risk", "cycle_time"):
        row = wh.query(f"SELECT * FROM models.{name}_candidate ORDER BY recorded_at DESC LIMIT 1").row(
            0, named=True
        )
        quality[name] = {
            **json.loads(row["metrics"]),
            "n_trials": row["n_trials"],
            "train_s": row["train_seconds"],
        }
    return {
        "n_tasks": n_tasks,
        "work": str(work),
        "generate_s": generated["step_s"],
        "mlflow_store_s": float(store.stdout.split()[-1]),
        "wall_s": wall,
        "tree_mb": tree_mb,
        "steps": steps,
        "steps_s": sum(s["seconds"] for s in steps),
        "quality": quality,
        "scores": int(wh.query("SELECT count(*) AS n FROM serving.task_risk_scores")["n"][0]),
        "probe": probe,
        "probe_after": probe_after,
    }


_AGAINST_LINE = re.compile(r"^([\d,]+) tasks: whole graph ([\d.]+) s, ([\d,]+) MB$", re.MULTILINE)


@contextlib.contextmanager
def code_at(rev: str) -> Iterator[Path]:
    """A git worktree of this checkout at ``rev`` (detached), removed afterwards: the code to pair a run with."""
    root = Path(__file__).resolve().parents[2]
    folder = Path(tempfile.mkdtemp(prefix="mlops-bench-against-")) / "code"
    try:
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(folder), rev],
                       check=True, capture_output=True, text=True)  # fmt: skip
    except OSError as exc:  # no git on PATH: the pairing needs it, the commit may well exist
        shutil.rmtree(folder.parent, ignore_errors=True)
        raise ValueError(f"--against {rev} needs git to check that commit out ({exc})") from None
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder.parent, ignore_errors=True)
        detail = exc.stderr or str(exc)
        raise ValueError(f"--against {rev}: no such commit in {root} ({detail.strip()[:300]})") from None
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(root), "worktree", "remove", "--force", str(folder)], capture_output=True
        )
        shutil.rmtree(folder.parent, ignore_errors=True)


def whole_graph_at(code: Path, n_tasks: int) -> dict:
    """The whole graph of another checkout's code (`code_at`) at n_tasks, with this interpreter and its
    packages, as that code's own `mlops-assets bench` times it: {"wall_s", "tree_mb"}.
    """
    work = Path(tempfile.mkdtemp(prefix=f"mlops-bench-against-{n_tasks}-"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mlops_assets.cli", "bench", "--tasks", str(n_tasks), "--no-write",
             "--work", str(work)],
            cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = [m for m in _AGAINST_LINE.finditer(done.stdout) if int(m.group(1).replace(",", "")) == n_tasks]
    if done.returncode != 0 or not found:
        raise RuntimeError(
            f"the bench of {code} at {n_tasks:,} tasks failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    return {"wall_s": float(found[-1].group(2)), "tree_mb": float(found[-1].group(3).replace(",", ""))}


def run_steps(dagster_home: Path) -> list[dict]:
    """The steps of the latest run in this Dagster home with their own wall time, in the order they ran."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(limit=1)
        if not records:
            return []
        stats = instance.get_run_step_stats(records[0].dagster_run.run_id)
    return [
        {
            "step": s.step_key,
            "status": s.status.value if s.status else "?",
            "seconds": (s.end_time or s.start_time or 0) - (s.start_time or 0),
        }
        for s in sorted(stats, key=lambda s: s.start_time or 0)
    ]


QUALITY = {"late_risk": "test_roc_auc", "cycle_time": "test_mae"}


def reference_trainings(work: Path) -> dict[str, dict]:
    """Each model trained again on the splits the whole graph left in `work`, every trial on all train rows.

    ``tune_rows=0`` with every round judged is the training before issue 14; the number of trials is what the graph's
    candidate ran (and no timeout), so both searches saw the same number of trials.
    """
    from mlops_assets.lib import reporting, training
    from mlops_assets.lib.warehouse import Warehouse

    wh = Warehouse(work / "warehouse.duckdb")
    out = {}
    for name, metric in QUALITY.items():
        candidate = wh.query(f"SELECT * FROM models.{name}_candidate ORDER BY recorded_at DESC LIMIT 1").row(
            0, named=True
        )
        parts = reporting.split_frames(wh.read_table(f"model_input.{name}_splits"))
        config = training.TrainConfig(
            n_trials=int(candidate["n_trials"]), timeout_s=86_400.0, tune_rows=0, sorted_metric_every=1
        )
        t0 = time.perf_counter()
        trained = training.train_model(training.get_spec(name), parts, config)
        out[name] = {
            "metric": metric,
            "value": trained.metrics[metric],
            "train_s": time.perf_counter() - t0,
            "trees": trained.booster.num_trees(),
            "n_trials": trained.n_trials,
            "candidate": json.loads(candidate["metrics"])[metric],
            "candidate_s": candidate["train_seconds"],
        }
    return out


def whole_graph_markdown(
    results: list[dict], command: str, references: dict | None = None, against: tuple[str, dict] | None = None
) -> str:
    """The whole-graph table: one row per size, then the slowest steps of each; ``against``: (the commit, size
    -> its whole_graph_at figures), run right after this code's, each size a pair.
    """
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    probe = _probe_text(results[0].get("probe"), results[0].get("probe_after")) if results else ""
    out = [
        f"Measured {now} on {_machine()}; load average at the end {load} (shared cores){probe}.",
        f"Command: `{command}` (`dagster asset materialize --select '*'`, default run config, in-process executor).",
        "",
        "| tasks | whole graph, CLI wall (s) | sum of the steps (s) | wall / steps | peak memory, process tree (MB) "
        "| late_risk test ROC-AUC | cycle_time test MAE (days) | trials | scored open tasks |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        q = r["quality"]
        out.append(
            f"| {r['n_tasks']:,} | {r['wall_s']:.1f} | {r['steps_s']:.1f} | {r['wall_s'] / r['steps_s']:.2f} | "
            f"{r['tree_mb']:,.0f} | {q['late_risk']['test_roc_auc']:.4f} | {q['cycle_time']['test_mae']:.3f} | "
            f"{q['late_risk']['n_trials']} / {q['cycle_time']['n_trials']} | {r['scores']:,} |"
        )
    if against:
        rev, runs = against
        out += [
            "",
            f"Paired, back to back on this machine: the same command with the code of `{rev}` (a git worktree):",
            "",
        ]
        for r in results:
            if (other := runs.get(r["n_tasks"])) is not None:
                out.append(
                    f"- {r['n_tasks']:,} tasks: {r['wall_s']:.1f} s here against {other['wall_s']:.1f} s at `{rev}`: "
                    f"x{r['wall_s'] / other['wall_s']:.2f} ({(r['wall_s'] / other['wall_s'] - 1) * 100:+.0f}%); "
                    f"{r['tree_mb']:,.0f} MB against {other['tree_mb']:,.0f} MB"
                )
    for n, ref in (references or {}).items():
        out += [
            "",
            f"{n:,} tasks, the same splits trained again with every trial on all train rows (`tune_rows=0`, the "
            "training before issue 14, same number of trials):",
            "",
        ]
        for name, r in ref.items():
            if name == "late_risk":
                diff = f"{r['candidate'] - r['value']:+.4f} ROC-AUC (bound: -0.005)"
            else:
                diff = f"{(r['candidate'] - r['value']) / r['value'] * 100:+.1f}% MAE (bound: +2%)"
            out.append(
                f"- {name}: {r['metric']} {r['candidate']:.4f} in the graph ({r['candidate_s']:.0f} s of training) vs "
                f"{r['value']:.4f} ({r['train_s']:.0f} s, {r['n_trials']} trials, {r['trees']:,} trees): {diff}"
            )
    for r in results:
        top = sorted(r["steps"], key=lambda s: -s["seconds"])
        out += [
            "",
            f"{r['n_tasks']:,} tasks, by step (seconds; generation of the landing zone {r['generate_s']:.1f} s "
            f"and the new MLflow store's migrations {r.get('mlflow_store_s', 0.0):.1f} s, as `make run` does "
            "them before the graph, not in the wall time): "
            + ", ".join(f"{s['step']} {s['seconds']:.1f}" for s in top),
        ]
    return "\n".join(out)


def landed_mb(landing: Path, source: str | None = None) -> float:
    """Megabytes of files in the landing zone (of one source folder when ``source`` is given)."""
    root = landing / source if source else landing
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6 if root.exists() else 0.0


def stage_row(work: Path, n_tasks: int, label: str, table: str, out: dict) -> dict:
    """One table row: the stage's measurements, its row count and, for a training, LightGBM's share."""
    from mlops_assets.lib.warehouse import Warehouse

    wh = Warehouse(work / "warehouse.duckdb")
    row = {
        "n_tasks": n_tasks,
        "stage": label,
        "rows": int(wh.query(f"SELECT count(*) AS n FROM {table}")["n"][0]),
        **out,
    }
    if label.startswith("ingest "):
        row["landed_mb"] = landed_mb(work / "landing", label.split()[1])
    if label.startswith("train "):
        last = wh.query(
            f"SELECT * FROM models.{label.split()[1]}_candidate ORDER BY recorded_at DESC LIMIT 1"
        )
        if "lightgbm_seconds" in last.columns:
            row["lightgbm_s"] = float(last["lightgbm_seconds"][0])
    return row


def to_markdown(rows: list[dict], command: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    landed = any(r.get("landed_mb") is not None for r in rows)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out = [
        f"Measured {now} on {_machine()}; load average at the end {load} (shared cores).",
        f"Command: `{command}`; trainings use run config {json.dumps(BENCH_TRAINING)}.",
        "",
        "| tasks | stage | step wall (s) | process wall (s) | peak RSS (MB) | peak memory, process tree (MB) | rows | rows/s |"
        + (" input landed (MB) |" if landed else ""),
        "|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if landed else ""),
    ]
    for r in rows:
        rate = f"{r['rows'] / r['step_s']:,.0f}" if r.get("step_s") else ""
        proc = f"{r['process_s']:.1f}" if r.get("process_s") else ""
        tree = f"{r['tree_mb']:,.0f}" if r.get("tree_mb") else ""
        mb = (f" {r['landed_mb']:,.1f} |" if r.get("landed_mb") is not None else " |") if landed else ""
        out.append(
            f"| {r['n_tasks']:,} | {r['stage']} | {r['step_s']:.2f} | {proc} | {r['peak_rss_mb']:,.0f} | "
            f"{tree} | {r['rows']:,} | {rate} |{mb}"
        )
    trainings = [r for r in rows if r.get("lightgbm_s")]
    if trainings:
        out += [
            "",
            "Training, LightGBM's own time (binning, boosting, predicting) against the whole step "
            "(target: the rest at most 50% on top of LightGBM):",
            "",
        ]
        out += [
            f"- {r['n_tasks']:,} tasks, {r['stage']}: LightGBM {r['lightgbm_s']:.1f} s of {r['step_s']:.1f} s; "
            f"the rest {r['step_s'] - r['lightgbm_s']:.1f} s = {(r['step_s'] / r['lightgbm_s'] - 1):.0%} on top"
            for r in trainings
        ]
    by_n: dict[int, float] = {}
    for r in rows:
        if r["stage"].startswith(("ingest", "clean")):
            by_n[r["n_tasks"]] = by_n.get(r["n_tasks"], 0.0) + r["step_s"]
    if by_n:
        out += [
            "",
            "Ingestion + cleaning (sum of step wall times): "
            + ", ".join(f"{n:,} tasks: {s:.1f} s" for n, s in sorted(by_n.items())),
        ]
        if len(by_n) > 1:
            ns = sorted(by_n)
            out.append(
                f"Growth {ns[0]:,} -> {ns[-1]:,} tasks: x{by_n[ns[-1]] / by_n[ns[0]]:.1f} time for "
                f"x{ns[-1] / ns[0]:.0f} data."
            )
    return "\n".join(out)


def write_section(markdown: str, path: Path = Path("docs/BENCHMARKS.md"), section: str = "pipeline") -> None:
    """Replace the section between its markers in docs/BENCHMARKS.md (other sections stay)."""
    start, end = f"<!-- bench:{section}:start -->", f"<!-- bench:{section}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
