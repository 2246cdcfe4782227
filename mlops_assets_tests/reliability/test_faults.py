"""Faults the warehouse must survive: SIGKILL inside a write, a full disk, a read-only landing zone, a BI reader.

The whole-graph versions (random kills over every step, two concurrent runs) are in
scripts/reliability_faults.py; these are the fast, fixed cases.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlops_assets.lib import synthetic
from mlops_assets.lib.cleaning import build_clean
from mlops_assets.lib.ingestion import SOURCES, ingest_source
from mlops_assets.lib.warehouse import Warehouse, WarehouseFullError, WarehouseLockedError
from mlops_assets.reliability.faults import table_digests
from mlops_assets_tests.reliability.kill_worker import NOW

ROOT = Path(__file__).resolve().parents[2]


def _worker(
    mode: str, wh: Path, landing: Path, kill_at: tuple[str, int] | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlops_assets_tests.reliability.kill_worker", mode, str(wh), str(landing)]
    if kill_at:
        cmd += [kill_at[0], str(kill_at[1])]
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def _ingest(wh: Warehouse, landing: Path) -> None:
    for source in SOURCES:
        ingest_source(wh, landing, source, now=NOW)


def _clean(wh: Warehouse) -> None:
    tables, _ = build_clean(wh, NOW)
    wh.replace_tables(tables)


def _layer(digests: dict, prefix: str) -> dict:
    return {t: v for t, v in digests.items() if t.startswith(prefix)}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "landing"
    synthetic.generate(path, n_tasks=300, seed=7)
    return path


@pytest.fixture(scope="module")
def reference(landing: Path, tmp_path_factory) -> Path:
    """A warehouse after an ingestion and a cleaning that nothing interrupted."""
    wh = Warehouse(tmp_path_factory.mktemp("reference") / "warehouse.duckdb")
    _ingest(wh, landing)
    _clean(wh)
    return wh.path


@pytest.fixture(scope="module")
def uninterrupted(reference: Path) -> dict:
    return table_digests(reference)


def test_ingestion_killed_mid_batch_resumes_to_the_same_raw_layer(
    landing: Path, uninterrupted: dict, tmp_path: Path
):
    """SIGKILL with the third batch's records inserted but not committed; the re-run stores each record once."""
    wh = tmp_path / "warehouse.duckdb"
    # A tiny batch size: many small transactions, so the kill falls after some committed batches.
    killed = _worker("ingest", wh, landing, ("COMMIT", 3), env={"MLOPS_INGEST_BATCH_MB": "0.001"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    partial = table_digests(wh)
    # the first batches stayed committed, the one being written was rolled back with its manifest rows
    assert 0 < partial["raw.ingested_files"][0] < uninterrupted["raw.ingested_files"][0]
    done = _worker("ingest", wh, landing)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _layer(table_digests(wh), "raw.") == _layer(uninterrupted, "raw.")


def test_cleaning_killed_mid_write_keeps_the_previous_tables_and_converges(
    landing: Path, uninterrupted: dict, tmp_path: Path
):
    """SIGKILL after clean.tasks was replaced inside the transaction and before the other two tables."""
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    _ingest(wh, landing)
    previous = pl.DataFrame({"task_id": ["old-1"], "title": ["from the previous run"]})
    wh.replace_tables({"clean.tasks": previous, "clean.task_events": previous, "clean.quarantine": previous})
    before = _layer(table_digests(wh.path), "clean.")
    killed = _worker("clean", wh.path, landing, ("CREATE OR REPLACE", 2))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert _layer(table_digests(wh.path), "clean.") == before  # all three old, none half-written
    done = _worker("clean", wh.path, landing)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _layer(table_digests(wh.path), "clean.") == _layer(uninterrupted, "clean.")
    assert _layer(table_digests(wh.path), "raw.") == _layer(uninterrupted, "raw.")


def _concurrent_ingestions(wh: Path, landing: Path) -> dict:
    env = {**os.environ, "MLOPS_INGEST_BATCH_MB": "0.001"}  # many small transactions, so the two interleave
    cmd = [
        sys.executable,
        "-m",
        "mlops_assets_tests.reliability.kill_worker",
        "ingest",
        str(wh),
        str(landing),
    ]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
    return table_digests(wh)


def test_two_concurrent_ingestions_store_each_record_once(landing: Path, uninterrupted: dict, tmp_path: Path):
    """Two processes ingest the same landing zone into one warehouse at once: they take turns on the file
    lock and the raw record tables equal one ingestion's (the manifest is the next test).
    """
    got = _concurrent_ingestions(tmp_path / "warehouse.duckdb", landing)
    records = {t for t in uninterrupted if t.startswith("raw.") and t != "raw.ingested_files"}
    assert {t: got[t] for t in records} == {t: uninterrupted[t] for t in records}


def test_two_concurrent_ingestions_record_each_file_once(landing: Path, uninterrupted: dict, tmp_path: Path):
    got = _concurrent_ingestions(tmp_path / "warehouse.duckdb", landing)
    assert got["raw.ingested_files"] == uninterrupted["raw.ingested_files"]


# -- a reader holding the file -------------------------------------------------------------------------

_READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SELECT count(*) FROM clean.t").fetchall()
print("open", flush=True)
time.sleep(float(sys.argv[2]))
"""


@contextmanager
def _bi_reader(path: Path, hold_s: float):
    """Another process (a BI tool) with the warehouse open read-only for `hold_s` seconds."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _READER, str(path), str(hold_s)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_write_waits_for_a_bi_reader_and_fails_clearly_when_it_stays(tmp_path: Path):
    """A read-only connection in another process blocks writers: they wait, then name the cause; nothing changes."""
    path = tmp_path / "warehouse.duckdb"
    Warehouse(path).replace_tables({"clean.t": pl.DataFrame({"x": [1, 2, 3]})})
    new = {"clean.t": pl.DataFrame({"x": [4]})}
    with _bi_reader(path, 60):
        started = time.monotonic()
        with pytest.raises(
            WarehouseLockedError, match="stayed locked by another process for 2s.*stop the other"
        ):
            Warehouse(path, lock_timeout_s=2).replace_tables(new)
        assert time.monotonic() - started >= 2
    assert Warehouse(path).read_table("clean.t")["x"].to_list() == [1, 2, 3]
    with _bi_reader(path, 1.5):  # a reader that closes within the timeout: the write waits and succeeds
        Warehouse(path, lock_timeout_s=30).replace_tables(new)
    assert Warehouse(path).read_table("clean.t")["x"].to_list() == [4]


# -- a full disk, a read-only landing zone ---------------------------------------------------------------


def _mount(args: list[str], target: Path) -> None:
    """Run `mount`, skipping the test with the reason when this machine does not allow it."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a filesystem needs root and mount(8) (CI runs as root on Debian)")
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {done.stderr.strip()}")


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 20 MB tmpfs."""
    target = tmp_path / "tiny"
    target.mkdir()
    _mount(["-t", "tmpfs", "-o", "size=20m", "tmpfs"], target)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_full_disk_fails_naming_the_warehouse_and_the_fix_then_works_once_space_is_freed(tiny_disk: Path):
    path = tiny_disk / "warehouse.duckdb"
    wh = Warehouse(path)
    small = pl.DataFrame({"task_id": [f"t-{i}" for i in range(1000)], "n": np.arange(1000)})
    wh.replace_tables({"clean.tasks": small})
    free = shutil.disk_usage(tiny_disk).free
    (tiny_disk / "filler").write_bytes(b"\0" * (free - 3 * 1024 * 1024))  # leave 3 MB
    rng = np.random.default_rng(0)
    big = pl.DataFrame({"a": rng.random(700_000), "b": rng.integers(0, 1 << 60, 700_000)})  # about 11 MB
    with pytest.raises(WarehouseFullError) as info:
        wh.replace_tables({"features.task_features": small, "clean.tasks": big})
    message = str(info.value)
    assert str(path) in message and "is full" in message and "MLOPS_WAREHOUSE" in message
    assert wh.read_table("clean.tasks").equals(small)  # the previous table stays, whole
    assert not wh.table_exists(
        "features.task_features"
    )  # and the other table of the write is not there alone
    (tiny_disk / "filler").unlink()
    wh.replace_tables({"features.task_features": small, "clean.tasks": big})
    # A new process opens the file (WAL replayed) and reads what the last write committed.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb,sys; c=duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT count(*) FROM clean.tasks').fetchone()[0])",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "700000"


@pytest.fixture
def read_only_landing(landing: Path, tmp_path: Path):
    """The sample landing zone behind a read-only bind mount (root ignores chmod, so chmod would prove nothing)."""
    target = tmp_path / "ro-landing"
    target.mkdir()
    _mount(["--bind", str(landing)], target)
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"a read-only remount is not permitted here: {done.stderr.strip()}")
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_read_only_landing_zone_is_ingested_like_a_writable_one(
    read_only_landing: Path, reference: Path, tmp_path: Path
):
    """Ingestion only reads the landing zone: read-only, it gives the same raw layer and writes nothing there."""
    with pytest.raises(OSError, match="Read-only file system"):
        (read_only_landing / "probe").write_text("x")
    listing = sorted(p.relative_to(read_only_landing) for p in read_only_landing.rglob("*"))
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    _ingest(wh, read_only_landing)
    # source_file names the mount the file was read from; everything else is equal.
    ignore = frozenset({"source_file"})
    assert _layer(table_digests(wh.path, ignore), "raw.") == _layer(table_digests(reference, ignore), "raw.")
    assert sorted(p.relative_to(read_only_landing) for p in read_only_landing.rglob("*")) == listing


def _jira(req):
    from mlops_assets_tests.fake_apis import Reply, jira_server_info

    if req.path == "/rest/api/2/serverInfo":
        return Reply(200, jira_server_info("Server", "http://jira.local"))
    if req.path.endswith("/myself"):
        return Reply(200, {"timeZone": "UTC"})
    issue = {
        "id": "1",
        "key": "RO-1",
        "fields": {
            "summary": "one",
            "created": "2025-03-01T09:00:00.000+0000",
            "updated": "2025-03-01T09:00:00.000+0000",
            "issuetype": {"name": "Task"},
            "priority": {"name": "High"},
            "project": {"key": "RO"},
            "status": {"name": "To Do", "statusCategory": {"key": "new"}},
        },
    }
    return Reply(200, {"startAt": 0, "maxResults": 50, "total": 1, "issues": [issue]})


def test_a_live_pull_into_a_read_only_landing_zone_fails_at_once_naming_the_folder(tmp_path: Path):
    """Was: the step retried (18 s, then 74 s, ...) and ended on a bare OSError; now one attempt, what to fix."""
    import dagster as dg

    from mlops_assets.definitions import build_resources, defs
    from mlops_assets.resources import JiraResource
    from mlops_assets_tests.fake_apis import serve

    (tmp_path / "landing" / "jira").mkdir(parents=True)
    target = tmp_path / "ro-landing"
    target.mkdir()
    _mount(["--bind", str(tmp_path / "landing")], target)
    try:
        if (
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True).returncode
            != 0
        ):
            pytest.skip("a read-only remount is not permitted here")
        with serve(_jira) as url:
            resources = build_resources(str(tmp_path / "wh.duckdb"), str(target))
            resources["jira"] = JiraResource(url=url, user="me", api_token="t")
            started = time.monotonic()
            result = dg.materialize(
                list(defs.assets), selection=["landing/jira"], resources=resources, raise_on_error=False
            )
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "cannot write into the landing folder: Read-only file system" in message
    assert f"MLOPS_LANDING_DIR={target}" in message
    assert time.monotonic() - started < 20


