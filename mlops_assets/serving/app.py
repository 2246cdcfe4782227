"""The online scoring service: the champions of late_risk and cycle_time over HTTP/JSON.

Start it with ``make serve`` or ``python -m mlops_assets.serving`` (127.0.0.1, port
``MLOPS_SERVE_PORT``, default 8000). It scores raw task records with :func:`scoring.score_rows`, the
core the batch table ``serving.task_risk_scores`` is built with, and features from
:func:`history_index.feature_columns`, proven equal to ``features.build_features``: the online answer
and the batch answer for a task are the same numbers, reasons included, for the same model versions
and history.

Why a FastAPI app and not ``mlflow models serve``: a task's features need the warehouse (project and
assignee history as of its creation), the answer combines two models (late risk with its reasons,
cycle time with a completion date), and the latency budget (p99 <= 20 ms) leaves no room for
MLflow's per-request pandas conversion and schema enforcement. The app loads each champion through
the registry once (the booster string and category levels the pyfunc stores), compiles it to native
code (``scoring.load_champions`` -> ``fast_trees``: predictions bit-identical to LightGBM, TreeSHAP
for the reasons; cached on disk per model version under ``$XDG_CACHE_HOME``, so only a new version
pays the compile, while the previous snapshot keeps serving), and keeps them and a history snapshot
in memory. docs/benchmarks/serving.md has the figures.

Endpoints (every JSON body names the model versions under ``models``):

* ``GET /health``: liveness, 200 while the process runs.
* ``GET /ready``: 200 with versions and history snapshot when it can score, else 503 with the reason
  (e.g. no champion yet, no clean.tasks in the warehouse).
* ``POST /predict``: one task as a JSON object of task fields -> ``{"prediction": {...}, "models": {...}}``.
* ``POST /predict/batch``: ``{"tasks": [...]}`` (at most ``MLOPS_SERVE_MAX_TASKS``, 1000) ->
  ``{"predictions": [...], "models": {...}}`` in request order.
* ``GET /reports/...`` and ``GET /exports/...``: the HTML reports (``MLOPS_REPORTS_DIR``, data/reports)
  and the PM exports (``MLOPS_EXPORTS_DIR``, data/exports; ``/exports/projects/`` is the page per
  project) that the Dagster UI links to, read-only (GET/HEAD); a path that leaves the folder (``..``,
  a symlink out) or names a hidden file is 404.
* ``POST /reload``: re-read the champion aliases and the warehouse now. The service also checks both
  every ``MLOPS_SERVE_CHECK_S`` seconds (30): a promotion or rollback is served within that time.

A prediction has the columns of :data:`scoring.SCORE_COLUMNS` (late_risk, risk_band, reason_1..3,
predicted_cycle_days, predicted_completion_at, completion_overdue, warnings, the versions, scored_at).

Bad input never scores and never gets a 500; bodies carry ``error``, ``detail`` and, for records,
``errors``: one entry per bad record (``index``, ``task_id``, ``messages``):

* 400: the body is not JSON, or is nested too deeply to be a task.
* 413: the body is over ``MLOPS_SERVE_MAX_BYTES`` (1,000,000) or the batch over the task limit.
* 422: the body has the wrong shape, or records have missing/unknown fields, wrong types,
  unparseable dates, a ``created_at`` cleaning would quarantine (``task_rules``: before 1990 or more
  than a day ahead), dates past the calendar once in UTC, negative or non-finite numbers, numbers over
  1e9, duplicate task ids, or category values (source, project, type,
  priority) the champion never saw. **A batch with any bad record is rejected whole** (nothing is
  scored, every bad record is listed), so a client never mistakes a partial answer for a full one.
  Unknown categories can be accepted with ``?unknown_categories=missing``: they are then scored as
  missing, as the model would, and named in the prediction's ``warnings``.
* 503: not ready (no champion yet, no warehouse history), with the reason.

``MLOPS_SERVE_WORKERS`` (default 1) runs that many processes on the port; each loads the champions
and checks for changes on its own, so POST /reload reaches only the process that answers it and the
others follow at their next check (every ``MLOPS_SERVE_CHECK_S``); every answer names its versions.

Concurrency: in each process requests are scored by one thread; requests that arrive while it works are scored
together in the next call (micro-batching), which shares the per-call cost of scoring and of the
thread hand-off between them. If a micro-batch fails, its requests are scored one by one, so a request
that cannot be scored fails alone and never another client's. A single task costs about 0.3-0.5 ms of scoring (docs/benchmarks/serving.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles

from mlops_assets.lib import features as features_lib
from mlops_assets.lib import history_index, long_lived, scoring
from mlops_assets.lib.redact import redact
from mlops_assets.lib.settings import env as setting
from mlops_assets.lib.settings import env_number
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.serving.telemetry import Telemetry, TelemetryMiddleware

log = logging.getLogger("mlops_assets.serving")

UNKNOWN_CATEGORY_POLICIES = ("reject", "missing")
_CATEGORY_HINT = " (pass ?unknown_categories=missing to score it as missing)"


# ---------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class Settings:
    """Service configuration; :meth:`from_env` reads it from the environment."""

    host: str = "127.0.0.1"
    port: int = 8000
    warehouse: str = "data/warehouse.duckdb"
    tracking_uri: str | None = None  # None: registry.get_tracking_uri() (MLFLOW_TRACKING_URI or data/mlflow)
    check_interval_s: float = 30.0
    max_tasks: int = 1000
    max_bytes: int = 1_000_000
    workers: int = 1
    reports_dir: str = "data/reports"
    exports_dir: str = "data/exports"
    telemetry: bool = True  # MLOPS_SERVE_TELEMETRY=0: no per-request counting (the benchmark's baseline)
    # After each load that changes what is served, freeze it out of Python's full collections
    # (long_lived.settle): they paused a worker for ~100 ms at 1M tasks. Off by default in code (a test
    # process builds Settings too); the service's from_env turns it on unless MLOPS_SERVE_FREEZE_GC=0.
    freeze_gc: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        port = env_number("MLOPS_SERVE_PORT", 8000, int, env)
        reports = setting("MLOPS_REPORTS_DIR", env)
        if port > 65535:
            raise ValueError(f"MLOPS_SERVE_PORT={port} is not a TCP port (1-65535)")
        return cls(
            host=setting("MLOPS_SERVE_HOST", env),
            port=port,
            warehouse=setting("MLOPS_WAREHOUSE", env),
            tracking_uri=setting("MLFLOW_TRACKING_URI", env) or None,
            check_interval_s=env_number("MLOPS_SERVE_CHECK_S", 30.0, float, env),
            max_tasks=env_number("MLOPS_SERVE_MAX_TASKS", 1000, int, env),
            max_bytes=env_number("MLOPS_SERVE_MAX_BYTES", 1_000_000, int, env),
            workers=env_number("MLOPS_SERVE_WORKERS", 1, int, env),
            reports_dir=reports,
            # beside the reports folder unless set, as the pipeline's resources place it
            exports_dir=setting("MLOPS_EXPORTS_DIR", env) or str(pathlib.Path(reports).parent / "exports"),
            telemetry=setting("MLOPS_SERVE_TELEMETRY", env) != "0",
            freeze_gc=setting("MLOPS_SERVE_FREEZE_GC", env) != "0",
        )


# ---------------------------------------------------------------------------------------------------
# what is being served


@dataclass(frozen=True)
class Snapshot:
    """The champions and the history snapshot one scoring call uses (swapped whole on reload)."""

    late: scoring.ServedModel
    cycle: scoring.ServedModel
    history: features_lib.History
    warehouse_stamp: tuple[int, ...]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    index: history_index.HistoryIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the per-key arrays the single-task fast path searches (built once per history snapshot)
        object.__setattr__(self, "index", history_index.HistoryIndex.from_history(self.history))

    @property
    def versions(self) -> dict[str, str]:
        return {self.late.name: self.late.version, self.cycle.name: self.cycle.version}

    def describe(self) -> dict[str, Any]:
        return {
            "models": self.versions,
            "history": {"as_of": self.history.as_of, "n_tasks": self.history.n_tasks},
            "loaded_at": self.loaded_at,
        }


class ModelState:
    """The current :class:`Snapshot` (None until the first successful load) and why it is not ready."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.snapshot: Snapshot | None = None
        self.reason: str = "starting: loading the champions and the warehouse history"
        self._lock = threading.Lock()
        self._client: Any = None

    def _get_client(self) -> Any:
        if self._client is None:
            from mlops_assets.lib import registry

            self._client = registry.get_client(self.settings.tracking_uri)
        return self._client

    def refresh(self) -> dict[str, Any]:
        """Load what changed (alias versions, warehouse file); blocking, run it off the event loop.

        Raises when nothing can be served; with a snapshot already loaded a failure keeps it serving. After
        a load that changed the snapshot, with ``freeze_gc``, what is served is frozen out of full garbage
        collections (:func:`long_lived.settle`), once the load's own references to the replaced one are gone.
        """
        answer = self._load()
        if answer["changed"] and self.settings.freeze_gc:
            long_lived.settle()
        return answer

    def _load(self) -> dict[str, Any]:
        with self._lock:
            before = self.snapshot
            try:
                client = self._get_client()
                versions = scoring.champion_versions(client)
                if before is not None and not all(versions.values()):
                    # an alias removed while serving: keep the loaded champion rather than go dark
                    log.warning("champion alias missing (%s); still serving %s", versions, before.versions)
                    return {"changed": False, **before.describe()}
                models = {}
                for name in scoring.MODEL_NAMES:
                    current = None if before is None else {before.late.name: before.late,
                                                           before.cycle.name: before.cycle}[name]  # fmt: skip
                    if current is not None and current.version == versions[name]:
                        models[name] = current
                if len(models) < len(scoring.MODEL_NAMES):
                    loaded = scoring.load_champions(client, versions)
                    models = {name: models.get(name, loaded[name]) for name in scoring.MODEL_NAMES}
                path = (
                    self.settings.warehouse
                )  # a DuckDB file or a ducklake: URL (not a Path: URLs hold '//')
                stamp = Warehouse(path).version_stamp()
                history = before.history if before is not None and before.warehouse_stamp == stamp else None
                if history is None:
                    history = scoring.warehouse_history(path, lock_timeout_s=5.0)
                if before is not None and before.history is history:
                    snapshot = dataclasses.replace(before, late=models[scoring.LATE_RISK],
                                                   cycle=models[scoring.CYCLE_TIME])  # fmt: skip
                else:
                    snapshot = Snapshot(models[scoring.LATE_RISK], models[scoring.CYCLE_TIME], history, stamp)
            except Exception as exc:
                if (
                    before is None
                ):  # GET /ready is unauthenticated: no credentials of MLFLOW_TRACKING_URI in it
                    self.reason = redact(str(exc))
                raise
            changed = before is None or before.versions != snapshot.versions or before.history is not history
            if changed:
                self.snapshot = snapshot
                log.info("serving %s, history as of %s", snapshot.versions, history.as_of)
            return {"changed": changed, **(self.snapshot or snapshot).describe()}


