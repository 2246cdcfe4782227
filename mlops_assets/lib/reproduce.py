"""Rebuild a past model from the raw layer as it was, retrain it, and prove it is the same model.

At training time :func:`training_record` writes down what a rebuild needs beside what the MLflow run
already holds (split hashes, parameters): the raw cut-off (per raw table the latest ``ingested_at``
the clean layer could have read, its row count and a content fingerprint; on a DuckLake also the
catalog snapshot), the time the clean layer was built (its ``now``: open tasks' lateness, the
"created in the future" rule), the split and training configuration with the seed and the number of
search trials actually run, the code commit and the library versions. :func:`log_record` stores it on
the run as ``reproduce.json`` plus ``reproduce.*`` tags.

:func:`reproduce` reads that record, copies the raw tables as of the cut-off into a scratch DuckDB
file (a DuckLake is read at the recorded snapshot), runs the pipeline's own functions on it
(``cleaning.build_clean``, ``snapshots.task_snapshots``, ``training.model_input``,
``splits.time_split``, ``training.train_model``: nothing here re-implements them), and verifies that
every split hash equals the logged one and that the retrained model's test-split predictions equal
the logged model's bit for bit (``tolerance=0``; a LightGBM trained with ``deterministic=True``, fixed
threads and seeds on the same data and library versions gives identical trees). Any difference is
named: a raw table whose rows changed, a split whose hash or row count differs, the largest
prediction difference, and every code or library version that is not the recorded one.
"""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib.warehouse import Warehouse

RECORD_ARTIFACT = "reproduce.json"
RECORD_VERSION = 2  # 2: raw fingerprints without the payload column
# What decides the numbers of a training: the interpreter and every library the data passes through.
LIBRARIES = (
    "mlops_assets",
    "duckdb",
    "polars",
    "pyarrow",
    "numpy",
    "pandas",
    "lightgbm",
    "optuna",
    "scikit-learn",
    "mlflow",
)
# A search bounded by time runs as many trials as the machine manages: the rebuild runs exactly the
# recorded number, with a time limit it never reaches.
UNBOUNDED_TIMEOUT_S = 10 * 24 * 3600.0


class ReproductionError(RuntimeError):
    """The model cannot be rebuilt or is not the same; the message names what differs."""


# ---------------------------------------------------------------------------------------------
# At training time
# ---------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """The code and library versions running now."""
    from importlib.metadata import PackageNotFoundError, version

    libs: dict[str, str] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            libs[name] = "not installed"
    commit, dirty = _git_state()
    return {"git_commit": commit, "git_dirty": dirty, "libraries": libs}


def _git_state() -> tuple[str | None, bool | None]:
    """The commit of the running code and whether its tree has uncommitted changes (None outside git)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", str(here.parent)],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=here,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head.stdout.strip() or None, bool(status.stdout.strip()) if status.returncode == 0 else None


def raw_tables(con) -> list[str]:
    """Every raw table with an ``ingested_at`` column (the append-only ones), sorted."""
    rows = con.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = 'raw' AND column_name = 'ingested_at'"
    ).fetchall()
    return sorted({r[0] for r in rows})


def _fingerprint(
    con, source: str, where: str = "", params: list | None = None, *, payload: bool = False
) -> tuple[int, str]:
    """Row count and an order-independent hash of every column of every row but the raw ``payload``.

    The payload is left out (``payload=True`` keeps it, as records of version 1 did): it is the source's
    record as ingested, which ``record_hash`` (hashed here) already identifies, and hashing it was 11 of
    the 12 s the fingerprint of raw.jira_tasks took at 1M tasks (1.6 GB of payloads). The typed columns
    cleaning reads are all in.
    """
    columns = "*" if payload else "COLUMNS(c -> c <> 'payload')"
    n, digest = con.execute(
        f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR FROM (SELECT {columns} FROM {source} {where}) t",
        params or [],
    ).fetchall()[0]
    return int(n), str(digest)


def training_record(
    warehouse: Warehouse,
    *,
    clean_built_at: datetime | None,
    train_config: Any,
    split_config: Mapping[str, Any] | None,
    snapshot_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a rebuild of this training needs that the MLflow run does not hold yet.

    ``clean_built_at``: when the clean layer the training read was built (its materialization time);
    rows ingested later cannot be in the model's data. None: now (the clean layer was built before).
    Taken before the training starts; :func:`log_record` adds the number of search trials it ran.
    """
    built = clean_built_at or datetime.now(UTC)
    tables: dict[str, dict[str, Any]] = {}
    snapshot = None
    with warehouse.connect(read_only=warehouse.exists()) as con:
        if warehouse.is_lake:
            snapshot = int(con.execute("SELECT id FROM current_snapshot()").fetchall()[0][0])
        for table in raw_tables(con):
            latest = con.execute(
                f"SELECT max(ingested_at) FROM {table} WHERE ingested_at <= ?", [built]
            ).fetchall()[0][0]
            if latest is None:
                continue
            rows, digest = _fingerprint(con, table, "WHERE ingested_at <= ?", [latest])
            tables[table] = {"max_ingested_at": latest.isoformat(), "rows": rows, "fingerprint": digest}
    config = asdict(train_config)
    return {
        "version": RECORD_VERSION,
        "clean_built_at": built.isoformat(),
        "raw": tables,
        "ducklake_snapshot": snapshot,
        "split_config": dict(split_config) if split_config is not None else None,
        "snapshot_config": dict(
            snapshot_config or {}
        ),  # features/task_snapshots' explicit config ({}: defaults)
        "train_config": config,
        "seed": config.get("seed"),
        **environment(),
    }


