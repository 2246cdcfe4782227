"""`mlops-assets drift-demo`: land a drifted batch and watch the instance heal itself, step by step.

Assumes `make run` was done (a warehouse with clean tasks and two champions). Writes the drift batch
into the landing zone and leaves the rest to the instance: the landing sensor ingests it, the eager
automation rebuilds the clean layer, features, scores and monitoring, the drift check fails, the retrain
sensor requests one retraining run, the gate decides, and the open tasks are rescored. Starts
`dagster-daemon run` when no daemon is alive on the instance (and stops it again), waits (bounded),
prints what happened, and exits 0 only when the loop completed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlops_assets.lib import settings

DRIFT_KEY = ("monitoring", "data_drift")
SETTLE_S = 45.0  # quiet time after the last run: more than one tick of every sensor (30 s)


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stamp(ts: float | None = None) -> str:
    return datetime.fromtimestamp(ts or time.time()).strftime("%H:%M:%S")


def preflight(warehouse: Path, landing: Path) -> str | None:
    """None when the demo can run, else what to do first."""
    from mlops_assets.lib import registry, scoring
    from mlops_assets.lib.warehouse import Warehouse

    if not settings.is_set("DAGSTER_HOME"):
        return "DAGSTER_HOME is not set: run `make drift-demo` (it uses the .dagster instance of `make run`)"
    wh = Warehouse(warehouse, lock_timeout_s=30)
    if not wh.table_exists("clean.tasks") or not wh.table_exists("models.late_risk_reference"):
        return f"no trained warehouse at {warehouse}: run `make run` first"
    versions = scoring.champion_versions(registry.get_client())
    if not all(versions.values()):
        return f"no champion for {[m for m, v in versions.items() if not v]}: run `make run` first"
    if any(landing.rglob("*-drift*")):
        return (
            f"a drift batch is already in {landing} (an earlier demo): start fresh with "
            "`make clean-data && make run`, then `make drift-demo`"
        )
    return None


def daemon_alive(instance) -> bool:
    beats = instance.get_daemon_heartbeats()
    return any(time.time() - beat.timestamp < 60 for beat in beats.values())


def start_daemon(log_path: Path) -> subprocess.Popen:
    """`dagster-daemon run` on this code location in its own process group (stopped by `stop_daemon`)."""
    exe = Path(sys.executable).parent / "dagster-daemon"
    log = log_path.open("ab")
    # workspace.yaml names the location `mlops_assets` as `make ui` and `dg dev` do: sensor cursors are kept
    # per location name, so the demo's daemon goes on from theirs (`-m` alone would name it after the module)
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "mlops_assets.definitions"]
    return subprocess.Popen(
        [str(exe), "run", *target],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=os.environ.copy(),
    )


def stop_daemon(process: subprocess.Popen) -> None:
    """SIGTERM to the daemon's process group (it and the code server it spawned), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Watch:
    """What the demo saw happen since it landed the batch."""

    started: float
    statuses: dict[str, str] = field(default_factory=dict)
    drift_checks: list[tuple[float, bool, str, str]] = field(default_factory=list)
    seen_checks: set[int] = field(default_factory=set)
    retrain_runs: list[str] = field(default_factory=list)
    gate: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    last_change: float = 0.0
    retrain_done_at: float | None = None


def _describe(run) -> str:
    tags = run.tags
    trigger = tags.get("mlops/trigger") or (
        "automation"
        if "dagster/from_automation_condition" in tags
        or tags.get("dagster/sensor_name") == "automation_condition_sensor"
        else tags.get("dagster/sensor_name") or tags.get("dagster/schedule_name") or "manual"
    )
    keys = sorted(k.to_user_string() for k in (run.asset_selection or []))
    shown = ", ".join(keys[:6]) + (f" (+{len(keys) - 6})" if len(keys) > 6 else "")
    return f"{run.job_name} [{trigger}] {shown}"


def poll(instance, watch: Watch) -> None:
    import dagster as dg

    from mlops_assets.lib import monitoring

    runs = instance.get_runs(dg.RunsFilter(created_after=datetime.fromtimestamp(watch.started, UTC)))
    for run in sorted(runs, key=lambda r: r.run_id):
        status = run.status.value
        if watch.statuses.get(run.run_id) != status:
            watch.statuses[run.run_id] = status
            watch.last_change = time.time()
            out(f"[{_stamp()}] run {run.run_id[:8]} {status:<8} {_describe(run)}")
            if run.tags.get("mlops/trigger") == "retrain" and run.run_id not in watch.retrain_runs:
                watch.retrain_runs.append(run.run_id)
                out(f"           retrain sensor: failed checks {run.tags.get('mlops/failed_checks')}")
            if run.tags.get("mlops/trigger") == "retrain" and status in ("SUCCESS", "FAILURE", "CANCELED"):
                watch.retrain_done_at = time.time()
                _gate(instance, run.run_id, watch)
                if status == "FAILURE":
                    _blocked(instance, run.run_id, watch)
    record = instance.get_latest_asset_check_evaluation_record(
        dg.AssetCheckKey(dg.AssetKey(list(DRIFT_KEY)), monitoring.DRIFT_CHECK)
    )
    evaluation = record.evaluation if record and record.status.value != "PLANNED" else None
    # dated by its evaluation, not its planning: a monitoring run queued during the retrain is planned before it ends
    evaluated_at = monitoring.check_evaluated_at(record) if evaluation else 0.0
    if evaluation and evaluated_at > watch.started and record.id not in watch.seen_checks:
        watch.seen_checks.add(record.id)
        meta = {k: v.value for k, v in evaluation.metadata.items()}
        verdict = "PASSED" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        watch.drift_checks.append(
            (evaluated_at, evaluation.passed, str(meta.get("drift_share")), str(meta.get("reason")))
        )
        out(
            f"[{_stamp()}] drift check {verdict}: drift share {meta.get('drift_share')}, {meta.get('reason')}"
        )


