"""Faults against the whole graph: SIGKILL at random moments, concurrent runs, a BI tool's open connection.

Every run is ``dagster asset materialize -m mlops_assets.definitions --select '*'`` in its own process
group, as a user starts it, in a :class:`Sandbox` (its own Dagster instance, warehouse, MLflow store and
reports; the landing zone is shared so that every sandbox reads the same inputs by the same paths).
After a fault the run is started again to completion and :func:`check_state` compares the sandbox with
an uninterrupted run on the same inputs. Used by ``scripts/reliability_faults.py`` and the tests.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

# Small, seeded searches: one uninterrupted run of 1,500 tasks takes about 35 s on 2 shared cores.
FAST_TRAINING = {"n_trials": 2, "timeout_s": 30, "seed": 1, "cv_folds": 2}
MODELS = ("late_risk", "cycle_time")
RUN_CONFIG = {"ops": {f"models__{m}_candidate": {"config": FAST_TRAINING} for m in MODELS}}

# Tables compared by content: they depend only on the inputs. Run metadata columns (when, which run)
# are left out; `source_file` is the same path in every sandbox because the landing zone is shared.
EXACT_PREFIXES = ("raw.", "clean.", "features.", "model_input.")
EXACT_TABLES = tuple(f"models.{m}_reference" for m in MODELS)
VOLATILE_COLUMNS = frozenset(
    {
        "ingested_at",
        "quarantined_at",
        "scored_at",
        "recorded_at",
        "run_id",
        "dagster_run_id",
        "champion_version",
    }
)
# Tables compared by row count only (they hold a model's output; the model differs by run).
COUNT_TABLES = tuple(f"reporting.{m}_evaluation" for m in MODELS) + ("serving.task_risk_scores",)

# Kill windows: consecutive steps of the graph merged where they do the same kind of work.
WINDOWS = (
    ("start-up", ()),
    ("ingestion", ("ingest_", "landing__")),
    ("cleaning", ("clean_tasks",)),
    ("features", ("features__",)),
    ("splits", ("model_input__",)),
    ("train cycle_time", ("models__cycle_time_candidate",)),
    ("train late_risk", ("models__late_risk_candidate",)),
    ("evaluate", ("reporting__",)),
    ("gate cycle_time", ("models__cycle_time_champion",)),
    ("gate late_risk", ("models__late_risk_champion",)),
    ("monitoring", ("data_drift", "model_performance")),
    ("scores", ("serving__task_risk_scores",)),
)


def window_of(step: str | None) -> str:
    """The kill window a step key belongs to (start-up before the first step)."""
    if step is None:
        return "start-up"
    for name, prefixes in WINDOWS:
        if prefixes and step.startswith(prefixes):
            return name
    return step


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class Sandbox:
    """One Dagster instance, warehouse, MLflow store and reports folder; the landing zone may be shared."""

    root: Path
    landing: Path

    @classmethod
    def create(cls, root: Path, landing: Path) -> Sandbox:
        if root.exists():
            shutil.rmtree(root)
        (root / "dagster_home").mkdir(parents=True)
        project_yaml = Path(__file__).resolve().parents[2] / "dagster.yaml"
        if project_yaml.exists():
            shutil.copy(project_yaml, root / "dagster_home" / "dagster.yaml")
        return cls(root, landing)

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_", "JIRA_", "GITHUB_"))
        }
        # MLOPS_HOME: any location not set here (exports, ...) stays in the sandbox, not the project's data/
        return {
            **keep,
            "DAGSTER_HOME": str(self.root / "dagster_home"),
            "MLOPS_HOME": str(self.root),
            "MLOPS_LANDING_DIR": str(self.landing),
            "MLOPS_WAREHOUSE": str(self.warehouse),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLOPS_MLFLOW_ARTIFACTS": str(self.root / "mlflow-artifacts"),
            "MLOPS_REPORTS_DIR": str(self.root / "reports"),
            "MLOPS_PROFILE": "local",
        }

    def run_dbs(self) -> set[Path]:
        return {
            p for p in (self.root / "dagster_home" / "history" / "runs").glob("*.db") if p.name != "index.db"
        }


def generate_landing(landing: Path, n_tasks: int = 1500, seed: int = 7) -> Path:
    """The synthetic sample, as `mlops-assets generate --tasks N --out DIR` lands it."""
    subprocess.run(
        [
            _bin("mlops-assets"),
            "generate",
            "--tasks",
            str(n_tasks),
            "--out",
            str(landing),
            "--seed",
            str(seed),
        ],
        check=True,
        capture_output=True,
    )
    return landing


@dataclass
class Run:
    """One `dagster asset materialize` of the whole graph, in its own process group."""

    box: Sandbox
    log_name: str = "run"
    proc: subprocess.Popen | None = None
    started: float = 0.0
    before: set[Path] = field(default_factory=set)

    def start(self) -> Run:
        self.before = self.box.run_dbs()
        log = open(self.box.root / f"{self.log_name}.log", "ab")  # closed in wait()
        cmd = [
            _bin("dagster"),
            "asset",
            "materialize",
            "-m",
            "mlops_assets.definitions",
            "--select",
            "*",
            "--config-json",
            json.dumps(RUN_CONFIG),
        ]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            env=self.box.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.box.root,
        )
        self._log = log
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group (the run and any worker it started)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait()

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def events_db(self) -> Path | None:
        new = self.box.run_dbs() - self.before
        return next(iter(new)) if new else None

    def dagster_run_id(self) -> str | None:
        db = self.events_db()
        return db.stem if db else None

    def step_events(self) -> list[tuple[str, str, float]]:
        """(event type, step key, unix time) of every step start and end in this run's event log."""
        db = self.events_db()
        if db is None:
            return []
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                rows = con.execute(
                    "SELECT dagster_event_type, step_key, (julianday(timestamp) - 2440587.5) * 86400.0 "
                    "FROM event_logs WHERE dagster_event_type IN ('STEP_START', 'STEP_SUCCESS', 'STEP_FAILURE') "
                    "ORDER BY id"
                ).fetchall()
            finally:
                con.close()
        except sqlite3.OperationalError:  # the run's database is being created: no events yet
            return []
        return [(t, s, float(ts)) for t, s, ts in rows]

    def running_step(self) -> str | None:
        """The step started and not ended when the run stopped (None: before the first step; "between steps,
        after X" when the kill fell after one step's end and before the next one's start).
        """
        open_steps: dict[str, None] = {}
        last = None
        for kind, step, _ in self.step_events():
            if kind == "STEP_START":
                open_steps[step] = None
            else:
                open_steps.pop(step, None)
                last = step
        if open_steps:
            return next(reversed(open_steps))
        return f"between steps, after {last}" if last else None

    def output(self) -> str:
        return (self.box.root / f"{self.log_name}.log").read_text(errors="replace")