def log_record(client: Any, run_id: str, record: Mapping[str, Any], *, n_trials_run: int) -> None:
    """Store the record on the run (artifact ``reproduce.json``) with the tags a reader looks for."""
    record = {**record, "train_config": {**record["train_config"], "n_trials_run": int(n_trials_run)}}
    client.log_dict(run_id, record, RECORD_ARTIFACT)
    cutoff = max((t["max_ingested_at"] for t in record["raw"].values()), default="")
    tags = {
        "reproduce.command": f"mlops-assets reproduce {run_id}",
        "reproduce.raw_cutoff": cutoff,
        "reproduce.seed": str(record.get("seed")),
        "reproduce.libraries": ", ".join(f"{k}=={v}" for k, v in record["libraries"].items()),
    }
    if record.get("ducklake_snapshot") is not None:
        tags["reproduce.ducklake_snapshot"] = str(record["ducklake_snapshot"])
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


# ---------------------------------------------------------------------------------------------
# Reproduction
# ---------------------------------------------------------------------------------------------


@dataclass
class Reproduction:
    """The outcome of one reproduction; ``ok`` only when data, splits and predictions are the same."""

    run_id: str
    model: str
    version: str | None
    code_differences: list[str]
    raw_rows: dict[str, int] = field(default_factory=dict)
    split_hashes: dict[str, dict[str, str]] = field(default_factory=dict)  # split -> {"logged", "rebuilt"}
    test_rows: int = 0
    max_abs_difference: float | None = None
    identical_predictions: bool = False
    identical_model: bool = False
    tolerance: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        hashes = all(h["logged"] == h["rebuilt"] for h in self.split_hashes.values()) and bool(
            self.split_hashes
        )
        close = self.max_abs_difference is not None and self.max_abs_difference <= self.tolerance
        return hashes and close

    def summary(self) -> str:
        """A few lines a person reads."""
        name = f"{self.model} version {self.version}" if self.version else self.model
        lines = [f"{name} (MLflow run {self.run_id}): " + ("REPRODUCED" if self.ok else "NOT REPRODUCED")]
        lines.append("raw as of the cut-off: " + ", ".join(f"{t} {n} rows" for t, n in self.raw_rows.items()))
        for split, h in self.split_hashes.items():
            same = "equal" if h["logged"] == h["rebuilt"] else f"DIFFERS (rebuilt {h['rebuilt'][:16]})"
            lines.append(f"split {split}: hash {h['logged'][:16]} {same}")
        if self.max_abs_difference is not None:
            exact = (
                "bit for bit identical"
                if self.identical_predictions
                else (f"largest difference {self.max_abs_difference:.3g} (tolerance {self.tolerance:g})")
            )
            lines.append(
                f"test predictions ({self.test_rows} rows): {exact}; "
                f"model {'identical to' if self.identical_model else 'differs from'} the logged one"
            )
        lines.append(
            "code and libraries: "
            + ("as recorded" if not self.code_differences else "; ".join(self.code_differences))
        )
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def resolve(ref: str, client: Any) -> tuple[str, str | None, str | None]:
    """(run id, model name, version) of ``MODEL@VERSION``, ``MODEL@ALIAS``, ``MODEL/VERSION`` or a run id."""
    for sep in ("@", "/"):
        if sep in ref:
            name, _, which = ref.partition(sep)
            try:
                mv = (
                    client.get_model_version(name, which)
                    if which.isdigit()
                    else client.get_model_version_by_alias(name, which)
                )
            except Exception as exc:  # MLflow raises its own RestException / MlflowException kinds
                raise ReproductionError(f"{ref}: no such registered model version or alias ({exc})") from None
            return mv.run_id, name, str(mv.version)
    try:
        run = client.get_run(ref)
    except Exception as exc:
        raise ReproductionError(f"{ref}: neither MODEL@VERSION nor the id of an MLflow run ({exc})") from None
    return run.info.run_id, run.data.tags.get("model_name"), None


