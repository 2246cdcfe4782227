"""The champion gate end to end: the registry's decision, its history row and the champion's drift reference.

The gate is a chain of separate writes (MLflow version, tags, alias; a warehouse row; the
reference table), so a crash can stop it between any two. :func:`run_gate` is written to be run
again after such a crash and converge: the registry side resumes (lib/registry.py
``register_and_gate``), the history row is written once per run, and the reference is rebuilt
whenever it is not the current champion's (:func:`converge_reference`), from the champion's run
tags, whatever the crash, a rollback or an earlier version left behind.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets.lib import registry, training
from mlops_assets.lib import splits as splits_lib

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_assets.lib.warehouse import Warehouse


MARGIN_RANGE = (0.0, 1.0)  # a gate margin is a gain in the gate metric; ROC-AUC cannot gain more than 1


def check_margin(margin: float) -> float:
    """`margin` when it is a usable gate margin; a ValueError says the range and what the margin means."""
    low, high = MARGIN_RANGE
    if not low <= margin <= high:  # NaN fails too
        raise ValueError(
            f"gate margin {margin!r} is out of range: it is how much a candidate must beat the champion by "
            f"(late_risk: test ROC-AUC, cycle_time: test MAE in days) and must be between {low:g} and {high:g}; "
            "a negative margin would promote a worse model. Leave it unset for the model's default "
            f"({', '.join(f'{n} {s.gate.margin:g}' for n, s in training.MODEL_SPECS.items())})"
        )
    return float(margin)


@dataclass(frozen=True)
class GateOutcome:
    """One gate run: the decision for the candidate, the champion after it, and the reference's state."""

    decision: registry.GateDecision
    champion: str | None  # the champion alias's version after the gate
    reference: str | None  # the version models.<m>_reference describes after the gate
    reference_note: str  # what happened to the reference (kept, rebuilt, or why it could not be)

    @property
    def consistent(self) -> bool:
        """The reference describes the champion (vacuously so when there is no champion)."""
        return self.champion is None or self.reference == self.champion


def data_as_of(tasks: pl.DataFrame) -> datetime:
    """The time the data describes: its latest update (labels are judged as of then, not the wall clock)."""
    latest = tasks.select(
        pl.max_horizontal(pl.col("created_at").max(), pl.col("updated_at").max(), pl.col("resolved_at").max())
    ).item()
    return min(latest, datetime.now(UTC)) if latest else datetime.now(UTC)


def beats_baseline(
    spec: training.ModelSpec, parts: dict[str, pl.DataFrame], metrics: dict[str, float]
) -> tuple[bool, dict[str, float | None]]:
    """The candidate's first bar, before any champion: (passed, the numbers compared).

    Binary: better Brier than always predicting the train late rate and ROC-AUC above 0.5; regression:
    MAE below the baseline's (``test_baseline_mae``, logged with the training metrics).
    """
    if spec.kind == "binary":
        rate = float(parts["train"]["target"].mean())
        y = parts["test"]["target"].to_numpy()
        base_brier = float(((y - rate) ** 2).mean())
        passed = metrics.get("test_brier", 1.0) < base_brier and metrics.get("test_roc_auc", 0.0) > 0.5
        return passed, {
            "test_brier": metrics.get("test_brier"),
            "baseline_brier": base_brier,
            "test_roc_auc": metrics.get("test_roc_auc"),
        }
    passed = metrics.get("test_mae", float("inf")) < metrics.get("test_baseline_mae", float("-inf"))
    return passed, {
        "test_mae": metrics.get("test_mae"),
        "test_baseline_mae": metrics.get("test_baseline_mae"),
    }


def run_gate(
    spec: training.ModelSpec,
    wh: Warehouse,
    client: MlflowClient,
    candidate: dict[str, Any],
    parts: dict[str, pl.DataFrame],
    *,
    margin: float | None = None,
) -> GateOutcome:
    """Gate the candidate (a models.<m>_candidate row), record the decision once, converge the reference."""
    name, run_id = spec.name, candidate["run_id"]
    if margin is not None:
        check_margin(margin)
    decision = registry.register_and_gate(
        spec, run_id, json.loads(candidate["metrics"]), test=parts["test"], margin=margin, client=client
    )
    record_decision(wh, name, run_id, decision)
    champion = registry.champion_version(name, client)
    reference, note = converge_reference(wh, name, champion, client, parts["train"])
    return GateOutcome(decision, champion, reference, note)


