"""Monitoring helpers: the drift window, late labels, performance verdicts, retrain decisions, alerts.

Pure Python (no Dagster): the monitoring assets and sensors call these. ML libraries are imported
inside the functions that need them, so the sensors (which import this module) stay light.

Which features are watched for data drift (:data:`MONITORED_NUMERIC`, :data:`MONITORED_CATEGORICAL`):
the task attributes a user or a tool sets at creation. Left out, with the reason in
:data:`UNMONITORED`: calendar month / day of year (a 30-day window always differs from a year of
training data), the per-project and per-assignee history features (cumulative counts and rates
that grow with time by construction: measured on the synthetic sample without drift, every one of
them scores 0.5-3.6 against the training window, i.e. always "drifted"), and priority_ordinal
(the same information as priority, which would count twice), and the as-of state features (a task's
age, status and changes so far at the prediction time: a window of young tasks always differs). Their effect still shows in the
prediction drift and in the live performance.
"""

from __future__ import annotations

import json
import math
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets.lib.redact import redact, redact_url

if TYPE_CHECKING:
    from mlops_assets.lib.drift import DriftResult
    from mlops_assets.lib.scoring import ServedModel
    from mlops_assets.lib.warehouse import Warehouse

MONITORED_NUMERIC: list[str] = [
    "story_points",
    "original_estimate_h",
    "title_length",
    "description_length",
    "n_labels",
    "has_deadline",
    "deadline_horizon_days",
    "created_weekday",
    "created_hour",
]
MONITORED_CATEGORICAL: list[str] = ["source", "project", "type", "priority"]
_HISTORY = "a history feature: a cumulative count or rate that moves with time by construction"
_PROGRESS = (
    "a task's state as of the prediction time (age, progress, changes so far): the last 30 days' young "
    "tasks differ from the training window's by construction"
)
UNMONITORED: dict[str, str] = {
    "created_month": "seasonal: a short window never matches a year of training data",
    "created_day_of_year": "seasonal: a short window never matches a year of training data",
    "priority_ordinal": "the same information as priority (counted once)",
    **{
        f"{who}_{what}": _HISTORY
        for who in ("project", "assignee")
        for what in ("late_rate", "n_outcomes", "median_cycle_days", "n_resolved", "open_tasks")
    },
    **dict.fromkeys(
        (
            "age_days",
            "days_in_progress",
            "days_in_status",
            "days_to_deadline",
            "deadline_moved_days",
            "has_assignee",
            "n_comments_so_far",
            "n_deadline_moves",
            "n_priority_changes",
            "n_reassignments",
            "n_reopenings",
            "n_status_changes",
            "status_stage",
        ),
        _PROGRESS,
    ),
}

# What the retrain sensor acts on: failed ERROR-severity checks of these names.
DRIFT_CHECK = "drift_share_below_threshold"
PERFORMANCE_CHECKS = ("late_risk_performance_holds", "cycle_time_performance_holds")
RETRAIN_CHECKS = (DRIFT_CHECK, *PERFORMANCE_CHECKS)


# ---------------------------------------------------------------------------------------------------
# the current window


@dataclass(frozen=True)
class Window:
    """The rows created in the last `days` days before the newest created_at of the data."""

    frame: pl.DataFrame
    start: datetime | None
    end: datetime | None

    @property
    def empty(self) -> bool:
        return self.frame.height == 0


def current_window(frame: pl.DataFrame, days: float, column: str = "created_at") -> Window:
    """Rows with `column` in (newest - days, newest]; relative to the data, not the wall clock."""
    if days <= 0:
        raise ValueError(f"window days must be > 0, got {days}")
    if column not in frame.columns:
        raise ValueError(
            f"the frame has no {column!r} column to take a time window on; it has {frame.columns}"
        )
    end = frame.get_column(column).max() if frame.height else None
    if end is None:
        return Window(frame.clear(), None, None)
    start = end - timedelta(days=days)
    return Window(frame.filter(pl.col(column) > start), start, end)