def load_record(client: Any, run_id: str) -> dict[str, Any]:
    """The run's reproduction record, or an error saying the run predates them."""
    try:
        text = _load_text(client, run_id)
    except Exception as exc:
        raise ReproductionError(
            f"run {run_id} has no {RECORD_ARTIFACT}: it was trained before reproduction records were kept, "
            f"or its training stopped before the record was logged ({exc.__class__.__name__})"
        ) from None
    return json.loads(text)


def _load_text(client: Any, run_id: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, RECORD_ARTIFACT, tmp)).read_text()


def code_differences(record: Mapping[str, Any], current: Mapping[str, Any] | None = None) -> list[str]:
    """Every way the running code and libraries differ from the recorded ones (empty: none)."""
    now = current or environment()
    out = []
    if record.get("git_commit") != now.get("git_commit"):
        out.append(
            f"code commit {record.get('git_commit') or 'unknown'} recorded, {now.get('git_commit') or 'unknown'} running"
        )
    if now.get("git_dirty"):
        out.append("the running code has uncommitted changes")
    if record.get("git_dirty"):
        out.append("the recorded training ran with uncommitted changes")
    rec_libs, now_libs = record.get("libraries", {}), now.get("libraries", {})
    for name in sorted(set(rec_libs) | set(now_libs)):
        if rec_libs.get(name) != now_libs.get(name):
            out.append(
                f"{name} {rec_libs.get(name, 'not recorded')} recorded, {now_libs.get(name, 'absent')} running"
            )
    return out


def rebuild_raw(source: Warehouse, record: Mapping[str, Any], target: Warehouse) -> dict[str, int]:
    """Copy every raw table as of the record's cut-off into ``target``; raise naming any table that differs."""
    recorded: dict[str, dict[str, Any]] = record["raw"]
    snapshot = record.get("ducklake_snapshot") if source.is_lake else None
    problems: list[str] = []
    rows: dict[str, int] = {}
    with source.connect(read_only=source.exists()) as src, target.connect() as dst:
        present = set(raw_tables(src))
        for table in sorted(present | set(recorded)):
            info = recorded.get(table)
            if table not in present:
                problems.append(f"{table} ({info['rows']} rows at training) no longer exists")
                continue
            at = f" AT (VERSION => {int(snapshot)})" if snapshot is not None else ""
            if info is None:  # created after the training: nothing of it may predate the cut-off
                early = (
                    src.execute(
                        f"SELECT count(*) FROM {table}{at} WHERE ingested_at <= ?", [record["clean_built_at"]]
                    ).fetchall()[0][0]
                    if snapshot is None
                    else 0
                )
                if early:
                    problems.append(
                        f"{table} has {early} rows ingested before the cut-off but did not exist at training"
                    )
                continue
            where, params = "WHERE ingested_at <= ?::TIMESTAMPTZ", [info["max_ingested_at"]]
            n, digest = _fingerprint(src, f"{table}{at}", where, params, payload=record.get("version", 1) < 2)
            if (n, digest) != (info["rows"], info["fingerprint"]):
                what = (
                    f"{n} rows as of the cut-off, {info['rows']} at training"
                    if n != info["rows"]
                    else f"same {n} rows but their content changed (fingerprint {digest[:12]}, recorded "
                    f"{info['fingerprint'][:12]})"
                )
                problems.append(f"{table}: {what}")
                continue
            reader = src.execute(f"SELECT * FROM {table}{at} {where}", params).to_arrow_reader(100_000)
            dst.register("_raw_in", reader)
            dst.execute(f"CREATE TABLE {table} AS SELECT * FROM _raw_in")
            dst.unregister("_raw_in")
            rows[table] = n
    if problems:
        raise ReproductionError(
            "the raw layer is not what the model was trained on (cut-off "
            f"{max((t['max_ingested_at'] for t in recorded.values()), default='none')}): "
            + "; ".join(problems)
            + ". Raw tables are append-only: restore the changed rows (or a backup of the warehouse) to reproduce"
        )
    return rows