def record_decision(wh: Warehouse, name: str, run_id: str, d: registry.GateDecision) -> bool:
    """Append the decision to models.<m>_champion unless this run's decision is there already."""
    from mlops_assets.lib.warehouse import add_missing_columns

    table = f"models.{name}_champion"
    row = pl.DataFrame(
        [
            {
                "recorded_at": datetime.now(UTC),
                "run_id": run_id,
                "version": d.version,
                "promoted": d.promoted,
                "reason": d.reason,
                "champion_version_before": d.champion_version_before,
                "candidate_value": d.candidate_value,
                "champion_value": d.champion_value,
            }
        ],
        schema_overrides={"champion_version_before": pl.String, "champion_value": pl.Float64},
    )
    # The check and the insert share one write connection (one writer at a time, for a DuckDB file and
    # a DuckLake alike): two gates of one candidate (concurrent runs) otherwise both found no row.
    with wh.connect() as con:
        con.register("_decision", row.to_arrow())
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _decision LIMIT 0")
            add_missing_columns(con, table, "_decision")
            if con.execute(f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1", [run_id]).fetchall():
                con.execute("ROLLBACK")
                return False
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _decision")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(Exception):  # the error may have ended the transaction already
                con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_decision")
    return True


def reference_version(wh: Warehouse, name: str) -> str | None:
    """The champion version models.<m>_reference describes, or None."""
    table = f"models.{name}_reference"
    if not wh.table_exists(table):
        return None
    found = wh.query(f"SELECT champion_version FROM {table} LIMIT 1")
    return found.item() if found.height else None


def converge_reference(
    wh: Warehouse, name: str, champion: str | None, client: MlflowClient, train: pl.DataFrame | None = None
) -> tuple[str | None, str]:
    """Make models.<m>_reference describe ``champion``: (the version it describes now, what was done).

    The window comes from the champion's run tags (``train_window.*``, ``data_as_of``); for a run
    logged before those tags existed, from ``train`` (the current train split) when its content
    hash is the run's ``split_hash.train``. Otherwise the reference is left as it is and the note
    says to retrain (the blocking check on the gate then fails).
    """
    stored = reference_version(wh, name)
    if champion is None or stored == champion:
        return stored, "no champion" if champion is None else f"reference is of champion v{champion}"
    window = registry.training_window(client, name, champion)
    start, end, as_of = window.start, window.end, window.as_of
    if (
        start is None
        and train is not None
        and train.height
        and splits_lib.hash_as_logged(train, window.train_hash) == window.train_hash
    ):
        start, end = train.get_column("created_at").min(), train.get_column("created_at").max()
    if start is None:
        return stored, (
            f"champion v{champion}'s training window is unknown (its run predates the train_window tags "
            "and its train split is gone): retrain (retrain_job) so the gate records a reference"
        )
    save_reference(wh, name, start, end, champion, client.get_model_version(name, champion).run_id, as_of)
    return (
        champion,
        f"reference rebuilt for champion v{champion} (it was {'absent' if stored is None else 'v' + stored})",
    )


def save_reference(
    wh: Warehouse,
    name: str,
    start: datetime,
    end: datetime,
    version: str,
    run_id: str,
    trained_as_of: datetime | None = None,
) -> None:
    """models.<m>_reference: features of every task created in a champion's training window, the drift reference.

    Also records the data's as-of time at training (`trained_as_of`, now's data as-of when the run
    did not log it): labels known later are the new labels monitoring/model_performance judges it on.
    """
    if trained_as_of is None:
        trained_as_of = data_as_of(wh.query("SELECT created_at, updated_at, resolved_at FROM clean.tasks"))
    rows = wh.query("SELECT * FROM features.task_features WHERE created_at BETWEEN ? AND ?", [start, end])
    wh.replace_tables(
        {
            f"models.{name}_reference": rows.with_columns(
                pl.lit(str(version)).alias("champion_version"),
                pl.lit(run_id).alias("run_id"),
                pl.lit(trained_as_of).alias("trained_as_of"),
            )
        }
    )
