"""The scoring service as a real process on a free loopback port, against a sandbox warehouse and MLflow store."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import polars as pl
import pytest

from mlops_assets.devtools.ports import free_port
from mlops_assets.lib import registry, scoring, training
from mlops_assets.lib.warehouse import Warehouse
from mlops_assets.reliability.service import ServiceProcess
from mlops_assets.serving import sandbox

pytestmark = pytest.mark.slow


class Service(ServiceProcess):
    """The package's service process (mlops_assets/reliability/service.py) with an HTTP client and a
    wait for a given /ready status; stopped by the fixture that started it.
    """

    def __init__(self, box: sandbox.Sandbox, log: Path, check_s: float = 30.0) -> None:
        super().__init__(box, log, {"MLOPS_SERVE_CHECK_S": str(check_s)})

    def _launch(self) -> None:
        super()._launch()  # again on another port if the first was taken: the client follows
        if hasattr(self, "http"):
            self.http.close()
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def wait(self, status: int, timeout_s: float = 60.0) -> dict:
        """Poll /ready until it answers `status` (200 ready, 503 not ready with a settled reason)."""

        def settled(answer: httpx.Response) -> bool:
            return answer.status_code == status and not answer.json().get("reason", "").startswith("starting")

        try:
            return self.poll_ready(settled, timeout_s).json()
        except RuntimeError as exc:
            pytest.fail(str(exc))

    def stop(self) -> None:
        self.http.close()
        super().stop()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[sandbox.Sandbox, Path]]:
    """A sandbox with both champions at version 1, and a copy of its store taken before any champion."""
    root = tmp_path_factory.mktemp("serving")
    box = sandbox.empty_sandbox(root / "main")
    registry.get_client(box.tracking_uri).search_experiments()  # create the store (migrations)
    empty_db = root / "empty.db"
    shutil.copy(box.tracking_uri.removeprefix("sqlite:///"), empty_db)
    tasks = sandbox.clean_tasks(1500, seed=7)
    sandbox.write_tasks(box, tasks)
    for name in scoring.MODEL_NAMES:
        sandbox.train_and_register(box, tasks, training.get_spec(name))
    yield box, empty_db


@pytest.fixture(scope="module")
def service(box, tmp_path_factory) -> Iterator[Service]:
    running = Service(box[0], tmp_path_factory.mktemp("logs") / "service.log", check_s=1.0)
    try:
        running.wait(200)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def tasks(box) -> pl.DataFrame:
    return Warehouse(box[0].warehouse).read_table("clean.tasks")


@pytest.fixture(scope="module")
def deadline_record(tasks) -> dict:
    open_with_deadline = scoring.open_tasks(tasks).filter(pl.col("deadline_at").is_not_null())
    return scoring.task_records(open_with_deadline.head(1))[0]


def _champions(box: sandbox.Sandbox) -> dict[str, scoring.ServedModel]:
    return scoring.load_champions(registry.get_client(box.tracking_uri),
                                  cache_dir=box.root / "cache" / "mlops_assets" / "forests")  # as the service  # fmt: skip


def _frame(predictions: list[dict]) -> pl.DataFrame:
    """JSON predictions as a SCORE_SCHEMA frame (timestamps parsed back)."""
    rows = [
        {**p, **{c: datetime.fromisoformat(p[c]) for c in ("predicted_completion_at", "scored_at")}}
        for p in predictions
    ]
    return pl.DataFrame(rows, schema=scoring.SCORE_SCHEMA)


def test_ready_names_the_champions_and_the_history(service):
    assert service.http.get("/health").json() == {
        "status": "ok",
        "models": {"late_risk": "1", "cycle_time": "1"},
    }
    ready = service.http.get("/ready").json()
    assert ready["ready"] is True
    assert ready["models"] == {"late_risk": "1", "cycle_time": "1"}
    assert ready["history"]["n_tasks"] == 1500


def test_one_task_is_scored_with_band_reasons_and_completion_date(service, deadline_record):
    answer = service.http.post("/predict", json=deadline_record)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    prediction = body["prediction"]
    assert body["models"] == {"late_risk": "1", "cycle_time": "1"}
    assert prediction["task_id"] == deadline_record["task_id"]
    assert 0.0 <= prediction["late_risk"] <= 1.0
    assert prediction["risk_band"] == scoring.risk_band(prediction["late_risk"])
    assert all(isinstance(prediction[f"reason_{i}"], str) for i in (1, 2, 3))
    assert prediction["reason_1"].endswith(("raises the risk", "lowers the risk"))
    assert prediction["predicted_cycle_days"] >= 0
    assert prediction["predicted_completion_at"] >= prediction["scored_at"]  # ISO strings of one format
    assert (prediction["late_risk_version"], prediction["cycle_time_version"]) == ("1", "1")


def test_online_scores_equal_the_batch_scores_for_the_same_versions(service, box, tasks):
    open_tasks = scoring.open_tasks(tasks)
    answer = service.http.post("/predict/batch", json={"tasks": scoring.task_records(open_tasks)})
    assert answer.status_code == 200, answer.text
    online = _frame(answer.json()["predictions"])
    assert (
        online.height == open_tasks.height and online["task_id"].to_list() == open_tasks["task_id"].to_list()
    )
    champions = _champions(box[0])
    now = online["scored_at"][0]
    # both explain every task with a deadline, with the compiled champions of the same versions
    batch = scoring.score_open_tasks(tasks, champions["late_risk"], champions["cycle_time"], now)
    assert online.equals(batch)  # every column: probabilities, bands, reasons, dates, versions

    single = service.http.post("/predict", json=scoring.task_records(open_tasks.head(1))[0]).json()[
        "prediction"
    ]
    assert single["late_risk"] == batch["late_risk"][0] and single["reason_1"] == batch["reason_1"][0]
    assert single["predicted_cycle_days"] == batch["predicted_cycle_days"][0]


def _record(base: dict, **changes) -> dict:
    out = {**base, **changes}
    return {k: v for k, v in out.items() if v is not None}


BAD_SINGLE = [
    ("missing field", {"project": None}, "missing required field(s) project"),
    ("unknown field", {"status": "done"}, "unknown field(s) 'status'"),
    ("misspelt field", {"story_pionts": 3}, "did you mean 'story_points'"),
    ("wrong type", {"story_points": "three"}, "story_points must be a number, got str 'three'"),
    ("negative count", {"description_length": -4}, "description_length is -4: it cannot be negative"),
    ("unparseable date", {"created_at": "last Tuesday"}, "created_at 'last Tuesday' is not an ISO 8601 timestamp"),
    ("time without offset", {"created_at": "2026-05-01T09:30:00"}, "has no UTC offset"),
    ("unknown category", {"priority": "urgent"}, "priority 'urgent' was not seen in training of late_risk v1"),
    # hostile values: each a 422 naming the fix, never a 500 (docs/RELIABILITY.md, "Hostile input")
    ("last second of the calendar", {"created_at": "9999-12-31T23:59:59Z"},
     "created_at 9999-12-31 is in the future: check the export's date format and time zone"),
    ("before 1990, as cleaning rules", {"created_at": "1970-01-01T00:00:00Z"},
     "created_at 1970-01-01 is before 1990: not a plausible task date"),
    ("offset past the calendar's end", {"due_at": "9999-12-31T23:00:00-05:00"},
     "due_at '9999-12-31T23:00:00-05:00' falls outside years 1-9999 once converted to UTC"),
    ("offset before the calendar's start", {"created_at": "0001-01-01T00:00:00+05:00"},
     "created_at '0001-01-01T00:00:00+05:00' falls outside years 1-9999 once converted to UTC"),
    ("huge count", {"n_labels": 1e308}, "n_labels is 1e+308: more than 1,000,000,000 is not a plausible value"),
    ("huge length", {"description_length": 1e20}, "description_length is 1e+20: more than 1,000,000,000"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "changes", "message"), BAD_SINGLE, ids=[c[0] for c in BAD_SINGLE])
def test_a_bad_task_gets_a_422_saying_what_is_wrong(service, deadline_record, case, changes, message):
    answer = service.http.post("/predict", json=_record(deadline_record, **changes))
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert message in body["detail"]
    assert body["errors"][0]["index"] == 0 and message in " ".join(body["errors"][0]["messages"])
    assert body["models"] == {"late_risk": "1", "cycle_time": "1"}


def test_unknown_category_can_be_scored_as_missing_when_asked(service, deadline_record):
    answer = service.http.post(
        "/predict?unknown_categories=missing", json=_record(deadline_record, priority="urgent")
    )
    as_missing = service.http.post("/predict", json=_record(deadline_record, priority=None))
    assert answer.status_code == 200 and as_missing.status_code == 200
    prediction = answer.json()["prediction"]
    assert any("priority 'urgent'" in w and "scored as missing" in w for w in prediction["warnings"])
    assert prediction["late_risk"] == as_missing.json()["prediction"]["late_risk"]


def test_a_batch_with_bad_records_is_rejected_whole_with_one_entry_per_bad_record(service, tasks):
    good = scoring.task_records(scoring.open_tasks(tasks).head(3))
    batch = [good[0], _record(good[1], created_at="2026-13-45"), good[2], {"task_id": 7}]
    answer = service.http.post("/predict/batch", json={"tasks": batch})
    assert answer.status_code == 422
    body = answer.json()
    assert "2 of 4 tasks are invalid" in body["detail"] and "nothing was scored" in body["detail"]
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert body["errors"][0]["task_id"] == good[1]["task_id"]
    assert "created_at '2026-13-45' is not an ISO 8601 timestamp" in body["errors"][0]["messages"][0]
    assert "missing required field(s) project, created_at" in body["errors"][1]["messages"][0]
    assert "task_id must be a string, got int 7" in body["errors"][1]["messages"][0]


@pytest.mark.parametrize(
    ("path", "content", "status", "message"),
    [
        ("/predict", b"{not json", 400, "not valid JSON"),
        ("/predict", b"", 400, "the body is empty"),
        ("/predict", b"[]", 422, "expected one task as a JSON object"),
        ("/predict/batch", b'[{"task_id": "a"}]', 422, 'expected {"tasks": [task, ...]}'),
        ("/predict/batch", b'{"tasks": []}', 422, '"tasks" is empty'),
        ("/predict/batch", b'{"tasks": [], "now": 1}', 422, "unknown key(s) ['now']"),
        (
            "/predict?unknown_categories=maybe",
            b"{}",
            422,
            "unknown_categories='maybe': use one of reject, missing",
        ),
        ("/predict", b'{"x": "' + b"y" * 1_100_000 + b'"}', 413, "the limit is 1,000,000 bytes"),
        ("/predict", b"[" * 999 + b"]" * 999, 400, "nested too deeply"),
        ("/predict", b'{"a":' * 999 + b"1" + b"}" * 999, 400, "nested too deeply"),
    ],
)
def test_malformed_bodies_get_a_4xx_with_a_message(service, path, content, status, message):
    answer = service.http.post(path, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]


def test_requests_that_cannot_be_scored_never_fail_other_clients_requests(service, tasks):
    good = scoring.task_records(scoring.open_tasks(tasks).head(8))
    bad = _record(good[0], task_id="hostile", created_at="9999-12-31T23:59:59Z")
    requests = [good[i % 8] for i in range(80)] + [bad] * 20
    order = sorted(range(len(requests)), key=lambda i: (i * 7) % len(requests))  # bad ones among the good
    with (
        httpx.Client(base_url=str(service.http.base_url), timeout=30) as http,
        ThreadPoolExecutor(10) as pool,
    ):
        answers = list(pool.map(lambda i: (i, http.post("/predict", json=requests[i])), order))
    statuses = {i: answer.status_code for i, answer in answers}
    assert [statuses[i] for i in range(80)] == [200] * 80  # every good request scored
    assert [statuses[i] for i in range(80, 100)] == [422] * 20  # every hostile one refused, for itself


def test_a_batch_over_the_task_limit_gets_a_413(service, deadline_record):
    answer = service.http.post("/predict/batch", json={"tasks": [deadline_record] * 1001})
    assert answer.status_code == 413
    assert "1,001 tasks in one batch; the limit is 1,000" in answer.json()["detail"]


def test_without_a_champion_the_service_answers_503_with_the_reason(box, deadline_record, tmp_path):
    store = tmp_path / "no_champion.db"
    shutil.copy(box[1], store)
    empty = sandbox.Sandbox(tmp_path, box[0].warehouse, f"sqlite:///{store}", tmp_path / "artifacts")
    running = Service(empty, tmp_path / "service.log")
    try:
        reason = running.wait(503)["reason"]
        assert "no champion yet for late_risk, cycle_time" in reason
        assert running.http.get("/health").status_code == 200
        answer = running.http.post("/predict", json=deadline_record)
        assert answer.status_code == 503 and answer.json()["detail"] == reason
        assert running.http.post("/reload").status_code == 503
    finally:
        running.stop()


def test_a_service_whose_port_is_taken_while_it_loads_starts_again_on_another(box, tmp_path, monkeypatch):
    """CI, 2026-12-05: "[Errno 98] address already in use" when a client's connection took the port the
    service was to bind once its champions were loaded. The port is taken here by a listener instead.
    """
    from mlops_assets.reliability import service as service_module

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = iter([taken.getsockname()[1]])
        monkeypatch.setattr(service_module, "free_port", lambda: next(ports, None) or free_port())
        store = tmp_path / "no_champion.db"
        shutil.copy(box[1], store)
        empty = sandbox.Sandbox(tmp_path, box[0].warehouse, f"sqlite:///{store}", tmp_path / "artifacts")
        running = Service(empty, tmp_path / "service.log")
        try:
            assert "no champion yet" in running.wait(503)["reason"]
            assert running.relaunches == 1 and running.port != taken.getsockname()[1]
            assert running.http.get("/health").status_code == 200
        finally:
            running.stop()


def test_a_service_that_fails_for_another_reason_is_not_started_again(box, tmp_path):
    empty = sandbox.Sandbox(tmp_path, box[0].warehouse, "sqlite:///" + str(tmp_path / "x.db"), tmp_path / "a")
    running = ServiceProcess(empty, tmp_path / "service.log", {"MLOPS_SERVE_MAX_TASKS": "many"})
    try:
        with pytest.raises(RuntimeError, match="the service exited with"):
            running.wait_ready(timeout_s=60)
        assert running.relaunches == 0
    finally:
        running.stop()


def test_a_promotion_is_served_after_reload_and_a_rollback_after_the_periodic_check(
    service, box, tasks, deadline_record
):
    decision = sandbox.train_and_register(box[0], tasks, sandbox.weaker_spec("late_risk"))
    assert decision.promoted and decision.version == "2"
    reloaded = service.http.post("/reload").json()
    assert reloaded["models"] == {"late_risk": "2", "cycle_time": "1"}

    prediction = service.http.post("/predict", json=deadline_record).json()["prediction"]
    assert (prediction["late_risk_version"], prediction["cycle_time_version"]) == ("2", "1")
    champions = _champions(box[0])
    assert champions["late_risk"].features == sandbox.weaker_spec().feature_columns()
    expected = scoring.score_tasks(
        tasks.filter(pl.col("task_id") == deadline_record["task_id"]), champions["late_risk"],
        champions["cycle_time"], scoring.warehouse_history(box[0].warehouse), datetime.fromisoformat(prediction["scored_at"]),
    )  # fmt: skip
    assert prediction["late_risk"] == expected["late_risk"][0]

    # a rollback is picked up without /reload, by the periodic alias check (every 1 s here)
    assert registry.rollback("late_risk", registry.get_client(box[0].tracking_uri)) == ("2", "1")
    deadline = time.monotonic() + 30
    while service.http.get("/ready").json()["models"]["late_risk"] != "1":
        assert time.monotonic() < deadline, "the rollback was not picked up within 30 s"
        time.sleep(0.2)
    assert (
        service.http.post("/predict", json=deadline_record).json()["prediction"]["late_risk_version"] == "1"
    )