def data_version(frame: pl.DataFrame, column: str = "created_at") -> str:
    """A short fingerprint of the monitored data (rows and newest time): retraining twice on it is pointless."""
    newest = frame.get_column(column).max() if frame.height and column in frame.columns else None
    return f"{frame.height}@{newest.isoformat() if newest is not None else 'none'}"


# ---------------------------------------------------------------------------------------------------
# late labels and live performance


def new_labels(
    tasks: pl.DataFrame, label: str, trained_as_of: datetime, as_of: datetime | None = None
) -> pl.DataFrame:
    """Tasks whose `label` ("is_late" or "cycle_time_days") became known after `trained_as_of`.

    Columns task_id, target (0/1 or days), known_at. The champion never saw these outcomes.
    """
    from mlops_assets.lib import features

    if label not in ("is_late", "cycle_time_days"):
        raise ValueError(f"unknown label {label!r}: expected 'is_late' or 'cycle_time_days'")
    labels = features.task_labels(tasks, as_of=as_of)
    if label == "is_late":
        known = pl.col("late_known_at")
    else:
        resolved = tasks.select("task_id", pl.max_horizontal("resolved_at", "created_at").alias("_resolved"))
        labels = labels.join(resolved, on="task_id", how="left")
        known = pl.col("_resolved")
    return labels.filter(pl.col(label).is_not_null() & (known > trained_as_of)).select(
        "task_id", pl.col(label).cast(pl.Float64).alias("target"), known.alias("known_at")
    )


@dataclass(frozen=True)
class PerformanceVerdict:
    """A champion's live metrics on new labels against its own test metrics.

    status: "ok", "degraded" (beyond tolerance) or "skipped" (too few usable labels; `reason` says why).
    """

    model: str
    status: str
    reason: str
    n_labels: int
    live: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)

    @property
    def degraded(self) -> bool:
        return self.status == "degraded"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def judge_performance(
    model: str,
    kind: str,
    live: Mapping[str, float],
    reference: Mapping[str, float],
    n_labels: int,
    *,
    min_labels: int = 50,
    roc_auc_tolerance: float = 0.05,
    ece_tolerance: float = 0.05,
    mae_tolerance: float = 0.25,
) -> PerformanceVerdict:
    """Binary: ROC-AUC may drop by `roc_auc_tolerance`, ECE rise by `ece_tolerance` (absolute);
    regression: MAE may rise by `mae_tolerance` (relative). `live` uses live_*, `reference` test_* keys.
    """
    live, reference = dict(live), dict(reference)

    def verdict(status: str, reason: str) -> PerformanceVerdict:
        return PerformanceVerdict(model, status, reason, n_labels, live, reference)

    if n_labels < min_labels:
        return verdict(
            "skipped", f"only {n_labels} new labels since the champion was trained (need {min_labels})"
        )
    problems: list[str] = []
    if kind == "binary":
        auc, ref_auc = live.get("live_roc_auc"), reference.get("test_roc_auc")
        if not _finite(auc):
            return verdict("skipped", f"the {n_labels} new labels have a single class: ROC-AUC is undefined")
        if not _finite(ref_auc):
            return verdict("skipped", "the champion's run has no test_roc_auc to compare with")
        if ref_auc - auc > roc_auc_tolerance:
            problems.append(
                f"ROC-AUC {auc:.3f} is {ref_auc - auc:.3f} below the test {ref_auc:.3f} "
                f"(tolerance {roc_auc_tolerance:g})"
            )
        ece, ref_ece = live.get("live_ece"), reference.get("test_ece")
        if _finite(ece) and _finite(ref_ece) and ece - ref_ece > ece_tolerance:
            problems.append(
                f"calibration error (ECE) {ece:.3f} is {ece - ref_ece:.3f} above the test {ref_ece:.3f} "
                f"(tolerance {ece_tolerance:g})"
            )
        summary = f"ROC-AUC {auc:.3f} (test {ref_auc:.3f})" + (
            f", ECE {ece:.3f} (test {ref_ece:.3f})" if _finite(ece) and _finite(ref_ece) else ""
        )
    else:
        mae, ref_mae = live.get("live_mae"), reference.get("test_mae")
        if not _finite(mae) or not _finite(ref_mae) or ref_mae <= 0:
            return verdict("skipped", "MAE is undefined on the new labels or missing from the champion's run")
        if mae / ref_mae - 1 > mae_tolerance:
            problems.append(
                f"MAE {mae:.2f} days is {mae / ref_mae - 1:.0%} above the test {ref_mae:.2f} "
                f"(tolerance {mae_tolerance:.0%})"
            )
        summary = f"MAE {mae:.2f} days (test {ref_mae:.2f})"
    if problems:
        return verdict("degraded", f"on {n_labels} new labels: " + "; ".join(problems))
    return verdict("ok", f"on {n_labels} new labels: {summary}, within tolerance")


