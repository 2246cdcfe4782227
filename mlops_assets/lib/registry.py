"""MLflow tracking and the model registry: log a training run, gate the candidate, roll back.

Registry vocabulary (aliases, not the removed stages): every candidate becomes a version of the
registered model named after its spec; the alias ``champion`` marks the version that serves
(``models:/late_risk@champion``) and ``challenger`` the latest candidate that did not beat it.
The gate's decision and reason are tags on the version and on the run (``gate.decision``,
``gate.reason``). A promoted version carries ``previous_champion`` (the version it replaced), the
trail :func:`rollback` walks back.

Nothing is registered from a failed or partial run: :func:`log_training_run` runs inside
``mlflow.start_run`` (an exception ends the run FAILED before any registration), marks the run
complete only after the model is logged, and :func:`register_and_gate` refuses a run that is not
FINISHED and complete.

Concurrency (docs/RELIABILITY.md): a database store is created and migrated once, under an
inter-process lock (:func:`ensure_store`, called by :func:`get_client`), and promotion is a
compare-and-set under a per-model lock (:func:`register_and_gate`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from mlops_assets import __version__
from mlops_assets.lib import training

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_assets.lib.features import History

CHAMPION = "champion"
CHALLENGER = "challenger"
DEFAULT_EXPERIMENT = "task_models"
MODEL_ARTIFACT = "model"
COMPLETE_TAG = "mlops.run_complete"
DEFAULT_DB = Path("data/mlflow/mlflow.db")
DEFAULT_ARTIFACTS = Path("data/mlflow/artifacts")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class GateDecision:
    """What the champion/challenger gate decided for one candidate version."""

    promoted: bool
    version: str
    reason: str
    champion_version_before: str | None
    candidate_value: float
    champion_value: float | None  # the champion re-scored on the candidate's test window


# ---------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------


def get_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store at data/mlflow/mlflow.db."""
    from mlops_assets.lib.settings import env, project_path

    uri = env("MLFLOW_TRACKING_URI")
    if uri:
        return uri

    db = project_path(DEFAULT_DB)  # the project's store from any working folder (or ProjectHomeError)
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


# Tracking URIs of an MLflow server, which decides where artifacts go (its --artifacts-destination).
SERVER_SCHEMES = ("http://", "https://", "databricks")


def is_tracking_server(tracking_uri: str) -> bool:
    """True when ``tracking_uri`` is an MLflow tracking server rather than a store this process opens."""
    return tracking_uri.strip().lower().startswith(SERVER_SCHEMES)


def artifact_location(artifacts_dir: str | Path | None = None, tracking_uri: str | None = None) -> str | None:
    """Where experiments created here keep artifacts; None lets a tracking server decide.

    With a server (http/https) the server's default applies: ``mlflow-artifacts:/`` proxied to its
    ``--artifacts-destination``, so clients need no access to the artifact store. Pinning a local
    path there would make every worker and reader need the same mount. With a local store (SQLite,
    PostgreSQL opened by this process) it is the argument, MLOPS_MLFLOW_ARTIFACTS, or data/mlflow/artifacts.
    """
    if tracking_uri and is_tracking_server(tracking_uri):
        return None
    from mlops_assets.lib.settings import env, project_path

    path = project_path(artifacts_dir or env("MLOPS_MLFLOW_ARTIFACTS") or DEFAULT_ARTIFACTS)
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve().as_uri()