def step_windows(run: Run, wall_start: float) -> dict[str, tuple[float, float]]:
    """Seconds after the run's start at which each kill window began and ended, from its event log."""
    spans: dict[str, list[float]] = {"start-up": [0.0, 0.0]}
    for _kind, step, ts in run.step_events():
        name = window_of(step)
        lo, hi = spans.setdefault(name, [ts - wall_start, ts - wall_start])
        spans[name] = [min(lo, ts - wall_start), max(hi, ts - wall_start)]
    first = min(lo for name, (lo, _) in spans.items() if name != "start-up")
    spans["start-up"] = [0.0, first]
    return {k: (v[0], v[1]) for k, v in spans.items()}


def table_digests(warehouse: Path, ignore: frozenset[str] = frozenset()) -> dict[str, tuple[int, int | None]]:
    """(rows, order-independent content hash without run metadata and `ignore` columns) of every table."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {}
        tables = con.execute(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            cols = [
                f'"{r[0]}"'
                for r in con.execute(f"DESCRIBE {table}").fetchall()
                if r[0] not in VOLATILE_COLUMNS | ignore
            ]
            rows, digest = con.execute(
                f"SELECT count(*), sum(hash({', '.join(cols)})) FROM {table}"
            ).fetchone()
            out[table] = (int(rows), None if digest is None else int(digest))
        return out
    finally:
        con.close()


def compare_tables(expected: dict, actual: dict) -> list[str]:
    """Differences between two :func:`table_digests`: content for the data layers, counts for model output."""
    problems = []
    for table, (rows, digest) in expected.items():
        got = actual.get(table)
        if table.startswith(EXACT_PREFIXES) or table in EXACT_TABLES:
            if got is None:
                problems.append(f"{table} missing")
            elif got[0] != rows:
                problems.append(f"{table} has {got[0]} rows, expected {rows}")
            elif got[1] != digest:
                problems.append(f"{table} content differs ({rows} rows)")
        elif table in COUNT_TABLES and (got is None or got[0] != rows):
            problems.append(f"{table} has {got and got[0]} rows, expected {rows}")
    return problems


def check_registry(box: Sandbox, killed_run_ids: set[str] = frozenset(), load: bool = True) -> dict:
    """The champion of each model: complete run, gate applied, reference and decision row agree, loads.

    Returns {"problems": [...], "champions": {model: version}, "killed_champion": [models whose
    champion was trained by a killed run (allowed only when that run's gate had finished)]}.
    """
    import mlflow
    from mlflow import MlflowClient

    from mlops_assets.lib import registry

    problems: list[str] = []
    champions: dict[str, str | None] = {}
    killed_champion: list[str] = []
    client = MlflowClient(tracking_uri=box.tracking_uri, registry_uri=box.tracking_uri)
    con = duckdb.connect(str(box.warehouse), read_only=True)
    try:
        for m in MODELS:
            try:
                version = client.get_model_version_by_alias(m, "champion")
            except Exception as exc:  # noqa: BLE001 (reported as a finding, whatever MLflow raised)
                problems.append(f"{m}: no champion ({type(exc).__name__})")
                champions[m] = None
                continue
            champions[m] = str(version.version)
            run = client.get_run(version.run_id)
            if run.info.status != "FINISHED" or run.data.tags.get(registry.COMPLETE_TAG) != "true":
                problems.append(
                    f"{m} champion v{version.version} comes from a {run.info.status} incomplete run"
                )
            if version.tags.get(registry.APPLIED_TAG) is None:
                problems.append(f"{m} champion v{version.version} has no {registry.APPLIED_TAG} tag")
            per_run: dict[str, int] = {}
            for v in client.search_model_versions(f"name='{m}'"):
                per_run[v.run_id] = per_run.get(v.run_id, 0) + 1
            if any(c > 1 for c in per_run.values()):
                problems.append(f"{m}: a training run registered more than once: {per_run}")
            if run.data.tags.get("dagster_run_id") in killed_run_ids:
                killed_champion.append(m)
            ref = con.execute(f"SELECT DISTINCT champion_version FROM models.{m}_reference").fetchall()
            if [str(r[0]) for r in ref] != [champions[m]]:
                problems.append(f"{m} reference describes {[r[0] for r in ref]}, champion is v{champions[m]}")
            last = con.execute(
                f"SELECT version FROM models.{m}_champion WHERE promoted ORDER BY recorded_at DESC LIMIT 1"
            ).fetchall()
            if not last or str(last[0][0]) != champions[m]:
                problems.append(f"{m} last promotion row names {last}, champion is v{champions[m]}")
            twice = con.execute(
                f"SELECT champion_version_before, count(*) FROM models.{m}_champion WHERE promoted "
                "GROUP BY ALL HAVING count(*) > 1"
            ).fetchall()
            if twice:
                problems.append(f"{m} promoted twice against the same champion: {twice}")
        scored = con.execute(
            "SELECT DISTINCT late_risk_version, cycle_time_version FROM serving.task_risk_scores"
        ).fetchall()
        if [tuple(map(str, r)) for r in scored] != [(champions["late_risk"], champions["cycle_time"])]:
            problems.append(f"scores made by {scored}, champions are {champions}")
    finally:
        con.close()
    if load and champions.get("late_risk"):
        mlflow.set_tracking_uri(box.tracking_uri)
        mlflow.set_registry_uri(box.tracking_uri)
        try:
            model = mlflow.pyfunc.load_model("models:/late_risk@champion")
            rows = duckdb.connect(str(box.warehouse), read_only=True)
            try:
                sample = rows.execute("SELECT * FROM clean.tasks LIMIT 5").df()
            finally:
                rows.close()
            out = model.predict(sample)
            if len(out) != len(sample):
                problems.append(f"champion predicted {len(out)} rows for {len(sample)}")
        except Exception as exc:  # noqa: BLE001
            problems.append(
                f"models:/late_risk@champion does not load or predict: {type(exc).__name__}: {exc}"[:300]
            )
    return {"problems": problems, "champions": champions, "killed_champion": killed_champion}


@dataclass
class Trial:
    """One kill: when, in which step, and what the re-run left."""

    n: int
    target: str
    offset_s: float
    kill_at_s: float
    step: str | None
    window: str
    rerun_ok: bool
    rerun_s: float
    problems: list[str]
    champions: dict
    killed_champion: list[str]


def reference_run(work: Path, landing: Path) -> tuple[Sandbox, float, dict[str, tuple[float, float]], dict]:
    """An uninterrupted run: its sandbox, duration, kill windows and table digests."""
    box = Sandbox.create(work / "reference", landing)
    run = Run(box).start()
    wall = time.time()
    code = run.wait()
    duration = time.monotonic() - run.started
    if code != 0:
        raise RuntimeError(f"the uninterrupted run failed (exit {code}):\n{run.output()[-3000:]}")
    return box, duration, step_windows(run, wall), table_digests(box.warehouse)


def kill_schedule(
    n: int, seed: int, duration: float, windows: dict[str, tuple[float, float]]
) -> list[tuple[str, float]]:
    """Where each trial kills: first one moment inside each window, then moments uniform over the whole run.

    Returns (target, seconds). For a window the seconds count from the moment the run's event log shows
    the window's first step starting (start-up: from the process start), drawn uniformly over the
    window's measured length, so a slower machine still hits the step aimed at; for "uniform" they count
    from the process start, drawn uniformly over the measured run. The step actually running is read
    from the event log after the kill.
    """
    rng = random.Random(seed)
    names = [w for w, _ in WINDOWS if w in windows]
    rng.shuffle(names)
    plan: list[tuple[str, float]] = []
    for i in range(n):
        if i < len(names):
            lo, hi = windows[names[i]]
            plan.append((names[i], rng.uniform(0.0, max(hi - lo, 0.05))))
        else:
            plan.append(("uniform", rng.uniform(0.0, duration)))
    return plan


def _wait_for_window(run: Run, target: str, timeout_s: float = 600.0) -> bool:
    """Block until the run's event log shows a step of window `target` starting (False: the run ended first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(kind == "STEP_START" and window_of(step) == target for kind, step, _ in run.step_events()):
            return True
        if run.proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _last_error(log: str) -> str:
    """The last line of a log that names an error, on one line (for a table cell)."""
    lines = [x.strip() for x in log.splitlines() if "Error" in x or "Exception" in x]
    return (lines[-1] if lines else log.strip().splitlines()[-1] if log.strip() else "no output")[
        :200
    ].replace("|", "/")


def kill_trial(
    n: int,
    target: str,
    offset: float,
    work: Path,
    landing: Path,
    expected: dict,
    rerun_timeout_s: float = 600.0,
) -> Trial:
    """Start a run, SIGKILL its process group at the planned moment, run again to completion, check."""
    box = Sandbox.create(work / f"trial-{n:03d}", landing)
    run = Run(box, "killed").start()
    if target not in ("uniform", "start-up"):
        _wait_for_window(run, target)
    time.sleep(offset)
    kill_at = time.monotonic() - run.started
    finished_first = run.proc.poll() is not None
    run.kill()
    step = run.running_step()
    killed = {run.dagster_run_id()} - {None}
    again = Run(box, "rerun").start()
    code = again.wait(timeout=rerun_timeout_s)
    rerun_s = time.monotonic() - again.started
    problems = [] if code == 0 else [f"re-run failed (exit {code}): {_last_error(again.output())}"]
    if finished_first:  # a uniform moment past this run's end: reported, not a failure of the platform
        step = "none: the run had finished before the kill"
    state = {"problems": [], "champions": {}, "killed_champion": []}
    if code == 0:
        problems += compare_tables(expected, table_digests(box.warehouse))
        state = check_registry(box, killed)
        problems += state["problems"]
        gate_done = {
            m
            for m in MODELS
            if any(s == f"models__{m}_champion" for k, s, _ in run.step_events() if k == "STEP_SUCCESS")
        }
        # A champion trained by the killed run is fine when its run finished logging (check_registry
        # asserts FINISHED and complete): its gate either finished or was resumed by the re-run.
        state["killed_champion"] = [
            f"{m} ({'its gate had finished' if m in gate_done else 'gate resumed by the re-run'})"
            for m in state["killed_champion"]
        ]
    shutil.rmtree(box.root / "mlflow-artifacts", ignore_errors=True)  # the biggest part; the store stays
    window = (
        "between steps"
        if step and step.startswith("between")
        else "after the end"
        if step and step.startswith("none")
        else window_of(step)
    )
    return Trial(
        n,
        target,
        offset,
        kill_at,
        step,
        window,
        code == 0,
        rerun_s,
        problems,
        state["champions"],
        state["killed_champion"],
    )


def trials_markdown(trials: list[Trial], duration: float, seed: int, command: str, started: str) -> str:
    """The table of trials and the totals, as docs/RELIABILITY.md shows them."""
    lines = [
        f"Measured {started} with `{command}` (seed {seed}); an uninterrupted run took {duration:.1f} s.",
        "",
        "| # | aimed at | killed at (s after start) | step running (event log) | re-run | champions after | "
        "champion from the killed run | problems |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        champs = ", ".join(f"{m} v{v}" for m, v in t.champions.items()) or "-"
        aim = t.target if t.target in ("uniform", "start-up") else f"{t.target} +{t.offset_s:.2f} s"
        lines.append(
            f"| {t.n} | {aim} | {t.kill_at_s:.1f} | `{t.step or 'before the first step'}` | "
            f"{'ok' if t.rerun_ok else 'FAILED'} {t.rerun_s:.0f} s | {champs} | "
            f"{', '.join(t.killed_champion) or 'no'} | {'; '.join(t.problems) or 'none'} |"
        )
    hit = sorted({t.window for t in trials})
    bad = [t for t in trials if t.problems]
    lines += [
        "",
        f"Totals: {len(trials)} trials; windows hit: {', '.join(hit)}; trials with a problem: {len(bad)}; "
        f"re-runs failed: {sum(not t.rerun_ok for t in trials)}; champion from an incomplete run: "
        f"{sum('incomplete run' in p for t in trials for p in t.problems)}; champion trained by the killed run "
        f"(complete, allowed): {sum(bool(t.killed_champion) for t in trials)}.",
    ]
    return "\n".join(lines)


# -- concurrency -------------------------------------------------------------------------------------


def concurrent_runs(work: Path, landing: Path, expected: dict, stagger_s: float = 2.0) -> dict:
    """Two full runs on one warehouse and registry, the second `stagger_s` later: both wait their turn."""
    box = Sandbox.create(work / "concurrent", landing)
    first = Run(box, "first").start()
    time.sleep(stagger_s)
    second = Run(box, "second").start()
    codes = [first.wait(timeout=900), second.wait(timeout=900)]
    problems = [
        f"run {i + 1} failed (exit {c}): {r.output()[-400:]}"
        for i, (c, r) in enumerate(zip(codes, (first, second), strict=True))
        if c != 0
    ]
    problems += compare_tables(expected, table_digests(box.warehouse))
    state = check_registry(box)
    problems += state["problems"]
    con = duckdb.connect(str(box.warehouse), read_only=True)
    try:
        decisions = {
            m: con.execute(
                f"SELECT version, promoted, champion_version_before FROM models.{m}_champion "
                "ORDER BY recorded_at"
            ).fetchall()
            for m in MODELS
        }
    finally:
        con.close()
    return {
        "codes": codes,
        "problems": problems,
        "champions": state["champions"],
        "decisions": decisions,
        "seconds": [round(time.monotonic() - r.started, 1) for r in (first, second)],
    }


def run_while_reader_open(
    work: Path, landing: Path, expected: dict, hold_s: float = 15.0, open_after_s: float = 8.0
) -> dict:
    """A full run while a BI tool holds the warehouse open read-only for `hold_s`: the run waits its turn."""
    box = Sandbox.create(work / "bi-reader", landing)
    opened: list[float] = []

    def reader() -> None:
        # Like a BI tool, it retries while the run holds the file for a write.
        while True:
            try:
                con = duckdb.connect(str(box.warehouse), read_only=True)
                break
            except duckdb.Error:
                time.sleep(0.1)
        try:
            con.execute("SELECT count(*) FROM information_schema.tables").fetchall()
            opened.append(time.monotonic() - run.started)
            time.sleep(hold_s)
        finally:
            con.close()

    run = Run(box, "with-reader").start()
    time.sleep(open_after_s)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    code = run.wait(timeout=900)
    thread.join()
    problems = [] if code == 0 else [f"run failed (exit {code}): {run.output()[-400:]}"]
    if code == 0:
        problems += compare_tables(expected, table_digests(box.warehouse))
        problems += check_registry(box, load=False)["problems"]
    return {
        "code": code,
        "problems": problems,
        "reader_opened_at_s": round(opened[0], 1) if opened else None,
        "held_s": hold_s,
        "run_s": round(time.monotonic() - run.started, 1),
    }
