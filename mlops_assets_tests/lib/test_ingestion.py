"""Landing files -> raw layer: content-addressed dedupe, versions, the worker path, odd values."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from mlops_assets.lib import ingestion
from mlops_assets.lib.warehouse import Warehouse


def _issue(key: str, summary: str, comments: int = 0) -> dict:
    return {
        "id": key.split("-")[1],
        "key": key,
        "fields": {
            "summary": summary,
            "created": "2024-03-01T10:00:00.000+0000",
            "updated": "2024-03-02T10:00:00.000+0000",
            "status": {"name": "Open", "statusCategory": {"key": "new"}},
            "project": {"key": key.split("-")[0]},
            "comment": {"total": comments, "comments": []},
        },
    }


def _page(path: Path, issues: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"startAt": 0, "maxResults": 50, "total": len(issues), "issues": issues}))


def _rows(wh: Warehouse, sql: str) -> list[tuple]:
    return list(wh.query(sql).iter_rows())


def test_same_record_in_two_exports_is_stored_once_and_a_changed_one_is_a_new_version(landing_dir, warehouse):
    a, b = _issue("OPS-1", "first"), _issue("OPS-2", "second")
    _page(landing_dir / "jira" / "export-1.json", [a, b])
    # The second export holds OPS-1 unchanged (its keys in another order) and OPS-2 edited.
    reordered = {k: a[k] for k in reversed(list(a))}
    _page(landing_dir / "jira" / "export-2.json", [_issue("OPS-2", "second, edited"), reordered])
    wh = warehouse

    report = ingestion.ingest_source(wh, landing_dir, "jira")

    assert report.records_parsed["tasks"] == 4
    assert report.records_new["tasks"] == 3
    titles = _rows(wh, "SELECT key, title FROM raw.jira_tasks ORDER BY key, title")
    assert titles == [("OPS-1", "first"), ("OPS-2", "second"), ("OPS-2", "second, edited")]
    # OPS-1 is kept from the file that sorts first; each file is credited with what it added.
    assert _rows(wh, "SELECT source_file FROM raw.jira_tasks WHERE key = 'OPS-1'") == [
        (str(landing_dir / "jira" / "export-1.json"),)
    ]
    per_file = dict(_rows(wh, "SELECT source_file, n_new_records FROM raw.ingested_files"))
    assert per_file == {
        str(landing_dir / "jira" / "export-1.json"): 2,
        str(landing_dir / "jira" / "export-2.json"): 1,
    }


def test_a_record_already_in_raw_adds_nothing_when_it_comes_again_in_a_new_file(landing_dir, warehouse):
    _page(landing_dir / "jira" / "export-1.json", [_issue("OPS-1", "first")])
    wh = warehouse
    ingestion.ingest_source(wh, landing_dir, "jira")
    _page(landing_dir / "jira" / "export-2.json", [_issue("OPS-1", "first"), _issue("OPS-3", "third")])

    report = ingestion.ingest_source(wh, landing_dir, "jira")

    assert report.files_skipped == 1 and report.files_ingested == 1
    assert report.records_new["tasks"] == 1
    assert report.table_rows["tasks"] == 2
    assert _rows(wh, "SELECT key FROM raw.jira_tasks ORDER BY key") == [("OPS-1",), ("OPS-3",)]


def test_a_value_of_the_wrong_type_becomes_null_and_the_record_is_kept(landing_dir, warehouse_path):
    odd = _issue("OPS-9", "odd")
    odd["fields"]["comment"]["total"] = "many"  # not a count
    _page(landing_dir / "jira" / "page.json", [_issue("OPS-8", "fine", comments=2), odd])
    wh = Warehouse(warehouse_path)

    ingestion.ingest_source(wh, landing_dir, "jira")

    assert _rows(wh, "SELECT key, n_comments FROM raw.jira_tasks ORDER BY key") == [
        ("OPS-8", 2),
        ("OPS-9", None),
    ]


def test_worker_processes_give_the_same_raw_rows_and_leave_no_spooled_tables(
    landing_dir, tmp_path, monkeypatch
):
    from mlops_assets.lib import synthetic

    synthetic.generate(landing_dir, n_tasks=600, seed=5)
    serial, parallel = Warehouse(tmp_path / "serial.duckdb"), Warehouse(tmp_path / "parallel.duckdb")
    for source in ("github", "jira"):
        ingestion.ingest_source(serial, landing_dir, source)
    spool = tmp_path / "spool"
    monkeypatch.setattr(ingestion, "PARALLEL_MIN_BYTES", 0)

    def spool_dir() -> str:
        spool.mkdir()
        return str(spool)

    monkeypatch.setattr(ingestion, "_spool_dir", spool_dir)
    for source in ("github", "jira"):
        ingestion.ingest_source(parallel, landing_dir, source)
        assert not spool.exists()
    for table in ("raw.github_tasks", "raw.jira_tasks", "raw.jira_events", "raw.jira_comments"):
        query = f"SELECT * EXCLUDE (ingested_at) FROM {table} ORDER BY record_hash"
        assert serial.query(query).equals(parallel.query(query)), table
        assert serial.query(query).height > 0


def test_a_failed_write_leaves_no_spooled_tables_behind(landing_dir, tmp_path, monkeypatch):
    from mlops_assets.lib import synthetic

    synthetic.generate(landing_dir, n_tasks=600, seed=5)
    spool = tmp_path / "spool"
    monkeypatch.setattr(ingestion, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ingestion, "WRITE_BATCH_BYTES", 1)

    def spool_dir() -> str:
        spool.mkdir()
        return str(spool)

    def dying_write(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingestion, "_spool_dir", spool_dir)
    monkeypatch.setattr(ingestion, "_write", dying_write)
    with pytest.raises(RuntimeError, match="disk full"):
        ingestion.ingest_source(Warehouse(tmp_path / "w.duckdb"), landing_dir, "github")
    assert not spool.exists()


def test_with_workers_batches_are_written_in_the_background_in_order_and_a_crash_keeps_only_earlier_ones(
    landing_dir, tmp_path, monkeypatch
):
    """With parse workers a batch's write overlaps the parsing of the next (issue 14): one write at a
    time, in file order; a write that dies stops the ingestion with its error, the batches before it
    committed and none after it; the next run carries on and loses nothing.
    """
    import threading

    from mlops_assets.lib import synthetic

    synthetic.generate(landing_dir, n_tasks=600, seed=5)
    whole = Warehouse(tmp_path / "whole.duckdb")
    ingestion.ingest_source(whole, landing_dir, "jira")
    monkeypatch.setattr(ingestion, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ingestion, "_parse_workers", lambda files: 2)  # also on a one-core machine
    monkeypatch.setattr(ingestion, "WRITE_BATCH_BYTES", 1)  # a transaction per chunk
    monkeypatch.setattr(ingestion, "CHUNK_FILES", 1)
    real_write, calls, in_flight, overlapping = ingestion._write, [], [], []

    def dying_write(*args, **kwargs):
        calls.append(threading.current_thread().name)
        in_flight.append(1)
        overlapping.append(len(in_flight) > 1)
        try:
            if len(calls) == 3:
                raise RuntimeError("killed half-way")
            return real_write(*args, **kwargs)
        finally:
            in_flight.pop()

    batched = Warehouse(tmp_path / "batched.duckdb")
    monkeypatch.setattr(ingestion, "_write", dying_write)
    with pytest.raises(RuntimeError, match="killed half-way"):
        ingestion.ingest_source(batched, landing_dir, "jira")
    assert all(name.startswith("ingest-write") for name in calls)  # off the parsing thread
    assert not any(overlapping)  # never two writes at once
    files = batched.query("SELECT source_file FROM raw.ingested_files")["source_file"]
    in_order = [str(p) for p in ingestion.list_landing_files(landing_dir, "jira")]
    assert len(in_order) > 3
    assert sorted(files) == in_order[:2]  # the two files written before the crash, and no later one
    monkeypatch.setattr(ingestion, "_write", real_write)
    report = ingestion.ingest_source(batched, landing_dir, "jira")
    assert report.files_skipped == 2
    for table in ("raw.jira_tasks", "raw.jira_events", "raw.jira_comments"):
        query = f"SELECT * EXCLUDE (ingested_at) FROM {table} ORDER BY record_hash"
        assert whole.query(query).equals(batched.query(query)), table


def test_parsing_pauses_the_cyclic_collector_only_while_it_runs(landing_dir, warehouse_path):
    _page(landing_dir / "jira" / "page.json", [_issue("OPS-1", "first")])
    assert gc.isenabled()
    ingestion.ingest_source(Warehouse(warehouse_path), landing_dir, "jira")
    assert gc.isenabled()


def test_raw_payloads_are_stored_uncompressed_in_a_duckdb_file(landing_dir, warehouse_path):
    _page(landing_dir / "jira" / "page.json", [_issue(f"OPS-{i}", "same title") for i in range(1, 200)])
    wh = Warehouse(warehouse_path)
    ingestion.ingest_source(wh, landing_dir, "jira")
    with wh.connect() as con:
        con.execute("CHECKPOINT")
        kinds = {
            r[0]
            for r in con.execute(
                "SELECT compression FROM pragma_storage_info('raw.jira_tasks') WHERE column_name = 'payload' AND segment_type = 'VARCHAR'"
            ).fetchall()
        }
    assert kinds == {"Uncompressed"}


def test_the_write_memory_cap_does_not_outlive_the_write(landing_dir, warehouse):
    """A DuckLake warehouse keeps one database instance per process: cleaning in the same run must not
    inherit ingestion's buffer-pool cap.
    """
    before = warehouse.query("SELECT current_setting('memory_limit') AS m")["m"][0]
    _page(landing_dir / "jira" / "export-1.json", [_issue("OPS-1", "first")])

    ingestion.ingest_source(warehouse, landing_dir, "jira")

    assert warehouse.query("SELECT current_setting('memory_limit') AS m")["m"][0] == before


def test_a_batch_being_written_lets_each_slice_go_once_it_is_inserted(monkeypatch):
    """The next batch is collected while one is written: the one in the writer must shrink as it goes in."""
    import pyarrow as pa

    monkeypatch.setattr(ingestion, "INSERT_SLICE_BYTES", 1024 * 1024)
    before = pa.total_allocated_bytes()
    table = pa.concat_tables(  # eight chunks of ~1 MB, as eight parse-worker chunks would be
        pa.table({"payload": [f"{k}-{i}-{'x' * 1000}" for i in range(1000)], "locator": list(range(1000))})
        for k in range(8)
    )
    held = pa.total_allocated_bytes() - before
    assert held > 7_000_000
    slices = ingestion.insert_slices(table)
    del table
    rows, left = 0, []
    for part in slices:
        rows += part.num_rows
        del part
        left.append(pa.total_allocated_bytes() - before)
    assert rows == 8000
    assert len(left) == 8
    # after the k-th slice, at most the chunks not yet inserted (and the one being grouped) are held
    for k, now in enumerate(left, start=1):
        assert now <= held * (8 - k + 1) / 8 + 64 * 1024, (k, now, held)
    assert left[-1] <= held / 8 + 64 * 1024
