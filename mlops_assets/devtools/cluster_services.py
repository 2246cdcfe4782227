"""Real cluster-profile services for the tests and scripts/bench_cluster.py: PostgreSQL + Redis
(scripts/ci_services.sh), an MLflow tracking server, Celery workers, and `dagster asset materialize` runs,
all on 127.0.0.1. Needs a source checkout (scripts/, deploy/cluster/).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops_assets.devtools.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "scripts" / "ci_services.sh"
INSTANCE_ENV = (
    "MLOPS_PG_HOST",
    "MLOPS_PG_PORT",
    "MLOPS_PG_USER",
    "MLOPS_PG_PASSWORD",
    "MLOPS_DAGSTER_DB",
    "MLOPS_DAGSTER_STORAGE",
    "MLOPS_DAGSTER_COMPUTE_LOGS",
)


class ServicesUnavailable(RuntimeError):
    """The services cannot start on this machine (binaries or packages missing); the message says what to install."""


def missing_binaries() -> str | None:
    """Why the services cannot start here, or None."""
    has_pg = any(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb")
    if not has_pg:
        return "PostgreSQL binaries (initdb) not found: run `scripts/ci_services.sh install` (CI does)"
    if not shutil.which("redis-server"):
        return "redis-server not found: run `scripts/ci_services.sh install` (CI does)"
    for module in ("dagster_celery", "dagster_postgres", "psycopg2", "duckdb_extension_ducklake"):
        try:
            __import__(module)
        except ImportError:
            return f"Python package {module} is not installed: pip install -e '.[cluster]' (make test's dev extra has it)"
    return None


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    return env


@dataclass
class Cluster:
    """Paths and environment of one test cluster."""

    root: Path
    pg: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    mlflow: subprocess.Popen | None = None
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def start_mlflow(self) -> None:
        """Start the tracking server; wait_mlflow() waits for it (its PostgreSQL migrations take a while)."""
        port = free_port()
        with open(self.root / "mlflow.log", "wb") as log:  # the server writes to its own copy of the file
            proc = subprocess.Popen(
                [
                    str(BIN / "mlflow"),
                    "server",
                    "--backend-store-uri",
                    self.pg["MLOPS_PG_URL"].replace("postgresql://", "postgresql+psycopg2://") + "/mlflow",
                    "--artifacts-destination",
                    str(self.root / "mlflow-artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self.env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
        self.mlflow = proc

    def wait_mlflow(self) -> None:
        uri = self.env["MLFLOW_TRACKING_URI"]
        _wait(lambda: _http_ok(f"{uri}/health"), self.mlflow, self.root / "mlflow.log", 240)

    def start_worker(self, name: str) -> subprocess.Popen:
        log_path = self.root / f"worker-{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    str(BIN / "dagster-celery"),
                    "worker",
                    "start",
                    "-A",
                    "dagster_celery.app",
                    "-y",
                    str(ROOT / "deploy" / "cluster" / "celery.yaml"),
                    "-n",
                    name,
                    "--",
                    "--concurrency",
                    "1",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        self.workers[name] = proc
        return proc

    def wait_workers_ready(self) -> None:
        for name, proc in self.workers.items():
            log = self.root / f"worker-{name}.log"
            _wait(lambda log=log: b" ready." in log.read_bytes(), proc, log, 120)

    def materialize(
        self, select: str, config: dict | None = None, extra_env: dict | None = None, wait: bool = True
    ) -> subprocess.Popen | subprocess.CompletedProcess:
        """`dagster asset materialize` in the cluster profile (the CLI orchestrates; Celery workers run steps)."""
        cmd = [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "mlops_assets.definitions",
            "--select",
            select,
        ]
        if config:
            cmd += ["--config-json", json.dumps(config)]
        env = {**self.env, **(extra_env or {})}
        if wait:
            return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def launch(
        self,
        select: str,
        config: dict | None = None,
        tags: dict | None = None,
        stop_instigators: bool = False,
    ) -> str:
        """Submit a run to the instance's queue as the UI does (cluster_launch.py); the daemon runs it. Returns its id."""
        cmd = [
            sys.executable,
            "-m",
            "mlops_assets.devtools.cluster_launch",
            "--select",
            select,
            "--config-json",
            json.dumps(config or {}),
            "--tags",
            json.dumps(tags or {}),
        ]
        if stop_instigators:
            cmd.append("--stop-instigators")
        out = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"launching {select} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        return next(line.split("=", 1)[1] for line in out.stdout.splitlines() if line.startswith("run_id="))

    def start_daemon(self) -> subprocess.Popen:
        """`dagster-daemon run` on the cluster workspace: dequeues queued runs and retries failed ones."""
        with open(self.root / "daemon.log", "ab") as log:
            proc = subprocess.Popen(
                [
                    str(BIN / "dagster-daemon"),
                    "run",
                    "-w",
                    str(ROOT / "deploy" / "cluster" / "workspace.yaml"),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop_process(self, proc: subprocess.Popen) -> None:
        """Stop one process this cluster started (and its children: the daemon's code server and runs)."""
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait(timeout=10)

    def instance(self):
        """The cluster's Dagster instance, read from this process (its config reads these variables)."""
        import dagster as dg

        for name in INSTANCE_ENV:
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = self.env[name]
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def stop(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for proc in reversed(self.procs):
            _kill_group(proc, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _kill_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)


def start_cluster(root: Path) -> Cluster:
    """PostgreSQL, Redis, the cluster instance (deploy/cluster/dagster.yaml) and its environment."""
    reason = missing_binaries()
    if reason:
        raise ServicesUnavailable(reason)
    out = subprocess.run(
        ["bash", str(SCRIPT), "start", str(root / "services")], capture_output=True, text=True, timeout=180
    )
    if out.returncode != 0:
        raise RuntimeError(f"scripts/ci_services.sh start failed:\n{out.stdout}\n{out.stderr}")
    pg = read_env_file(root / "services" / "services.env")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "cluster" / "dagster.yaml", home / "dagster.yaml")
    redis = pg["MLOPS_REDIS_URL"].rsplit("/", 1)[0]
    cluster = Cluster(root=root, pg=pg)
    cluster.env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "MLFLOW_", "DAGSTER_"))},
        **pg,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLOPS_PROFILE": "cluster",
        "DAGSTER_HOME": str(home),
        "MLOPS_DAGSTER_DB": "dagster",
        "MLOPS_DAGSTER_STORAGE": str(root / "dagster_storage"),
        "MLOPS_DAGSTER_COMPUTE_LOGS": str(root / "dagster_logs"),
        "MLOPS_CELERY_BROKER": f"{redis}/0",
        "MLOPS_CELERY_BACKEND": f"{redis}/1",
        "MLOPS_LANDING_DIR": str(root / "landing"),
        "MLOPS_REPORTS_DIR": str(root / "reports"),
        # Only for a local MLflow store: with the tracking server, artifacts go through it to its
        # --artifacts-destination (root/mlflow-artifacts), and this folder must stay unused.
        "MLOPS_MLFLOW_ARTIFACTS": str(root / "client-artifacts"),
        "MLOPS_WAREHOUSE": f"ducklake:postgres:dbname=ducklake {pg['MLOPS_PG_DSN']}",
        "MLOPS_WAREHOUSE_DATA_PATH": str(root / "lakes" / "ducklake"),
        "PYTHONUNBUFFERED": "1",
    }
    # Create the instance schema once, before any worker or run touches it: processes that start
    # together on an empty database race on CREATE TABLE (DuplicateObject "run_tags"), as CI saw.
    out = subprocess.run(
        [str(BIN / "dagster"), "instance", "migrate"],
        cwd=ROOT,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(f"dagster instance migrate failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return cluster


def stop_services(root: Path) -> None:
    subprocess.run(["bash", str(SCRIPT), "stop", str(root / "services")], capture_output=True, timeout=60)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def _http_ok(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def _wait(ready, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    raise RuntimeError(f"{proc.args[:3]} not ready after {timeout_s:.0f}s:\n{log.read_text()[-3000:]}")