# ---------------------------------------------------------------------------------------------------
# micro-batching scorer


class NotReadyError(RuntimeError):
    """Nothing to score with yet."""


def _score_batch(snapshot: Snapshot | None, frames: list[pl.DataFrame]) -> list[tuple[Snapshot, list, dict]]:
    """Score several requests' record frames in one call; split the rows and warnings back per request."""
    if snapshot is None:
        raise NotReadyError("no model loaded")
    now = datetime.now(UTC)
    # as of now: each task's age, status, reassignments ... from the events the snapshot holds for it
    parts = [history_index.feature_columns(frame, snapshot.index, at=now) for frame in frames]
    columns = (
        parts[0] if len(parts) == 1 else _concat_columns(parts)
    )  # pl.concat costs more than these arrays
    rows, unknown = scoring.score_rows(columns, snapshot.late, snapshot.cycle, now)
    out, offset = [], 0
    for part in frames:
        end = offset + part.height
        part_unknown = {row - offset: messages for row, messages in unknown.items() if offset <= row < end}
        out.append((snapshot, rows[offset:end], part_unknown))
        offset = end
    return out


def _concat_columns(parts: list[history_index.FeatureColumns]) -> history_index.FeatureColumns:
    """Several requests' feature columns as one, in order."""
    first = parts[0]
    return history_index.FeatureColumns(
        [task_id for part in parts for task_id in part.task_id],
        np.concatenate([part.created_us for part in parts]),
        {name: np.concatenate([part.numeric[name] for part in parts]) for name in first.numeric},
        {name: [value for part in parts for value in part.categorical[name]] for name in first.categorical},
    )


