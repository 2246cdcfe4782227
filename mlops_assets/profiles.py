"""Deployment profiles: the same assets on one laptop (`local`) or spread over machines (`cluster`).

MLOPS_PROFILE picks one (default `local`). Only the executor differs in code; every storage
location comes from the environment through the resources, so no asset and nothing in
``mlops_assets/lib/`` knows which profile runs.

- ``local``: a DuckDB file, SQLite instance storage (dagster.yaml), an MLflow SQLite store, the
  in-process executor.
- ``cluster``: a DuckLake warehouse (catalog in PostgreSQL, Parquet under a shared path), PostgreSQL
  instance storage (deploy/cluster/dagster.yaml), an MLflow tracking server, and every step sent to
  Celery workers through Redis. See docs/SCALING.md.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets.lib.settings import env, is_set

PROFILES = ("local", "cluster")

# What the cluster profile cannot start without, with what each is for (the error names them).
CLUSTER_ENV = {
    "MLOPS_WAREHOUSE": "the DuckLake catalog, e.g. 'ducklake:postgres:dbname=ducklake host=db user=mlops password=...'",
    "MLOPS_WAREHOUSE_DATA_PATH": "a folder every worker mounts, where DuckLake writes its Parquet files",
    "MLFLOW_TRACKING_URI": "the MLflow tracking server, e.g. http://mlflow:5000",
    "MLOPS_CELERY_BROKER": "the Celery broker, e.g. redis://redis:6379/0",
    "MLOPS_CELERY_BACKEND": "the Celery result backend, e.g. redis://redis:6379/1",
}


class ProfileError(RuntimeError):
    """The profile is unknown or its settings are missing; the message says what to set."""


def current_profile() -> str:
    """MLOPS_PROFILE, `local` when unset."""
    profile = env("MLOPS_PROFILE").lower()
    if profile not in PROFILES:
        raise ProfileError(f"MLOPS_PROFILE={profile!r} is not a profile: use one of {', '.join(PROFILES)}")
    return profile


def check_cluster_env() -> None:
    """Raise naming every missing or wrong cluster setting at once."""
    problems = [f"{name} ({what})" for name, what in CLUSTER_ENV.items() if not is_set(name)]
    warehouse = env("MLOPS_WAREHOUSE") if is_set("MLOPS_WAREHOUSE") else ""
    if warehouse and not warehouse.startswith("ducklake:"):
        problems.append(
            "MLOPS_WAREHOUSE must be a DuckLake URL starting with 'ducklake:' (got a file path: "
            "several machines cannot share one DuckDB file)"
        )
    if problems:
        raise ProfileError(
            "MLOPS_PROFILE=cluster needs: "
            + "; ".join(problems)
            + " (see deploy/cluster/cluster.env.example)"
        )


def executor(profile: str | None = None) -> dg.ExecutorDefinition:
    """The executor of every job: in-process locally, Celery workers on the cluster."""
    profile = profile or current_profile()
    if profile == "local":
        # Each multiprocess step would re-import the ML stack (~6 s), and a DuckDB file admits
        # one writing process anyway (docs/ARCHITECTURE.md).
        return dg.in_process_executor
    check_cluster_env()
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:  # a laptop install leaves the cluster stack out (pyproject's `cluster` extra)
        raise ProfileError(
            f"MLOPS_PROFILE=cluster needs the cluster extra ({exc}): "
            "pip install -e '.[cluster]' (Celery, PostgreSQL drivers, DuckLake extensions)"
        ) from None

    return celery_executor.configured(
        {
            "broker": {"env": "MLOPS_CELERY_BROKER"},
            "backend": {"env": "MLOPS_CELERY_BACKEND"},
            "config_source": CELERY_SETTINGS,
        },
        name="celery",
    )


# Settings shared by the executor and the workers (deploy/cluster/celery.yaml repeats them and adds the
# workers' `imports: [mlops_assets.celery_worker]`, which lets steps start processes in the pool).
CELERY_SETTINGS = {
    # A step is a long task (a training may take minutes): take one at a time so that an idle
    # worker, not a busy one's prefetch buffer, gets the next step.
    "worker_prefetch_multiplier": 1,
    # With early acks a worker still reserves one more step while it runs one: at 1M tasks the batch
    # scores waited 279 s behind the drift report on a busy worker while the other was idle. Late acks
    # make a worker hold only the step it runs. A worker process killed mid-step still acks it (the run
    # fails with WorkerLostError and the daemon retries it); only a lost worker machine leaves it
    # unacked, and Redis redelivers it after the visibility timeout: longer than any step.
    "task_acks_late": True,
    "broker_transport_options": {"visibility_timeout": 12 * 3600},
    "broker_connection_retry_on_startup": True,
}