def get_client(tracking_uri: str | None = None) -> MlflowClient:
    """A client on the tracking store and registry at ``tracking_uri``, created and migrated first if new."""
    from mlflow import MlflowClient

    uri = tracking_uri or get_tracking_uri()
    ensure_store(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# ---------------------------------------------------------------------------------------------
# Inter-process locks: the store's creation and the gate's compare-and-set
# ---------------------------------------------------------------------------------------------

# Database stores MLflow opens itself and migrates with alembic (the first process to open an empty
# one creates its tables); a tracking server migrates its own store once at start-up.
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_READY: set[str] = set()  # stores this process has seen created and migrated
STORE_LOCK_TIMEOUT_S = 300.0
GATE_LOCK_TIMEOUT_S = 900.0  # the gate re-scores the champion under it: minutes on a million-row window


def _db_scheme(uri: str) -> str | None:
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    return scheme if scheme in _DB_SCHEMES else None


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URI (None for an in-memory database)."""
    path = uri.split(":///", 1)[1].split("?", 1)[0] if ":///" in uri else ""
    return Path(path).resolve() if path and path != ":memory:" else None


@contextmanager
def store_lock(uri: str, purpose: str, timeout_s: float = STORE_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an inter-process lock named ``purpose`` on the store at ``uri`` for one block.

    SQLite: a lock file beside the database (``mlflow.db.<purpose>.lock``), which every process
    that opens that file can see. PostgreSQL: a session advisory lock in the tracking database,
    which processes on every machine see. Both are released by the operating system or the server
    when the holder dies, so a killed run never leaves a stale lock. A tracking server is not
    locked here (its clients cannot); see docs/RELIABILITY.md for what holds there.
    """
    scheme = _db_scheme(uri)
    if scheme == "postgresql":
        with _advisory_lock(uri, purpose, timeout_s):
            yield
        return
    if scheme is None or (scheme == "sqlite" and _sqlite_path(uri) is None):
        yield
        return
    from filelock import FileLock, Timeout

    db = _sqlite_path(uri) if scheme == "sqlite" else None
    if db is None:  # MySQL/SQL Server: one machine's processes at least (no cross-machine lock here)
        import hashlib
        import tempfile

        db = Path(tempfile.gettempdir()) / f"mlops_mlflow_{hashlib.sha256(uri.encode()).hexdigest()[:16]}"
    db.parent.mkdir(parents=True, exist_ok=True)
    path = db.with_name(f"{db.name}.{purpose}.lock")
    try:
        with FileLock(path, timeout=timeout_s):
            yield
    except Timeout:
        raise RegistryError(
            f"waited {timeout_s:.0f} s for {path} ({purpose}): another process holds it; if none runs, "
            "the lock is free (the OS releases it when its holder dies) and the file system may not "
            "support locks (use a local disk for the MLflow store)"
        ) from None


@contextmanager
def _advisory_lock(uri: str, purpose: str, timeout_s: float) -> Iterator[None]:
    import hashlib
    import time

    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    key = int.from_bytes(hashlib.sha256(f"mlops_assets:{purpose}".encode()).digest()[:8], "big", signed=True)
    engine = sa.create_engine(uri, poolclass=NullPool)
    try:
        with engine.connect() as con:
            deadline = time.monotonic() + timeout_s
            while not con.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"waited {timeout_s:.0f} s for the advisory lock {purpose!r} on the "
                        "MLflow database: another process holds it"
                    )
                time.sleep(0.2)
            try:
                yield
            finally:
                con.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def ensure_store(tracking_uri: str | None = None) -> None:
    """Create and migrate the database store at ``tracking_uri`` exactly once, before anything uses it.

    MLflow creates a store's tables and runs its alembic migrations in whichever process opens an
    empty database first; two processes doing so at once both fail and leave the store
    half-migrated (``table _alembic_tmp_tags already exists``). Here the first opening happens under
    ``store_lock(uri, "init")``: the first process migrates, the others wait and then find the
    tables there. Once per store per process; a no-op for a tracking server (it migrates at start).
    """
    uri = tracking_uri or get_tracking_uri()
    if uri in _READY or _db_scheme(uri) is None:
        return
    from mlflow import MlflowClient

    def open_store(at: str) -> None:
        client = MlflowClient(tracking_uri=at, registry_uri=at)
        client.search_experiments(max_results=1)  # opens the tracking store: creates and migrates
        client.search_registered_models(max_results=1)  # the registry store on the same tables

    with store_lock(uri, "init"):
        db = _sqlite_path(uri) if _db_scheme(uri) == "sqlite" else None
        if db is not None and not (db.exists() and db.stat().st_size > 0):
            # A new SQLite store is migrated under a temporary name and renamed into place: a process
            # killed mid-migration leaves only that file (the next one starts it again), never a
            # half-migrated store that fails every later run ("table trace_metrics already exists").
            tmp = db.with_name(f"{db.name}.init.tmp")
            tmp.unlink(missing_ok=True)
            open_store(f"sqlite:///{tmp}")
            os.replace(tmp, db)
        open_store(uri)
    _READY.add(uri)