_DECIDER = """
import sys, time
from mlops_assets.lib import gate, registry
from mlops_assets.lib.warehouse import Warehouse
wh, start = Warehouse(sys.argv[1]), float(sys.argv[2])
d = registry.GateDecision(version="1", promoted=True, reason="first champion", champion_version_before=None,
                          candidate_value=0.9, champion_value=None)
time.sleep(max(0.0, start - time.time()))
for i in range(15):
    gate.record_decision(wh, "late_risk", f"run-{i}", d)
"""


def test_two_gates_recording_the_same_decision_at_once_write_one_row(tmp_path: Path):
    """Found by the concurrent full runs: both gates of one candidate wrote its decision row (check, then
    append, in two connections), so models.late_risk_champion showed two promotions of v1.
    """
    wh = tmp_path / "warehouse.duckdb"
    start = time.time() + 3  # both processes have imported by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DECIDER, str(wh), str(start)], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
    rows = Warehouse(wh).query("SELECT run_id, count(*) AS n FROM models.late_risk_champion GROUP BY run_id")
    assert rows.height == 15 and rows["n"].to_list() == [1] * 15


_MIGRATE_AND_DIE = """
import os, signal, sys
import sqlalchemy as sa
from sqlalchemy import event
from mlops_assets.lib import registry
seen = 0
@event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _die(conn, cursor, statement, *args):
    global seen
    if statement.lstrip().upper().startswith(sys.argv[3]):
        seen += 1
        if seen == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
registry.ensure_store(sys.argv[1])
"""

_OPEN = """
import sys
from mlflow import MlflowClient
from mlops_assets.lib import registry
registry.ensure_store(sys.argv[1])
print(len(MlflowClient(tracking_uri=sys.argv[1]).search_experiments()))
"""


def test_a_run_killed_while_it_creates_the_mlflow_store_leaves_a_store_the_next_run_opens(tmp_path: Path):
    """Found by the kill series (a kill in the first training step of a fresh folder): the re-run failed
    with "table trace_metrics already exists" until mlflow.db was deleted.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    # Killed after a migration's tables were created and before alembic_version recorded it.
    killed = subprocess.run(
        [sys.executable, "-c", _MIGRATE_AND_DIE, uri, "30", "UPDATE ALEMBIC_VERSION"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    again = subprocess.run(
        [sys.executable, "-c", _OPEN, uri], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr[-1500:]
    assert again.stdout.strip().splitlines()[-1] == "1"  # the Default experiment: a complete, usable store