# ---------------------------------------------------------------------------------------------------
# judging the champions (what the monitoring assets compute; they add the Dagster results around it)

# The column each champion's score is recorded under in the drift tables.
SCORE_COLUMNS = {"late_risk": "late_risk_score", "cycle_time": "predicted_cycle_days"}
# Fewer tasks than this in the window before the current one: a champion's score drift is not judged.
MIN_PREVIOUS_ROWS = 30


class NoReference(Exception):
    """No champion, or no training reference matching it: the message says what to run."""


def load_reference(
    wh: Warehouse, client: Any, model: str, log: Callable[[str], Any] | None = None, columns: str = "*"
) -> tuple[str, pl.DataFrame]:
    """(champion version, its training reference rows: ``columns`` of them) or NoReference with the reason.

    A reference of another version (the champion was rolled back, or its alias moved by hand) is rebuilt
    for the champion from its run's training window, as the gate does: monitoring judges the model that
    serves. ``log`` is told when that happens.
    """
    from mlops_assets.lib import gate, registry

    version = registry.champion_version(model, client)
    if version is None:
        raise NoReference(f"{model} has no champion yet: run the training assets (`make run`) first")
    stored, note = gate.converge_reference(wh, model, version, client)
    if note.startswith("reference rebuilt") and log is not None:
        log(f"{model}: {note}")
    if stored is None:
        raise NoReference(f"no training reference for {model} champion v{version}: {note}")
    if stored != version:
        raise NoReference(
            f"the training reference is of {model} v{stored}, the champion is v{version}, and it "
            f"could not be rebuilt: {note}"
        )
    return version, wh.query(f"SELECT {columns} FROM models.{model}_reference")


def champion_scores(model: ServedModel, frame: pl.DataFrame) -> pl.Series:
    """The champion's prediction per row (late_risk only where the task has a deadline), named by SCORE_COLUMNS.

    On every core, as the batch scores: each row's prediction is the same on any number of threads, and at
    1M tasks the two champions' scores of both windows took 4.5 s of the drift step on one.
    """
    values = (
        pl.Series(model.predict(model.matrix(frame), num_threads=os.cpu_count() or 1), dtype=pl.Float64)
        if frame.height
        else pl.Series([], dtype=pl.Float64)
    )
    if model.name == "late_risk":
        values = pl.select(pl.when(frame["has_deadline"].fill_null(0) > 0).then(values)).to_series()
    return values.alias(SCORE_COLUMNS[model.name])


def previous_window(
    features: pl.DataFrame, reference: pl.DataFrame, window: Window, days: float
) -> pl.DataFrame:
    """The `days` before the current window, less any task the champion was fitted on (its training window)."""
    if reference.height == 0 or window.start is None:
        return features.clear()
    start = max(window.start - timedelta(days=days), reference["created_at"].max())
    return features.filter((pl.col("created_at") > start) & (pl.col("created_at") <= window.start))