def _gate(instance, run_id: str, watch: Watch) -> None:
    import dagster as dg

    for model in ("late_risk", "cycle_time"):
        records = instance.fetch_materializations(
            dg.AssetKey(["models", f"{model}_champion"]), limit=1
        ).records
        if records and records[0].run_id == run_id:
            meta = {k: v.value for k, v in records[0].asset_materialization.metadata.items()}
            watch.gate[model] = (
                f"{meta.get('decision')} (v{meta.get('candidate_version')}): {meta.get('reason')}"
            )
            out(f"           gate {model}: {watch.gate[model]}")


def _blocked(instance, run_id: str, watch: Watch) -> None:
    """A retraining run that failed: name the blocking checks that stopped a candidate (its champion stays)."""
    import dagster as dg

    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.asset_check_evaluation
        if (
            evaluation is not None
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            model = evaluation.asset_key.path[-1].removesuffix("_candidate")
            detail = ", ".join(
                f"{k}={v.value:.4g}" if isinstance(v.value, float) else f"{k}={v.value}"
                for k, v in evaluation.metadata.items()
            )
            watch.blocked[model] = (
                f"candidate stopped by blocking check {evaluation.check_name} ({detail}); champion stays"
            )
            out(f"           {model}: {watch.blocked[model]}")


def in_flight(instance) -> int:
    import dagster as dg

    statuses = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    return len(instance.get_run_ids(dg.RunsFilter(statuses=statuses)))


def finished(instance, watch: Watch) -> tuple[bool, str | None]:
    """(done, failure reason): done once the retrain is over, drift was re-measured after it and all is quiet."""
    quiet = in_flight(instance) == 0 and time.time() - watch.last_change > SETTLE_S
    # a retraining run that failed only because a candidate was stopped by a blocking check is a decision
    failed = [
        r
        for r, s in watch.statuses.items()
        if s == "FAILURE" and not (r in watch.retrain_runs and watch.blocked)
    ]
    if failed and quiet:
        return True, f"run(s) {', '.join(r[:8] for r in failed)} failed (see the Dagster UI)"
    if not watch.retrain_runs:
        if quiet and watch.drift_checks and all(passed for _, passed, _, _ in watch.drift_checks):
            return True, "drift was not detected, so nothing was retrained"
        return False, None
    after = [c for c in watch.drift_checks if watch.retrain_done_at and c[0] > watch.retrain_done_at]
    return bool(watch.retrain_done_at and after and quiet), None


def run_demo(tasks: int, main_tasks: int, seed: int, timeout_s: float) -> int:
    import dagster as dg

    from mlops_assets.lib import registry, scoring, synthetic
    from mlops_assets.lib.warehouse import Warehouse

    warehouse = Path(settings.env("MLOPS_WAREHOUSE"))
    landing = Path(settings.env("MLOPS_LANDING_DIR"))
    problem = preflight(warehouse, landing)
    if problem:
        out(f"drift-demo: {problem}")
        return 2
    instance = dg.DagsterInstance.get()
    client = registry.get_client()
    before = scoring.champion_versions(client)
    out(f"champions before: {', '.join(f'{m} v{v}' for m, v in before.items())}")
    watch = Watch(started=time.time())
    watch.last_change = watch.started
    synthetic.generate(landing, n_tasks=tasks, seed=seed, drift=True, main_tasks=main_tasks)
    out(
        f"[{_stamp()}] landed a drifted batch of {tasks} tasks (new Growth team, more urgent work, slower delivery) "
        f"in {landing}"
    )
    daemon = None
    if daemon_alive(instance):
        out("a Dagster daemon is already running on this instance: using it")
    else:
        log_path = Path(settings.env("DAGSTER_HOME")) / "drift-demo-daemon.log"
        daemon = start_daemon(log_path)
        out(f"started dagster-daemon (pid {daemon.pid}, log {log_path})")
    reason = "timed out"
    try:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            poll(instance, watch)
            done, why = finished(instance, watch)
            if done:
                reason = why
                break
            if daemon is not None and daemon.poll() is not None:
                reason = f"the daemon exited with code {daemon.returncode} (see its log)"
                break
            time.sleep(3)
        else:
            reason = f"the loop did not finish within {timeout_s:.0f} s"
    finally:
        if daemon is not None:
            stop_daemon(daemon)
            out("stopped the daemon this demo started")
    after = scoring.champion_versions(client)
    scores = (
        Warehouse(warehouse)
        .query("SELECT count(*) AS n, any_value(late_risk_version) AS v FROM serving.task_risk_scores")
        .row(0)
    )
    out("")
    out("summary")
    out(
        f"  runs: {len(watch.statuses)} ({', '.join(f'{s}: {list(watch.statuses.values()).count(s)}' for s in sorted(set(watch.statuses.values())))})"
    )
    for at, passed, share, why in watch.drift_checks:
        out(f"  drift check at {_stamp(at)}: {'passed' if passed else 'failed'}, drift share {share} ({why})")
    out(f"  retraining runs requested: {len(watch.retrain_runs)}")
    for model, decision in {**watch.gate, **watch.blocked}.items():
        out(f"  {model}: {decision}")
    out(f"  champions before: {before}  after: {after}")
    out(f"  open tasks scored: {scores[0]} (late_risk v{scores[1]})")
    if reason is None:
        out("drift-demo: the loop completed")
        return 0
    out(f"drift-demo: incomplete: {reason}")
    return 1


def cli(args) -> int:
    """Entry point of `mlops-assets drift-demo`."""
    return run_demo(args.tasks, args.main_tasks, args.seed, args.timeout)