def rebuild_splits(spec: Any, warehouse: Warehouse, record: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """The model-input splits from a warehouse holding the raw layer: the pipeline's own functions, in its order."""
    from mlops_assets.lib import cleaning, snapshots, training
    from mlops_assets.lib import splits as splits_lib
    from mlops_assets.lib.gate import data_as_of

    built = datetime.fromisoformat(record["clean_built_at"])
    tables, _ = cleaning.build_clean(warehouse, built)
    tasks = tables["clean.tasks"]
    # as features/task_snapshots does: every task at creation and later points while open, from its events
    max_points = (record.get("snapshot_config") or {}).get(
        "max_points_per_task", snapshots.DEFAULT_MAX_POINTS
    )
    feats = snapshots.task_snapshots(
        tasks, tables["clean.task_events"], data_as_of(tasks), max_points=max_points
    )
    frame = training.model_input(spec, tasks, feats, data_as_of(tasks))
    cfg = record.get("split_config") or {}
    fractions = (
        cfg.get("train_fraction", 0.7),
        cfg.get("validation_fraction", 0.15),
        cfg.get("test_fraction", 0.15),
    )
    return splits_lib.time_split(frame, fractions=fractions, gap_days=cfg.get("gap_days", 0.0))


def train_config(record: Mapping[str, Any]) -> Any:
    """The recorded TrainConfig, searching exactly the number of trials the training ran."""
    from mlops_assets.lib import training

    raw = dict(record["train_config"])
    n_run = raw.pop("n_trials_run", raw.get("n_trials"))
    known = training.TrainConfig.__dataclass_fields__
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
    values.setdefault("tune_rows", 0)  # recorded before tune_rows existed: every trial fit all train rows
    values.setdefault("refit_grow_from", 0.0)  # recorded before the refit grew its trees
    values.setdefault("refit_threads", 1)  # recorded before the refit ran on its own thread count
    values.setdefault("parallel_trials", 1)  # recorded before trials were fit two at a time
    values.setdefault("prune_every", 0)  # recorded before trials were pruned
    values.setdefault("sorted_metric_every", 1)  # recorded before AUC was judged every few rounds
    return training.TrainConfig(**{**values, "n_trials": int(n_run), "timeout_s": UNBOUNDED_TIMEOUT_S})


def reproduce(
    ref: str,
    *,
    warehouse: Warehouse,
    tracking_uri: str | None = None,
    tolerance: float = 0.0,
    workdir: str | Path | None = None,
    notify: Callable[[str], None] | None = None,
) -> Reproduction:
    """Rebuild, retrain and compare the model ``ref`` names (MODEL@VERSION or a run id); see the module doc.

    Raises :class:`ReproductionError` when the run has no record or the raw layer changed; returns a
    :class:`Reproduction` whose ``ok`` says whether splits and predictions are the same.
    """
    import time

    import lightgbm as lgb

    from mlops_assets.lib import registry, training

    started = time.perf_counter()
    client = registry.get_client(tracking_uri)
    run_id, model, version = resolve(ref, client)
    run = client.get_run(run_id)
    model = model or run.data.tags.get("model_name")
    if not model:
        raise ReproductionError(f"run {run_id} is not a training run of this project (no model_name tag)")
    spec = training.get_spec(model)
    record = load_record(client, run_id)
    diffs = code_differences(record)
    if notify:
        notify(
            f"reproducing {model}"
            + (f" version {version}" if version else "")
            + f" (run {run_id}); "
            + (
                "code and libraries as recorded"
                if not diffs
                else "differences from the training: " + "; ".join(diffs)
            )
        )
    result = Reproduction(
        run_id=run_id, model=model, version=version, code_differences=diffs, tolerance=tolerance
    )
    with tempfile.TemporaryDirectory(dir=workdir, prefix="mlops-reproduce-") as tmp:
        scratch = Warehouse(Path(tmp) / "rebuild.duckdb")
        result.raw_rows = rebuild_raw(warehouse, record, scratch)
        parts = rebuild_splits(spec, scratch, record)
    from mlops_assets.lib import splits as splits_lib

    for name in training.SPLITS:
        logged = run.data.tags.get(f"split_hash.{name}", "")
        result.split_hashes[name] = {
            "logged": logged,
            "rebuilt": splits_lib.hash_as_logged(parts[name], logged),
        }
    differing = [s for s, h in result.split_hashes.items() if h["logged"] != h["rebuilt"]]
    if differing:
        result.seconds = time.perf_counter() - started
        rows = {s: (run.data.params.get(f"{s}_rows"), parts[s].height) for s in differing}
        raise ReproductionError(
            f"{model} run {run_id}: the rebuilt split(s) {', '.join(differing)} differ from the logged ones ("
            + "; ".join(f"{s}: {a} rows logged, {b} rebuilt" for s, (a, b) in rows.items())
            + ")"
            + (
                ": the code or libraries differ: " + "; ".join(diffs)
                if diffs
                else ": the raw layer matched, so cleaning, features or splitting changed"
            )
        )
    trained = training.train_model(spec, parts, train_config(record))
    original = registry.load_run_model(run_id, client.tracking_uri)
    logged = lgb.Booster(model_str=original.model_string)
    test = parts["test"]
    before = training.predict_frame(
        logged, test, tuple(original.features), original.category_levels, log_target=original.log_target
    )
    after = trained.predict(test)
    result.test_rows = test.height
    result.max_abs_difference = float(np.max(np.abs(before - after))) if len(before) else 0.0
    result.identical_predictions = bool(np.array_equal(before, after))
    result.identical_model = trained.model_string == original.model_string
    result.seconds = time.perf_counter() - started
    return result