def prediction_drift(
    client: Any,
    wh: Warehouse,
    features: pl.DataFrame,
    window: Window,
    *,
    days: float,
    threshold: float,
    log: Callable[[str], Any] | None = None,
) -> DriftResult:
    """Each champion's scores on the `days` before the current window against its scores on the current window.

    Not against its training rows: a boosted model's scores on the rows it was fitted on are sharper than on
    any new rows (1.36 against 0.15 on the day-one sample, issue 22). Nor against an older held-out period:
    the scores move with time-bound features (month, cumulative history), 0.29 to 0.42 in mean late risk
    over six clean months of the sample. A sudden change of the scores is the question; slow drift of the
    inputs is the feature drift's, and a worse model the performance check's.
    """
    from mlops_assets.lib import drift, scoring

    current = window.frame
    columns: list[drift.ColumnDrift] = []

    def skipped(column: str, n_ref: int, reason: str) -> drift.ColumnDrift:
        return drift.ColumnDrift(
            column,
            drift.NUMERIC,
            drift.SKIPPED,
            None,
            None,
            threshold,
            False,
            n_ref,
            current.height,
            None,
            None,
            reason,
        )

    for name, column in SCORE_COLUMNS.items():
        try:
            # its height and creation times are all this needs (the whole table: 1.5 s of the step at 1M)
            version, reference = load_reference(wh, client, name, log, columns="created_at")
        except NoReference as exc:
            columns.append(skipped(column, 0, str(exc)))
            continue
        model = scoring.load_model_version(name, version, client)
        missing = [f for f in model.features if f not in current.columns]
        if missing:
            columns.append(
                skipped(
                    column,
                    reference.height,
                    f"the current data lacks feature(s) {missing} the champion needs",
                )
            )
            continue
        before = previous_window(features, reference, window, days)
        if before.height < MIN_PREVIOUS_ROWS:
            columns.append(
                skipped(
                    column,
                    before.height,
                    f"only {before.height} tasks in the {days:g} "
                    f"days before the current window that {name} v{version} was not trained on "
                    f"(need {MIN_PREVIOUS_ROWS}) to compare its scores with",
                )
            )
            continue
        columns.append(
            drift.prediction_drift(
                champion_scores(model, before), champion_scores(model, current), min_score=threshold
            )
        )
    return drift.DriftResult(columns, threshold, 1.0, 0, current.height)


def record_drift(
    wh: Warehouse,
    run_id: str,
    result: DriftResult,
    predictions: DriftResult,
    base: Mapping[str, Any],
    now: datetime | None = None,
) -> pl.DataFrame:
    """Write one drift reading: monitoring.data_drift replaced, monitoring.drift_history appended; the rows.

    ``base`` holds the reading's window, data_version and champion_version (as the asset's metadata).
    """
    now = now or datetime.now(UTC)
    rows = pl.concat(
        [
            r.to_frame().with_columns(pl.lit(target).alias("target"))
            for r, target in ((result, "feature"), (predictions, "prediction"))
        ]
    )
    rows = rows.with_columns(
        pl.lit(now).alias("recorded_at"),
        pl.lit(run_id).alias("run_id"),
        pl.lit(base.get("champion_version")).alias("champion_version"),
        pl.lit(base["window"]).alias("window"),
        pl.lit(base["data_version"]).alias("data_version"),
        pl.lit(result.share_drifted, dtype=pl.Float64).alias("drift_share"),
    )
    wh.replace_tables({"monitoring.data_drift": rows})
    wh.append("monitoring.drift_history", rows)
    return rows


def drift_columns_md(result: DriftResult, predictions: DriftResult) -> str:
    """A Markdown table of every feature and score compared: method, score, threshold, drifted, note."""
    from mlops_assets.lib.readable import number_text

    lines = ["| column | method | score | threshold | drifted | note |", "|---|---|---:|---:|---|---|"]
    for c in [*result.columns, *predictions.columns]:
        score = number_text(c.score) if c.score is not None else ""
        lines.append(
            f"| {c.column} | {c.method or ''} | {score} | {c.threshold:g} | {'yes' if c.drifted else ''} | "
            f"{c.reason or ''} |"
        )
    return "\n".join(lines)