@contextmanager
def _tracking(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (and its registry, which follows it) at ``uri`` for one block.

    ``mlflow.set_tracking_uri`` is process-global and also writes MLFLOW_TRACKING_URI; restoring
    only the env var would leave the global pinned (later env changes ignored), so both the global
    (read from MLflow's module state: there is no public getter for "was it set") and the env
    var are put back as they were.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    before_global = tracking_utils._tracking_uri
    before_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before_global)
        if before_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before_env


def _experiment_id(client: MlflowClient, name: str, artifacts_dir: str | Path | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            location = artifact_location(artifacts_dir, client.tracking_uri)
            return client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:  # another worker created it between our lookup and create
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.lifecycle_stage != "active":
        raise RegistryError(
            f"MLflow experiment {name!r} is deleted: restore it (mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}) or choose another experiment name"
        )
    return experiment.experiment_id


# ---------------------------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------------------------


def _pip_requirements() -> list[str]:
    """Pinned runtime requirements of the model (given, so MLflow does not load the model to infer them)."""
    from importlib.metadata import version

    names = ("mlflow", "lightgbm", "polars", "pandas", "numpy", "scikit-learn")
    return [f"{name}=={version(name)}" for name in names]


def _mlflow_type(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "long"
    if dtype.is_float():
        return "double"
    if dtype.is_temporal():
        return "datetime"
    return "string"


def _split_dataset(spec: training.ModelSpec, split: str, frame: pl.DataFrame, digest: str) -> Any:
    """One split as an MLflow dataset input: exact schema, row count and content hash, without the rows.

    ``mlflow.data.from_pandas`` would infer the same schema by scanning every value: measured here
    at 16-20 s per million-row split (plus a pandas copy), for metadata polars already knows.
    """
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    class SplitDataset(MetaDataset):
        @property
        def profile(self) -> dict[str, int]:
            return {"num_rows": frame.height, "num_elements": frame.height * frame.width}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    schema = Schema(
        [
            ColSpec(_mlflow_type(dtype), column, required=frame.get_column(column).null_count() == 0)
            for column, dtype in frame.schema.items()
        ]
    )
    source = CodeDatasetSource({"table": f"model_input.{spec.name}", "split": split, "target": "target"})
    return SplitDataset(source, name=f"{spec.name}_{split}", digest=digest[:16], schema=schema)


def log_training_run(
    spec: training.ModelSpec,
    trained: training.TrainedModel,
    splits: Mapping[str, pl.DataFrame],
    *,
    tasks: pl.DataFrame,
    history: History | None = None,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    dagster_run_id: str | None = None,
    git_commit: str | None = None,
    artifacts_dir: str | Path | None = None,
) -> str:
    """Log params, metrics, data lineage and the pyfunc model of one training; returns the run id.

    ``tasks`` are the clean.tasks rows the features were built from: the input example comes from
    them, and so does the History snapshot the served model computes features with (pass
    ``history`` to reuse the one the features were built with).
    """
    import mlflow
    import mlflow.pyfunc

    from mlops_assets.lib import features as features_lib
    from mlops_assets.lib import pyfunc
    from mlops_assets.lib import splits as splits_lib

    uri = tracking_uri or get_tracking_uri()
    client = get_client(uri)
    experiment_id = _experiment_id(client, experiment, artifacts_dir)
    history = features_lib.History.from_tasks(tasks) if history is None else history
    hashes = {name: splits_lib.frame_hash(splits[name]) for name in training.SPLITS}
    tags = {
        "model_name": spec.name,
        "model_kind": spec.kind,
        "dagster_run_id": dagster_run_id or "",
        "git_commit": git_commit or "",
        "mlflow.source.git.commit": git_commit or "",
        "mlops_assets_version": __version__,  # the package version that trained it (CHANGELOG.md)
        **{f"split_hash.{name}": digest for name, digest in hashes.items()},
        **training_window_tags(splits["train"], history.as_of),
    }
    params = {
        **{f"lgb.{k}": v for k, v in trained.params.items()},
        "n_trials": trained.n_trials,
        "n_features": len(trained.features),
        "features": ",".join(trained.features),
        "label": spec.label,
        "primary_metric": spec.gate_metric,
        **{f"{name}_rows": splits[name].height for name in training.SPLITS},
        **{f"{name}_hash": digest[:16] for name, digest in hashes.items()},
    }
    test_ids = splits["test"].get_column("task_id").head(3)
    example = pyfunc.wire_records(tasks.filter(pl.col("task_id").is_in(test_ids.implode())).head(3))

    with (
        _tracking(uri),
        mlflow.start_run(
            experiment_id=experiment_id, run_name=f"{spec.name}-{(dagster_run_id or 'local')[:8]}", tags=tags
        ) as run,
    ):
        mlflow.log_params(params)
        mlflow.log_metrics(trained.metrics)
        mlflow.log_metrics(
            {
                "search_seconds": trained.search_seconds,
                "train_seconds": trained.train_seconds,
                "lightgbm_seconds": trained.lightgbm_seconds,
            }
        )
        for name in training.SPLITS:
            mlflow.log_input(_split_dataset(spec, name, splits[name], hashes[name]), context=name)
        mlflow.log_dict(
            {"features": list(trained.features), "category_levels": trained.category_levels},
            "features.json",
        )
        mlflow.log_dict(
            dict(sorted(trained.feature_importance.items(), key=lambda kv: -kv[1])),
            "feature_importance_gain.json",
        )
        if trained.predictions:
            _log_predictions(trained.predictions, splits)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=pyfunc.TaskModel.from_trained(trained, history),
            signature=pyfunc.signature(),
            input_example=example,
            pip_requirements=_pip_requirements(),
        )
        mlflow.set_tags({"model_uri": info.model_uri, "model_id": info.model_id or "", COMPLETE_TAG: "true"})
        return run.info.run_id


PREDICTIONS_ARTIFACT = "predictions.parquet"


def _log_predictions(predictions: Mapping[str, Any], splits: Mapping[str, pl.DataFrame]) -> None:
    """The training's own predictions on validation and test (split, row, task_id, prediction) as an artifact."""
    import tempfile

    import mlflow

    frame = pl.concat(
        [
            splits[name]
            .select(
                pl.lit(name).alias("split"), pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), "task_id"
            )
            .with_columns(pl.Series("prediction", values, dtype=pl.Float64))
            for name, values in predictions.items()
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PREDICTIONS_ARTIFACT
        frame.write_parquet(path)
        mlflow.log_artifact(str(path))


def logged_predictions(run_id: str, tracking_uri: str | None = None) -> pl.DataFrame | None:
    """The predictions a training run logged (:func:`_log_predictions`), or None (a run from before them)."""
    import tempfile

    import mlflow

    client = get_client(tracking_uri or get_tracking_uri())
    if PREDICTIONS_ARTIFACT not in {f.path for f in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as tmp, _tracking(tracking_uri or get_tracking_uri()):
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=PREDICTIONS_ARTIFACT, dst_path=tmp
        )
        return pl.read_parquet(local)


def training_window_tags(train: pl.DataFrame, as_of: Any) -> dict[str, str]:
    """The run tags that let the drift reference of a champion be rebuilt from its run alone."""
    start, end = train.get_column("created_at").min(), train.get_column("created_at").max()
    return {
        "train_window.start": "" if start is None else start.isoformat(),
        "train_window.end": "" if end is None else end.isoformat(),
        "data_as_of": "" if as_of is None else as_of.isoformat(),
    }


@dataclass(frozen=True)
class TrainingWindow:
    """A champion's training window (created_at bounds of its train split) and its data's as-of time."""

    start: Any
    end: Any
    as_of: Any | None
    train_hash: str


def training_window(client: MlflowClient, name: str, version: str) -> TrainingWindow:
    """What a registered version was trained on, read back from its run's tags (start/end None if not logged)."""
    from datetime import datetime

    tags = client.get_run(client.get_model_version(name, version).run_id).data.tags

    def stamp(key: str) -> datetime | None:
        return datetime.fromisoformat(tags[key]) if tags.get(key) else None

    return TrainingWindow(
        stamp("train_window.start"),
        stamp("train_window.end"),
        stamp("data_as_of"),
        tags.get("split_hash.train", ""),
    )


# ---------------------------------------------------------------------------------------------
# Registry and the gate
# ---------------------------------------------------------------------------------------------


class RegistryUnavailableError(RegistryError):
    """The registry could not be asked (server down, refused, timed out): not the same as "no champion"."""


# What the store answers for a model or alias that does not exist; any other error (a connection
# refused, a 5xx, a timeout) means the registry was not asked, and must not read as "no champion".
_NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    from mlops_assets.lib.redact import redact

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND_CODES:
            return None
        raise RegistryUnavailableError(
            f"cannot read the {alias!r} alias of {name!r} from the MLflow registry at {redact(client.tracking_uri)}: "
            f"{redact(str(exc.message))[:300]} (is the tracking server up? check MLFLOW_TRACKING_URI)"
        ) from None


def champion_version(name: str, client: MlflowClient | None = None) -> str | None:
    """The version number the ``champion`` alias points at, or None."""
    version = _version_by_alias(client or get_client(), name, CHAMPION)
    return None if version is None else str(version.version)


def load_champion(name: str, tracking_uri: str | None = None) -> Any:
    """The champion as an MLflow pyfunc model (``models:/<name>@champion``)."""
    import mlflow.pyfunc

    client = get_client(tracking_uri)
    if champion_version(name, client) is None:
        raise RegistryError(
            f"model {name!r} has no champion yet: train it and let the gate promote a version"
        )
    with _tracking(tracking_uri or get_tracking_uri()):
        return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")


def load_version_model(name: str, version: str, client: MlflowClient) -> Any:
    """The :class:`~mlops_assets.lib.pyfunc.TaskModel` behind a registered version."""
    import mlflow.pyfunc

    with _tracking(client.tracking_uri):
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()


def load_run_model(run_id: str, tracking_uri: str | None = None) -> Any:
    """The :class:`~mlops_assets.lib.pyfunc.TaskModel` a training run logged (registered or not)."""
    import mlflow.pyfunc

    uri = tracking_uri or get_tracking_uri()
    run = _run_is_complete(get_client(uri), run_id)
    with _tracking(uri):
        return mlflow.pyfunc.load_model(run.data.tags["model_uri"]).unwrap_python_model()


def git_commit() -> str | None:
    """The commit of the code that trains (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def champion_scorer(spec: training.ModelSpec, test: pl.DataFrame) -> Callable[[str, MlflowClient], float]:
    """Re-score a registered version on ``test`` (a model-input frame): the gate's same-window comparison."""

    def score_version(version: str, client: MlflowClient) -> float:
        model = load_version_model(spec.name, version, client)
        y = training.original_scale(spec, test.get_column("target").cast(pl.Float64).to_numpy())
        baseline = None  # the primary metric never needs the baseline
        return training.score(spec, y, model.predict_features(test), "test", baseline)[spec.gate_metric]

    return score_version


def _beats(spec: training.ModelSpec, candidate: float, champion: float, margin: float) -> bool:
    gain = candidate - champion if spec.higher_is_better else champion - candidate
    return gain >= margin


def _run_is_complete(client: MlflowClient, run_id: str) -> Any:
    run = client.get_run(run_id)
    if run.info.status != "FINISHED" or run.data.tags.get(COMPLETE_TAG) != "true":
        raise RegistryError(
            f"run {run_id} is {run.info.status}"
            + ("" if run.info.status != "FINISHED" else " but did not finish logging its model")
            + ": nothing is registered from a failed or partial run; fix the failure and train again"
        )
    return run


APPLIED_TAG = "gate.applied"  # written on a version once its alias is in place: the decision is complete
MAX_REDECISIONS = 5


def register_and_gate(
    spec: training.ModelSpec,
    run_id: str,
    candidate_metrics: Mapping[str, float],
    *,
    test: pl.DataFrame | None = None,
    score_champion: Callable[[str, MlflowClient], float] | None = None,
    margin: float | None = None,
    floors: tuple[training.Floor, ...] | None = None,
    client: MlflowClient | None = None,
) -> GateDecision:
    """Register the run's model as a new version and move ``champion`` to it only if it earns it.

    The candidate must pass every floor and beat the current champion's primary metric by
    ``margin`` on the SAME test window: the champion is re-scored on ``test`` (the candidate's
    test model-input frame) or by ``score_champion(version, client)``. Otherwise the version gets
    ``challenger``. Margin and floors default to the spec's gate.

    Promotion is a compare-and-set: read champion, compare, move the alias all happen under
    ``store_lock(uri, "gate-<model>")``, and the alias is read again just before it is moved; if it
    moved (a writer that does not take the lock), the candidate is re-decided against the new
    champion. The gate is also resumable: a run already registered is not registered again, and a
    decision cut short (a crash between its writes) is finished, or re-decided if the champion it
    was compared with is no longer the champion. ``gate.applied`` on the version, then
    ``registered_version`` on the run, are written last.
    """
    client = client or get_client()
    margin = spec.gate.margin if margin is None else margin
    floors = spec.gate.floors if floors is None else floors
    run = _run_is_complete(client, run_id)

    with store_lock(client.tracking_uri, f"gate-{spec.name}", GATE_LOCK_TIMEOUT_S):
        existing = _run_version(client, spec.name, run_id)
        if existing is not None and existing.tags.get("gate.decision"):
            settled = _resume(client, spec.name, run_id, existing)
            if settled is not None:
                return settled

        metric = spec.gate_metric
        candidate_value = float(candidate_metrics.get(metric, float("nan")))
        failures = [reason for floor in floors if (reason := floor.check(candidate_metrics)) is not None]
        if not math.isfinite(candidate_value):
            failures.insert(0, f"{metric} is missing or not finite")

        version = None if existing is None else str(existing.version)
        champion_before = _alias_version(client, spec.name, CHAMPION)
        for _ in range(MAX_REDECISIONS):
            champion_value = None
            if champion_before is not None:
                if score_champion is None:
                    if test is None:
                        raise RegistryError(
                            f"{spec.name} has a champion (version {champion_before}): pass the candidate's test "
                            "frame (test=) or score_champion= so both are compared on the same test window"
                        )
                    score_champion = champion_scorer(spec, test)
                champion_value = float(score_champion(champion_before, client))
            promoted, reason = _decide(
                spec, candidate_value, champion_before, champion_value, failures, margin
            )
            if version is None:
                with _tracking(client.tracking_uri):  # the logged model is looked up through the fluent URI
                    version = _create_version(
                        client,
                        spec,
                        run.data.tags["model_uri"],
                        run_id,
                        run.data.tags.get("model_id") or None,
                    )
            decision = GateDecision(
                promoted, version, reason, champion_before, candidate_value, champion_value
            )
            _write_decision(client, spec.name, run_id, decision, metric)
            now = _alias_version(client, spec.name, CHAMPION)  # the compare-and-set's re-check
            if now == champion_before:
                break
            champion_before = now  # the champion moved since we compared: decide again against the new one
        else:
            raise RegistryError(
                f"{spec.name}: the champion alias moved {MAX_REDECISIONS} times while gating "
                f"version {version}; something moves it in a loop, gate again once it stops"
            )
        _move_alias(client, spec.name, decision)
        _mark_applied(client, spec.name, run_id, version)
        return decision


def _decide(
    spec: training.ModelSpec,
    candidate_value: float,
    champion_before: str | None,
    champion_value: float | None,
    failures: list[str],
    margin: float,
) -> tuple[bool, str]:
    metric = spec.gate_metric
    if failures:
        return False, "fails floors: " + "; ".join(failures)
    if champion_value is None:
        return True, f"first champion: {metric}={candidate_value:.4f} passes every floor"
    if _beats(spec, candidate_value, champion_value, margin):
        return True, (
            f"{metric}={candidate_value:.4f} beats champion v{champion_before} ({champion_value:.4f} on "
            f"the same test window) by at least {margin:g}"
        )
    return False, (
        f"{metric}={candidate_value:.4f} does not beat champion v{champion_before} ({champion_value:.4f} "
        f"on the same test window) by the margin {margin:g}"
    )


def _run_version(client: MlflowClient, name: str, run_id: str) -> Any | None:
    """The version already registered from ``run_id`` (a gate run that registered and then stopped)."""
    found = [v for v in client.search_model_versions(f"name='{name}' and run_id='{run_id}'")]
    return min(found, key=lambda v: int(v.version)) if found else None


def _write_decision(client: MlflowClient, name: str, run_id: str, d: GateDecision, metric: str) -> None:
    tags = {
        "gate.decision": "promoted" if d.promoted else "rejected",
        "gate.reason": d.reason,
        "gate.metric": metric,
        "gate.candidate_value": f"{d.candidate_value:.6f}",
        "gate.champion_value": "" if d.champion_value is None else f"{d.champion_value:.6f}",
        "gate.champion_version_before": d.champion_version_before or "",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, d.version, key, value)
        client.set_tag(run_id, key, value)
    if d.promoted and d.champion_version_before is not None:
        client.set_model_version_tag(name, d.version, "previous_champion", d.champion_version_before)
    elif "previous_champion" in client.get_model_version(name, d.version).tags:  # left by an earlier decision
        client.delete_model_version_tag(name, d.version, "previous_champion")


def _move_alias(client: MlflowClient, name: str, d: GateDecision) -> None:
    if d.promoted:
        client.set_registered_model_alias(name, CHAMPION, d.version)
        if _alias_version(client, name, CHALLENGER) == d.version:
            client.delete_registered_model_alias(name, CHALLENGER)
        return
    current = _alias_version(client, name, CHALLENGER)
    if current is None or int(current) <= int(
        d.version
    ):  # a resumed old decision never takes it from a newer one
        client.set_registered_model_alias(name, CHALLENGER, d.version)


def _mark_applied(client: MlflowClient, name: str, run_id: str, version: str) -> None:
    client.set_model_version_tag(name, version, APPLIED_TAG, "true")
    client.set_tag(run_id, "registered_version", version)


def _resume(client: MlflowClient, name: str, run_id: str, version: Any) -> GateDecision | None:
    """The stored decision of a version gated before, finished if a crash cut it short; None to re-decide.

    A promotion whose alias never moved is finished only if the champion is still the one it was
    compared with (compare-and-set); if the champion moved meanwhile, it is re-decided. A version
    that was champion once (rolled back since, or replaced by a later promotion) is never restored.
    """
    tags, number = version.tags, str(version.version)
    champion_value = tags.get("gate.champion_value")
    decision = GateDecision(
        promoted=tags["gate.decision"] == "promoted",
        version=number,
        reason="already decided: " + tags.get("gate.reason", ""),
        champion_version_before=tags.get("gate.champion_version_before") or None,
        candidate_value=float(tags.get("gate.candidate_value") or "nan"),
        champion_value=float(champion_value) if champion_value else None,
    )
    if tags.get(APPLIED_TAG) != "true" and decision.promoted:
        champion = _alias_version(client, name, CHAMPION)
        if champion != number and not tags.get("rolled_back_at") and not _was_replaced(client, name, number):
            if champion != decision.champion_version_before:
                return None
            _move_alias(client, name, decision)
    elif tags.get(APPLIED_TAG) != "true":
        _move_alias(client, name, decision)
    _mark_applied(client, name, run_id, number)
    return decision


def _was_replaced(client: MlflowClient, name: str, version: str) -> bool:
    """True when a later promotion replaced ``version`` as champion (so it did hold the alias)."""
    return any(
        v.tags.get("previous_champion") == version and v.tags.get("gate.decision") == "promoted"
        for v in client.search_model_versions(f"name='{name}'")
    )


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    found = _version_by_alias(client, name, alias)
    return None if found is None else str(found.version)


def _create_version(
    client: MlflowClient, spec: training.ModelSpec, model_uri: str, run_id: str, model_id: str | None
) -> str:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(spec.name, description=spec.description)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    version = client.create_model_version(spec.name, source=model_uri, run_id=run_id, model_id=model_id)
    return str(version.version)


@dataclass(frozen=True)
class VersionSummary:
    """One registered version as a person choosing a rollback target needs it."""

    version: str
    aliases: tuple[str, ...]
    created: datetime | None
    decision: str  # the gate's tag: promoted / rejected, or "" when never gated
    reason: str
    rolled_back: bool

    def line(self) -> str:
        """``v3  champion  2026-11-02 10:14  promoted: test_roc_auc=0.874 ...``"""
        created = self.created.strftime("%Y-%m-%d %H:%M") if self.created else "?"
        aliases = ",".join(self.aliases) or "-"
        state = f"{self.decision}: {self.reason}" if self.decision else "not gated"
        return f"v{self.version:<4} {aliases:<11} {created}  {state}{' (rolled back)' if self.rolled_back else ''}"


def list_versions(name: str, client: MlflowClient) -> list[VersionSummary]:
    """Every registered version of ``name``, newest first, with its aliases and gate decision."""
    from datetime import UTC

    aliases: dict[str, list[str]] = {}
    for alias in (CHAMPION, CHALLENGER):
        found = _alias_version(client, name, alias)
        if found is not None:
            aliases.setdefault(found, []).append(alias)
    out = []
    for v in client.search_model_versions(f"name='{name}'"):
        tags = v.tags or {}
        created = datetime.fromtimestamp(v.creation_timestamp / 1000, UTC) if v.creation_timestamp else None
        out.append(
            VersionSummary(
                str(v.version),
                tuple(aliases.get(str(v.version), ())),
                created,
                tags.get("gate.decision", ""),
                tags.get("gate.reason", ""),
                bool(tags.get("rolled_back_at")),
            )
        )
    return sorted(out, key=lambda s: -int(s.version))


def versions_overview(names: Iterable[str], tracking_uri: str | None = None) -> str:
    """The registered versions of each model, for ``mlops-assets rollback --help``; never creates a store."""
    from mlops_assets.lib.redact import redact
    from mlops_assets.lib.settings import env, project_path

    uri = tracking_uri or env("MLFLOW_TRACKING_URI") or f"sqlite:///{project_path(DEFAULT_DB)}"
    path = _sqlite_path(uri) if uri.startswith("sqlite") else None
    if path is not None and not path.exists():
        return (
            f"no MLflow store at {path} yet (run `make run` first, or set MLFLOW_TRACKING_URI or MLOPS_HOME): "
            "no versions to roll back to"
        )
    try:
        client = get_client(uri)
        lines = [f"registered versions ({redact(uri)}):"]
        for name in names:
            versions = list_versions(name, client)
            lines.append(f"  {name}:" + ("" if versions else " none registered"))
            lines += [f"    {v.line()}" for v in versions]
    except Exception as exc:  # help must still print when the registry cannot be read
        return f"cannot list versions from {redact(uri)}: {redact(str(exc))[:300]}"
    return "\n".join(lines)


def rollback(
    model_name: str, client: MlflowClient | None = None, *, to: str | None = None, dry_run: bool = False
) -> tuple[str, str]:
    """Move ``champion`` to ``to`` (default: the version the current champion replaced); returns (from, to).

    ``dry_run``: check everything and return what would happen, change nothing.
    """
    client = client or get_client()
    if dry_run:
        return _rollback(model_name, client, to, apply=False)
    with store_lock(
        client.tracking_uri, f"gate-{model_name}", GATE_LOCK_TIMEOUT_S
    ):  # not amid a gate's compare-and-set
        return _rollback(model_name, client, to, apply=True)


def _rollback(model_name: str, client: MlflowClient, to: str | None, apply: bool) -> tuple[str, str]:
    from datetime import UTC

    current = _version_by_alias(client, model_name, CHAMPION)
    if current is None:
        raise RegistryError(f"model {model_name!r} has no champion: there is nothing to roll back")
    from_version = str(current.version)
    if to is None:
        target = current.tags.get("previous_champion")
        if not target:
            raise RegistryError(
                f"{model_name} champion v{from_version} was the first champion (no previous_champion tag): "
                "there is no earlier champion to roll back to; pick one with --to VERSION or promote a new version"
            )
    else:
        target = str(to).strip().lstrip("vV")
        known = {s.version: s for s in list_versions(model_name, client)}
        if target not in known:
            listed = ", ".join(f"v{v}" for v in known) or "none"
            raise RegistryError(f"{model_name} has no version {to!r} (registered: {listed})")
        if target == from_version:
            raise RegistryError(f"{model_name} v{target} is already the champion: nothing to do")
        chosen = known[target]
        if not chosen.decision:
            raise RegistryError(
                f"{model_name} v{target} was never gated (a crashed or manual registration): "
                "only gated versions can serve; pick another"
            )
        if chosen.reason.startswith("fails floors"):
            raise RegistryError(
                f"{model_name} v{target} failed the gate's floors ({chosen.reason}): it may not "
                "serve; pick another"
            )
    if not apply:
        return from_version, target
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    # Marked before the alias moves: a gate resuming after a crash here never restores a rolled-back version.
    client.set_model_version_tag(model_name, from_version, "rolled_back_at", stamp)
    client.set_model_version_tag(model_name, from_version, "rolled_back_to", target)
    client.set_registered_model_alias(model_name, CHAMPION, target)
    client.set_model_version_tag(model_name, target, "restored_at", stamp)
    client.set_model_version_tag(model_name, target, "restored_from", from_version)
    return from_version, target