class Batcher:
    """One scoring thread; requests queued while it works are scored together in its next call."""

    def __init__(self, state: ModelState, max_rows: int, score: Callable[..., list] = _score_batch) -> None:
        self._state = state
        self._max_rows = max_rows
        self._score = score
        self._pending: deque[tuple[pl.DataFrame, asyncio.Future]] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, frame: pl.DataFrame) -> tuple[Snapshot, list[dict[str, Any]], dict[int, list[str]]]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((frame, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [self._pending.popleft()]
                rows = batch[0][0].height
                while self._pending and rows + self._pending[0][0].height <= self._max_rows:
                    batch.append(self._pending.popleft())
                    rows += batch[-1][0].height
                frames = [frame for frame, _ in batch]
                snapshot = self._state.snapshot
                try:
                    results = await loop.run_in_executor(self._executor, self._score, snapshot, frames)
                except Exception as exc:
                    if len(batch) == 1:  # handed to the waiting request, which answers for itself
                        if not batch[0][1].done():
                            batch[0][1].set_exception(exc)
                        continue
                    # one request must never fail another's: score each alone, each answers for itself
                    log.warning("a micro-batch of %d requests failed (%s: %s); scoring them one by one",
                                len(batch), type(exc).__name__, exc)  # fmt: skip
                    results = []
                    for frame, _ in batch:
                        try:
                            results += await loop.run_in_executor(
                                self._executor, self._score, snapshot, [frame]
                            )
                        except Exception as alone:
                            results.append(alone)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)


# ---------------------------------------------------------------------------------------------------
# HTTP


class ApiError(Exception):
    """An HTTP error answer: status and JSON body."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"error": error, "detail": detail, **extra}


_encoder = msgspec.json.Encoder()


def _json(status: int, body: dict[str, Any], state: ModelState) -> Response:
    if "models" not in body:
        body["models"] = state.snapshot.versions if state.snapshot is not None else {}
    return Response(_encoder.encode(body), status_code=status, media_type="application/json")


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ApiError(413, "payload too large", f"the body is {int(length):,} bytes; the limit is {limit:,} bytes: "
                       "send fewer tasks per request")  # fmt: skip
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload too large", f"the body exceeds the limit of {limit:,} bytes: "
                           "send fewer tasks per request")  # fmt: skip
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_json(request: Request, limit: int) -> Any:
    body = await _read_body(request, limit)
    if not body.strip():
        raise ApiError(400, "empty body", "the body is empty: send JSON")
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid JSON", f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # arrays or objects nested hundreds deep: no task looks like that
        raise ApiError(
            400, "invalid JSON", "the body is nested too deeply: send a flat object of task fields"
        ) from None


def _policy(request: Request) -> str:
    value = request.query_params.get("unknown_categories", "reject")
    if value not in UNKNOWN_CATEGORY_POLICIES:
        raise ApiError(422, "invalid parameter", f"unknown_categories={value!r}: use one of "
                       f"{', '.join(UNKNOWN_CATEGORY_POLICIES)}")  # fmt: skip
    return value


def _task_id(record: Any) -> Any:
    return record.get("task_id") if isinstance(record, dict) else None


def _early_category_check(frame: pl.DataFrame, snapshot: Snapshot) -> dict[int, list[str]]:
    """Unknown categories of the valid records, so that an error answer lists every problem at once."""
    columns = history_index.feature_columns(frame.drop("record_index"), snapshot.index)
    has_deadline = columns.numeric["has_deadline"] > 0
    out = snapshot.late.unknown_categories(columns, has_deadline)
    for row, messages in snapshot.cycle.unknown_categories(columns).items():
        out.setdefault(row, []).extend(messages)
    return out


def _rejection(records: list[Any], problems: dict[int, list[str]], what: str) -> ApiError:
    errors = [
        {"index": index, "task_id": _task_id(records[index]), "messages": problems[index]}
        for index in sorted(problems)
    ]
    if len(records) == 1:
        detail = f"the task is invalid ({what}): " + "; ".join(errors[0]["messages"])
    else:
        detail = (f"{len(errors)} of {len(records)} tasks are invalid ({what}); the whole batch is rejected and "
                  "nothing was scored: fix the records listed in errors and resend")  # fmt: skip
    return ApiError(422, "invalid tasks", detail, errors=errors)


async def _score_records(records: list[Any], policy: str, state: ModelState, batcher: Batcher) -> tuple:
    snapshot = state.snapshot
    if snapshot is None:
        raise ApiError(503, "not ready", state.reason)
    if len(records) > 100:  # validation is Python per record: keep long batches off the event loop
        frame, errors = await asyncio.to_thread(features_lib.records_to_frame, records)
    else:
        frame, errors = features_lib.records_to_frame(records)
    if errors:
        problems = {index: [message] for index, message in errors.items()}
        if policy == "reject" and frame.height:
            positions = frame["record_index"].to_list()
            for row, messages in _early_category_check(frame, snapshot).items():
                problems.setdefault(positions[row], []).extend(m + _CATEGORY_HINT for m in messages)
        raise _rejection(records, problems, "fields")
    frame.drop_in_place("record_index")  # in place: DataFrame.drop goes through polars' lazy engine (~0.3 ms)
    try:
        snapshot, rows, unknown = await batcher.score(frame)
    except NotReadyError:
        raise ApiError(503, "not ready", state.reason) from None
    if unknown and policy == "reject":
        raise _rejection(records, {row: [m + _CATEGORY_HINT for m in messages] for row, messages in unknown.items()},
                         "categories the model never saw")  # fmt: skip
    return snapshot, rows


class ReadOnlyFiles(StaticFiles):
    """Starlette's static files (GET/HEAD only; a path that resolves outside the folder is 404) minus hidden
    files: temporary files of an export being written and dotfiles are never served.
    """

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if any(part.startswith(".") for part in pathlib.PurePath(path).parts):
            return "", None
        return super().lookup_path(path)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app; loading happens in the background after start-up (watch GET /ready)."""
    settings = settings or Settings.from_env()
    state = ModelState(settings)
    telemetry = Telemetry(lambda: state.snapshot, enabled=settings.telemetry)
    holder: dict[str, Batcher] = {}

    async def refresh_loop() -> None:
        while True:
            try:
                await asyncio.to_thread(state.refresh)
            except Exception as exc:  # the reason is kept for /ready; the next check retries
                log.warning("refresh failed: %s", redact(str(exc)))
            await asyncio.sleep(settings.check_interval_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = Batcher(state, max_rows=max(settings.max_tasks, 1))
        batcher.start()
        holder["batcher"] = batcher
        refresher = asyncio.create_task(refresh_loop())
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await batcher.stop()

    app = FastAPI(
        title="mlops_assets task scoring",
        description="late_risk and cycle_time champions; see mlops_assets/serving/app.py",
        lifespan=lifespan,
    )
    app.state.model_state = state
    app.state.telemetry = telemetry
    if settings.telemetry:
        app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    # The pages the Dagster UI links to (a browser will not open file:// links from it), read-only.
    app.mount(
        "/reports", ReadOnlyFiles(directory=settings.reports_dir, html=True, check_dir=False), name="reports"
    )
    app.mount(
        "/exports", ReadOnlyFiles(directory=settings.exports_dir, html=True, check_dir=False), name="exports"
    )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _json(exc.status, dict(exc.body), state)

    @app.get("/health")
    async def health() -> Response:
        """Liveness: the process answers."""
        return _json(200, {"status": "ok"}, state)

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus telemetry: requests, errors by status, latency, predictions by risk band, versions, reload age."""
        body, content_type = telemetry.exposition()
        return Response(body, media_type=content_type)

    @app.get("/ready")
    async def ready() -> Response:
        """Readiness: 200 with versions when the champions and history are loaded, else 503 and why."""
        snapshot = state.snapshot
        if snapshot is None:
            return _json(503, {"ready": False, "reason": state.reason}, state)
        return _json(200, {"ready": True, **snapshot.describe()}, state)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Score one task: a JSON object of task fields."""
        policy = _policy(request)
        payload = await _read_json(request, settings.max_bytes)
        if not isinstance(payload, dict):
            raise ApiError(422, "invalid body", f"expected one task as a JSON object, got a JSON "
                           f"{type(payload).__name__}; for several tasks POST {{\"tasks\": [...]}} to /predict/batch")  # fmt: skip
        snapshot, rows = await _score_records([payload], policy, state, holder["batcher"])
        telemetry.count_predictions(rows)
        return _json(200, {"prediction": rows[0], "models": snapshot.versions}, state)

    @app.post("/predict/batch")
    async def predict_batch(request: Request) -> Response:
        """Score many tasks: {"tasks": [task, ...]}; any bad record rejects the whole batch (422)."""
        policy = _policy(request)
        payload = await _read_json(request, settings.max_bytes)
        if not isinstance(payload, dict) or not isinstance(payload.get("tasks"), list):
            raise ApiError(
                422, "invalid body", 'expected {"tasks": [task, ...]}, a JSON object whose "tasks" is a list'
            )
        extra = sorted(k for k in payload if k != "tasks")
        if extra:
            raise ApiError(422, "invalid body", f'unknown key(s) {extra} beside "tasks"')
        records = payload["tasks"]
        if not records:
            raise ApiError(422, "invalid body", '"tasks" is empty: send at least one task')
        if len(records) > settings.max_tasks:
            raise ApiError(413, "too many tasks", f"{len(records):,} tasks in one batch; the limit is "
                           f"{settings.max_tasks:,}: split the batch")  # fmt: skip
        snapshot, rows = await _score_records(records, policy, state, holder["batcher"])
        telemetry.count_predictions(rows)
        return _json(200, {"predictions": rows, "n": len(rows), "models": snapshot.versions}, state)

    @app.post("/reload")
    async def reload() -> Response:
        """Re-read the champion aliases and the warehouse now."""
        try:
            result = await asyncio.to_thread(state.refresh)
        except Exception as exc:
            still = f"; still serving {state.snapshot.versions}" if state.snapshot is not None else ""
            raise ApiError(503, "reload failed", f"{redact(str(exc))}{still}") from None
        return _json(
            200, {"reloaded": result["changed"], **{k: v for k, v in result.items() if k != "changed"}}, state
        )

    return app


def main() -> int:
    """Run the service with uvicorn on Settings.from_env() (127.0.0.1:8000 by default)."""
    import uvicorn

    settings = Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, access_log=False, log_level="info"
        )
    else:  # each worker process loads and refreshes on its own; see the module docstring about /reload
        uvicorn.run("mlops_assets.serving.app:create_app", factory=True, workers=settings.workers,
                    host=settings.host, port=settings.port, access_log=False, log_level="info")  # fmt: skip
    return 0