def judge_champion(
    name: str,
    tasks: pl.DataFrame,
    features: pl.DataFrame,
    client: Any,
    wh: Warehouse,
    *,
    min_labels: int = 50,
    roc_auc_tolerance: float = 0.05,
    ece_tolerance: float = 0.05,
    mae_tolerance: float = 0.25,
    log: Callable[[str], Any] | None = None,
) -> tuple[PerformanceVerdict, str]:
    """The ``name`` champion scored on the labels that became known after it was trained, against its own
    test metrics: (verdict, champion version); NoReference when there is no champion or reference.
    """
    from mlops_assets.lib import scoring, training

    spec = training.get_spec(name)
    version, reference = load_reference(wh, client, name, log, columns="trained_as_of")
    trained_as_of = reference["trained_as_of"][0]
    population = tasks if spec.population is None else tasks.filter(spec.population)
    labels = new_labels(population, spec.label, trained_as_of)
    frame = features.join(labels, on="task_id", how="inner")
    tolerances = {
        "min_labels": min_labels,
        "roc_auc_tolerance": roc_auc_tolerance,
        "ece_tolerance": ece_tolerance,
        "mae_tolerance": mae_tolerance,
    }
    run_metrics = client.get_run(client.get_model_version(name, version).run_id).data.metrics
    test = {k: v for k, v in run_metrics.items() if k.startswith("test_")}
    if frame.height < min_labels:
        return judge_performance(name, spec.kind, {}, test, frame.height, **tolerances), version
    model = scoring.load_model_version(name, version, client)
    prediction = model.predict(model.matrix(frame))
    live = training.score(spec, frame["target"].to_numpy(), prediction, "live")
    return judge_performance(name, spec.kind, live, test, frame.height, **tolerances), version


def record_performance(
    wh: Warehouse,
    run_id: str,
    verdicts: Sequence[tuple[PerformanceVerdict, str | None]],
    now: datetime | None = None,
) -> pl.DataFrame:
    """Write one performance reading, a row per model and metric: monitoring.model_performance replaced,
    monitoring.performance_history appended; the rows.
    """
    now = now or datetime.now(UTC)
    rows = [
        {
            "recorded_at": now,
            "run_id": run_id,
            "model": v.model,
            "champion_version": version,
            "status": v.status,
            "reason": v.reason,
            "n_labels": v.n_labels,
            "metric": metric,
            "live_value": v.live.get(f"live_{metric}"),
            "test_value": v.reference.get(f"test_{metric}"),
        }
        for v, version in verdicts
        for metric in (("roc_auc", "ece", "brier") if v.model == "late_risk" else ("mae",))
    ]
    frame = pl.DataFrame(
        rows,
        schema_overrides={"champion_version": pl.String, "live_value": pl.Float64, "test_value": pl.Float64},
    )
    wh.replace_tables({"monitoring.model_performance": frame})
    wh.append("monitoring.performance_history", frame)
    return frame


# ---------------------------------------------------------------------------------------------------
# the retrain decision


def check_evaluated_at(record: Any) -> float:
    """When an asset-check execution record (Dagster's) got its result: its evaluation event's time.

    Not ``create_timestamp``: the record is created when the run is planned, possibly long before (a run
    queued behind a retraining is planned during it and evaluated after it).
    """
    return record.event.timestamp if record.event is not None else record.create_timestamp


@dataclass(frozen=True)
class CheckFailure:
    """One failed asset-check evaluation as read from the instance's event log."""

    storage_id: int
    run_id: str
    asset: str
    check: str
    severity: str
    timestamp: float
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def data_version(self) -> str | None:
        value = self.metadata.get("data_version")
        return None if value is None else str(value)

    @property
    def not_judged(self) -> bool:
        """The monitor could not reach a verdict (too few tasks, no matching reference, no champion)."""
        return str(self.metadata.get("status", "")).startswith("not judged")

    @property
    def summary(self) -> str:
        reason = self.metadata.get("reason")
        what = "not judged" if self.not_judged else "failed"
        return f"{self.asset} {self.check} {what} ({self.severity})" + (f": {reason}" if reason else "")


@dataclass(frozen=True)
class RetrainCursor:
    """The retrain sensor's memory: last event read, when it last asked for a retrain and on which data."""

    after_storage_id: int = 0
    last_request_at: float | None = None
    last_data_version: str | None = None

    @classmethod
    def parse(cls, raw: str | None) -> RetrainCursor:
        if not raw:
            return cls()
        try:
            return cls(**json.loads(raw))
        except (ValueError, TypeError):  # a cursor from an older version: start over, never crash the tick
            return cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class RetrainDecision:
    """Request a retraining run (`request`) or not, why, and the cursor to store either way."""

    request: bool
    reason: str
    cursor: RetrainCursor
    run_key: str | None = None
    triggers: tuple[CheckFailure, ...] = ()


