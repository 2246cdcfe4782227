"""The warehouse API behaves the same on a DuckDB file and on a DuckLake (here with a DuckDB-file catalog;
the PostgreSQL catalog and concurrent writers are covered by mlops_assets_tests/cluster/).
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from mlops_assets.lib.warehouse import Warehouse

TASKS = pl.DataFrame(
    {
        "task_id": ["a", "b"],
        "created_at": [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)],
        "labels": [["x"], []],
        "story_points": [3.0, None],
    }
)


def test_replace_append_and_read_round_trip(warehouse):
    assert warehouse.replace_tables({"clean.tasks": TASKS, "features.f": TASKS.select("task_id")}) == {
        "clean.tasks": 2,
        "features.f": 2,
    }
    assert warehouse.read_table("clean.tasks").sort("task_id").equals(TASKS)
    warehouse.append("models.c", pl.DataFrame({"run": ["r1"], "n": [1]}))
    warehouse.append("models.c", pl.DataFrame({"n": [2], "run": ["r2"]}))  # by name, not position
    assert warehouse.query("SELECT run, n FROM models.c ORDER BY n").rows() == [("r1", 1), ("r2", 2)]
    # A history table written by an older version gains a new column; its older rows read NULL.
    warehouse.append("models.c", pl.DataFrame({"run": ["r3"], "n": [3], "seconds": [1.5]}))
    assert warehouse.query("SELECT run, seconds FROM models.c ORDER BY n").rows() == [
        ("r1", None),
        ("r2", None),
        ("r3", 1.5),
    ]
    assert warehouse.table_exists("clean.tasks") and not warehouse.table_exists("clean.nothing")
    # Every layer schema exists after the first connection, as the assets expect.
    with warehouse.connect() as con:
        schemas = {
            r[0]
            for r in con.execute(
                "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database()"
            ).fetchall()
        }
    assert {
        "raw",
        "clean",
        "features",
        "model_input",
        "models",
        "reporting",
        "monitoring",
        "serving",
    } <= schemas


def test_a_failed_replace_leaves_every_old_table(warehouse):
    warehouse.replace_tables({"clean.tasks": TASKS, "clean.task_events": TASKS.select("task_id")})
    broken = pl.DataFrame({"x": [1]})
    with pytest.raises(Exception, match="(?i)schema|catalog|does not exist"):
        warehouse.replace_tables({"clean.task_events": broken, "nowhere.tasks": broken})
    assert warehouse.read_table("clean.task_events").columns == ["task_id"]
    assert warehouse.read_table("clean.tasks").height == 2


def test_timestamps_are_read_in_utc(warehouse):
    warehouse.replace_tables({"clean.tasks": TASKS})
    assert warehouse.query("SELECT strftime(min(created_at), '%H') AS h FROM clean.tasks").item() == "00"


def test_a_missing_file_warehouse_says_what_to_do(tmp_path):
    wh = Warehouse(tmp_path / "none.duckdb")
    assert not wh.table_exists("clean.tasks")
    with (
        pytest.raises(FileNotFoundError, match="materialize the ingestion assets first"),
        wh.connect(read_only=True),
    ):
        pass


def test_a_lake_url_never_shows_its_password():
    wh = Warehouse("ducklake:postgres:dbname=lake host=db user=u password=s3cret")
    assert wh.is_lake and wh.path is None and "s3cret" not in repr(wh)


def test_the_version_stamp_changes_with_every_commit_and_only_then(warehouse):
    """The serving app reloads its history when this changes (a DuckLake has no file to stat)."""
    warehouse.replace_tables({"clean.tasks": TASKS})
    first = warehouse.version_stamp()
    assert first and warehouse.version_stamp() == first  # reading does not change it
    warehouse.query("SELECT count(*) FROM clean.tasks")
    assert warehouse.version_stamp() == first
    warehouse.append("models.c", pl.DataFrame({"run": ["r1"]}))
    assert warehouse.version_stamp() != first


def test_a_warehouse_another_process_is_creating_is_waited_for_not_called_invalid(tmp_path, monkeypatch):
    import threading

    import duckdb

    from mlops_assets.lib import warehouse as warehouse_module

    path = tmp_path / "wh.duckdb"
    path.touch()  # what a second process sees while the first is creating the file: no header yet
    made = tmp_path / "made.duckdb"
    duckdb.connect(str(made)).close()
    timer = threading.Timer(0.4, lambda: made.replace(path))  # ... and a moment later, the whole database
    timer.start()
    try:
        with Warehouse(path).connect() as con:
            assert con.execute("SELECT 42").fetchall() == [(42,)]
    finally:
        timer.join()

    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(b"not a database")  # a file that stays invalid is reported as it is, soon
    monkeypatch.setattr(warehouse_module, "CREATION_WAIT_S", 0.3)
    with pytest.raises(duckdb.IOException, match="not a valid DuckDB database file"):
        with Warehouse(broken).connect():
            pass
