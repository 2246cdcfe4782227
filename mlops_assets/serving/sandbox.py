"""A self-contained setup to run the service against: a warehouse with clean.tasks and an MLflow store
with trained champions, built from the seeded synthetic sample without running the pipeline.

Used by the service tests and scripts/bench_serving.py; also handy to try the service::

    paths = build_sandbox(Path("/tmp/sandbox"), n_tasks=3000)
    # MLOPS_WAREHOUSE=<paths.warehouse> MLFLOW_TRACKING_URI=<paths.tracking_uri> python -m mlops_assets.serving
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mlops_assets.lib import features, registry, splits, synthetic, training

QUICK = training.TrainConfig(n_trials=2, cv_folds=0, num_boost_round=300, early_stopping_rounds=30)


@dataclass(frozen=True)
class Sandbox:
    """Where the sandbox lives; ``env()`` is what the service process needs."""

    root: Path
    warehouse: Path
    tracking_uri: str
    artifacts: Path

    def env(self) -> dict[str, str]:
        return {
            "MLOPS_HOME": str(self.root),  # locations not set here (reports, exports) stay in the sandbox
            "MLOPS_WAREHOUSE": str(self.warehouse),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLOPS_MLFLOW_ARTIFACTS": str(self.artifacts),
        }


@contextlib.contextmanager
def _tracking_env(sandbox: Sandbox) -> Iterator[None]:
    """MLFLOW_TRACKING_URI set to the sandbox store for the block: registering a version resolves the
    run's logged model through the process-wide tracking URI, not the client's (else ./mlflow.db).
    """
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = sandbox.tracking_uri
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def clean_tasks(n_tasks: int, seed: int = 7) -> pl.DataFrame:
    """synthetic_tasks in the clean.tasks spelling (canonical priority/type, assignee_id)."""
    raw = synthetic.synthetic_tasks(n_tasks, seed=seed)
    return raw.with_columns(
        pl.col("assignee_login").alias("assignee_id"),
        pl.col("reporter_login").alias("reporter_id"),
        pl.col("priority_canonical").alias("priority"),
        pl.col("type_canonical").alias("type"),
    ).drop("assignee_login", "assignee_name", "reporter_login", "reporter_name",
           "priority_canonical", "type_canonical")  # fmt: skip


def empty_sandbox(root: Path, tracking_uri: str | None = None) -> Sandbox:
    """Paths under `root`; the store is created (MLflow migrations) on first use."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "mlflow").mkdir(exist_ok=True)
    return Sandbox(
        root=root,
        warehouse=root / "warehouse.duckdb",
        tracking_uri=tracking_uri or f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
        artifacts=root / "mlflow" / "artifacts",
    )


def write_tasks(sandbox: Sandbox, tasks: pl.DataFrame) -> None:
    from mlops_assets.lib.warehouse import Warehouse

    Warehouse(sandbox.warehouse).replace_tables({"clean.tasks": tasks})


def train_and_register(
    sandbox: Sandbox,
    tasks: pl.DataFrame,
    spec: training.ModelSpec,
    config: training.TrainConfig = QUICK,
    *,
    force_promote: bool = True,
) -> registry.GateDecision:
    """Train `spec` on `tasks`, log it and register it; force_promote skips the floors and the margin."""
    with _tracking_env(sandbox):
        return _train_and_register(sandbox, tasks, spec, config, force_promote)


def _train_and_register(
    sandbox: Sandbox,
    tasks: pl.DataFrame,
    spec: training.ModelSpec,
    config: training.TrainConfig,
    force_promote: bool,
) -> registry.GateDecision:
    history = features.History.from_tasks(tasks)
    frame = training.model_input(spec, tasks, features.build_features(tasks, history), history.as_of)
    model_splits = splits.time_split(frame)
    trained = training.train_model(spec, model_splits, config)
    run_id = registry.log_training_run(
        spec, trained, model_splits, tasks=tasks, history=history,
        tracking_uri=sandbox.tracking_uri, artifacts_dir=sandbox.artifacts,
    )  # fmt: skip
    client = registry.get_client(sandbox.tracking_uri)
    if not force_promote:
        return registry.register_and_gate(
            spec, run_id, trained.metrics, test=model_splits["test"], client=client
        )
    worst = float("-inf") if spec.higher_is_better else float("inf")
    return registry.register_and_gate(
        spec, run_id, trained.metrics, score_champion=lambda version, c: worst, floors=(), client=client
    )


def build_sandbox(
    root: Path, n_tasks: int = 1500, seed: int = 7, config: training.TrainConfig = QUICK
) -> Sandbox:
    """Warehouse with clean.tasks and both models trained and promoted (version 1)."""
    sandbox = empty_sandbox(root)
    tasks = clean_tasks(n_tasks, seed)
    write_tasks(sandbox, tasks)
    for name in ("late_risk", "cycle_time"):
        train_and_register(sandbox, tasks, training.get_spec(name), config)
    return sandbox


def weaker_spec(name: str = "late_risk") -> training.ModelSpec:
    """A spec on a few features only: a different model to promote in reload tests."""
    return dataclasses.replace(
        training.get_spec(name), features=("priority", "project", "deadline_horizon_days", "story_points")
    )