def decide_retrain(
    failures: Sequence[CheckFailure],
    cursor: RetrainCursor,
    *,
    last_storage_id: int,
    now: float,
    cooldown_s: float,
    retrain_running: bool = False,
) -> RetrainDecision:
    """At most one retraining request per batch of failed checks, never inside the cool-down, never twice
    for the same data, never while a retraining run is queued or running. Failures are consumed either way.
    """
    consumed = RetrainCursor(
        max(last_storage_id, cursor.after_storage_id), cursor.last_request_at, cursor.last_data_version
    )
    triggers = tuple(f for f in failures if f.check in RETRAIN_CHECKS and f.severity == "ERROR")
    if not triggers:
        return RetrainDecision(False, "no failed drift or performance check since the last tick", consumed)
    what = "; ".join(sorted({t.summary for t in triggers}))
    if cursor.last_request_at is not None and now - cursor.last_request_at < cooldown_s:
        until = (
            datetime.fromtimestamp(cursor.last_request_at + cooldown_s)
            .astimezone()
            .isoformat(timespec="seconds")
        )
        return RetrainDecision(
            False,
            f"cool-down: a retrain was requested {now - cursor.last_request_at:.0f}s ago, "
            f"next one allowed after {until} ({len(triggers)} failed check(s) ignored: {what})",
            consumed,
            triggers=triggers,
        )
    versions = {t.data_version for t in triggers if t.data_version}
    if cursor.last_data_version and versions and versions <= {cursor.last_data_version}:
        return RetrainDecision(
            False,
            f"already retrained on this data ({cursor.last_data_version}); waiting for new data ({what})",
            consumed,
            triggers=triggers,
        )
    if retrain_running:
        return RetrainDecision(
            False, f"a retraining run is already queued or running ({what})", consumed, triggers=triggers
        )
    version = max(versions) if versions else cursor.last_data_version
    return RetrainDecision(
        True,
        what,
        RetrainCursor(consumed.after_storage_id, now, version),
        run_key=f"retrain-{triggers[0].storage_id}",
        triggers=triggers,
    )


# ---------------------------------------------------------------------------------------------------
# alerts


def check_alert(failure: CheckFailure) -> dict[str, Any]:
    """The JSON body of a failed-check alert; a monitor that could not judge is its own kind, with the reason."""
    return {
        "kind": "monitor_not_judged" if failure.not_judged else "asset_check_failed",
        "asset": failure.asset,
        "check": failure.check,
        "severity": failure.severity,
        "run_id": failure.run_id,
        "at": datetime.fromtimestamp(failure.timestamp).astimezone().isoformat(timespec="seconds"),
        "text": failure.summary,
        "metadata": {k: v for k, v in failure.metadata.items() if isinstance(v, str | int | float | bool)},
    }


def run_alert(job: str, run_id: str, message: str) -> dict[str, Any]:
    """The JSON body of a failed-run alert."""
    return {
        "kind": "run_failed",
        "job": job,
        "run_id": run_id,
        "text": f"run {run_id[:8]} of {job} failed: {message}",
    }


def post_json(url: str, payload: Mapping[str, Any], timeout_s: float = 5.0) -> int:
    """POST `payload` as JSON to `url`; returns the HTTP status; raises OSError with a readable message."""
    try:
        request = urllib.request.Request(
            url,
            data=json.dumps(payload, default=str).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise OSError(f"alert webhook {redact_url(url, keep_path=False)} answered HTTP {exc.code}") from None
    except ValueError as exc:  # "unknown url type", a malformed port: the message would echo the URL
        raise OSError(
            f"alert webhook {redact_url(url, keep_path=False)} is not a usable URL "
            f"({type(exc).__name__}): check MLOPS_ALERT_WEBHOOK"
        ) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise OSError(
            f"alert webhook {redact_url(url, keep_path=False)} unreachable: "
            f"{redact(str(getattr(exc, 'reason', exc)))}"
        ) from None
