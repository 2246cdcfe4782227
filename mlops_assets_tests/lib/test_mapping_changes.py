"""A mapped CSV is its bytes read through its mapping (issue 20 item 5, issue 18 item 2): a changed mapping
is a change, of the file and of each of its rows, and the latest reading of a row is the one cleaning uses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops_assets.lib import ingestion
from mlops_assets.lib.cleaning import build_clean
from mlops_assets.lib.warehouse import Warehouse

NOW = datetime(2026, 12, 4, tzinfo=UTC)
CSV = "ID,Created,Title\nL-1,2024-03-01T10:00:00Z,first\nL-2,2024-03-02T10:00:00Z,second\n"


def _manifest(wh: Warehouse) -> list[tuple[str, str]]:
    frame = wh.query("SELECT source_file, status FROM raw.ingested_files ORDER BY ingested_at, source_file")
    return [(path.rsplit("/", 1)[-1], status) for path, status in frame.iter_rows()]


def test_a_fixed_mapping_is_noticed_by_the_sensor_fingerprint_and_re_read(landing_dir, tmp_path):
    folder = landing_dir / "csv"
    folder.mkdir()
    (folder / "lin.csv").write_text(CSV)
    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Creatd\n")  # a typo: the file is unreadable
    wh = Warehouse(tmp_path / "wh.duckdb")
    before = ingestion.landing_fingerprint(landing_dir)["csv"]
    assert ingestion.ingest_source(wh, landing_dir, "csv", now=NOW).files_unreadable == 1

    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\ntitle: Title\n")
    assert ingestion.landing_fingerprint(landing_dir)["csv"] != before  # the sensor sees the fix
    report = ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    assert report.files_ingested == 1 and report.files_skipped == 0
    assert wh.query("SELECT key FROM raw.csv_tasks ORDER BY key")["key"].to_list() == ["L-1", "L-2"]
    assert _manifest(wh) == [("lin.csv", "unreadable"), ("lin.csv", "ingested")]
    # nothing changed: the next run skips the file
    assert ingestion.ingest_source(wh, landing_dir, "csv", now=NOW).files_skipped == 1


def test_the_same_csv_bytes_under_two_mappings_are_both_read_and_recorded(landing_dir, tmp_path):
    folder = landing_dir / "csv"
    folder.mkdir()
    for name, extra in (("web", "project: {value: WEB}\n"), ("app", "project: {value: APP}\n")):
        (folder / f"{name}.csv").write_text(CSV)
        (folder / f"{name}.yaml").write_text("key: ID\ncreated_at: Created\n" + extra)
    wh = Warehouse(tmp_path / "wh.duckdb")
    report = ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    assert report.files_ingested == 2 and report.files_skipped == 0
    assert sorted(_manifest(wh)) == [
        ("app.csv", "ingested"),
        ("web.csv", "ingested"),
    ]  # was: one duplicate_file
    # ... and so are their records: both files' rows are tasks (of WEB and of APP), none lost as a duplicate
    tables, stats = build_clean(wh, NOW)
    assert sorted(tables["clean.tasks"].select("project", "key").iter_rows()) == [
        ("APP", "L-1"),
        ("APP", "L-2"),
        ("WEB", "L-1"),
        ("WEB", "L-2"),
    ]
    assert stats.conserved and stats.quarantined == 0


def _clean_titles(wh: Warehouse, now: datetime) -> tuple[list[tuple[str, str]], object, list[str]]:
    tables, stats = build_clean(wh, now)
    return (
        sorted(tables["clean.tasks"].select("key", "title").iter_rows()),
        stats,
        tables["clean.quarantine"]["reason"].to_list(),
    )


def test_rows_re_read_under_a_fixed_mapping_replace_the_first_reading(landing_dir, tmp_path):
    folder = landing_dir / "csv"
    folder.mkdir()
    (folder / "lin.csv").write_text(CSV)
    (folder / "lin.yaml").write_text(
        "key: ID\ncreated_at: Created\ntitle: ID\n"
    )  # valid, but the wrong column
    wh = Warehouse(tmp_path / "wh.duckdb")
    ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    assert _clean_titles(wh, NOW)[0] == [("L-1", "L-1"), ("L-2", "L-2")]

    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\ntitle: Title\n")
    later = NOW + timedelta(hours=1)
    assert ingestion.ingest_source(wh, landing_dir, "csv", now=later).records_new["tasks"] == 2
    titles, stats, reasons = _clean_titles(wh, later)
    # the rows read through the fixed mapping win; the first reading is superseded, not a "conflicting duplicate"
    assert titles == [("L-1", "first"), ("L-2", "second")]
    assert (stats.input_records, stats.tasks, stats.superseded, stats.quarantined) == (4, 2, 2, 0)
    assert reasons == [] and stats.conserved


def test_a_file_that_a_fixed_mapping_reads_leaves_quarantine(landing_dir, tmp_path):
    folder = landing_dir / "csv"
    folder.mkdir()
    (folder / "lin.csv").write_text(CSV + "L-3,not a date,third\n")
    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Creatd\n")
    wh = Warehouse(tmp_path / "wh.duckdb")
    ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    (folder / "other.csv").write_text(CSV)
    (folder / "other.yaml").write_text("key: ID\ncreated_at: Creatd\n")  # still broken: stays in quarantine
    ingestion.ingest_source(wh, landing_dir, "csv", now=NOW + timedelta(minutes=1))
    before = _clean_titles(wh, NOW)[2]
    assert len(before) == 2 and all("Creatd" in r for r in before)

    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\ntitle: Title\n")
    later = NOW + timedelta(hours=1)
    ingestion.ingest_source(wh, landing_dir, "csv", now=later)
    titles, stats, reasons = _clean_titles(wh, later)
    assert titles == [("L-1", "first"), ("L-2", "second")]
    # the mapping error of lin.csv is gone; its one bad row and other.csv's error remain, each with its reason
    assert (
        len(reasons) == 2
        and sum("Creatd" in r for r in reasons) == 1
        and sum("not a date" in r for r in reasons) == 1
    )


def test_upgrade_every_mapped_csv_is_re_read_once_and_no_task_is_lost_or_doubled(
    landing_dir, tmp_path, monkeypatch
):
    folder = landing_dir / "csv"
    folder.mkdir()
    for name in ("web", "app"):
        (folder / f"{name}.csv").write_text(CSV)
        (folder / f"{name}.yaml").write_text("key: ID\ncreated_at: Created\ntitle: Title\n")
    wh = Warehouse(tmp_path / "wh.duckdb")
    # what an earlier version wrote: record hashes of the row text alone, file hashes of the CSV's bytes
    with monkeypatch.context() as m:
        m.setattr(ingestion, "mapping_salt", lambda mapping: "")
        ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    with wh.connect() as con:
        con.execute("UPDATE raw.ingested_files SET file_hash = 'v1-' || file_hash")
    old_tasks = sorted(build_clean(wh, NOW)[0]["clean.tasks"].select("task_id", "title").iter_rows())
    assert len(old_tasks) == 2  # the bug this fixes: app.csv's rows were dropped as duplicates of web.csv's

    later = NOW + timedelta(hours=1)
    report = ingestion.ingest_source(wh, landing_dir, "csv", now=later)
    assert report.files_ingested == 2 and report.records_new["tasks"] == 4
    tables, stats = build_clean(wh, later)
    assert sorted(tables["clean.tasks"].select("task_id", "title").iter_rows()) == sorted(
        [(f"csv:{n}:L-{i}", t) for n in ("web", "app") for i, t in ((1, "first"), (2, "second"))]
    )
    assert stats.conserved and (stats.input_records, stats.superseded) == (6, 2)
    assert ingestion.ingest_source(wh, landing_dir, "csv", now=later + timedelta(hours=1)).files_skipped == 2


def test_reingest_reads_a_file_again_on_purpose_and_stores_nothing_twice(landing_dir, tmp_path):
    folder = landing_dir / "csv"
    folder.mkdir()
    (folder / "lin.csv").write_text(CSV)
    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\n")
    wh = Warehouse(tmp_path / "wh.duckdb")
    ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    with wh.connect() as con:  # e.g. raw rows lost to a restore from an older backup
        con.execute("DELETE FROM raw.csv_tasks WHERE key = 'L-2'")
    assert ingestion.ingest_source(wh, landing_dir, "csv", now=NOW).files_skipped == 1  # known: not read

    assert ingestion.forget_files(wh, landing_dir, [folder / "lin.csv"], now=NOW + timedelta(hours=1)) == [
        "lin.csv"
    ]
    report = ingestion.ingest_source(wh, landing_dir, "csv", now=NOW + timedelta(hours=2))
    assert (report.files_ingested, report.records_new["tasks"]) == (1, 1)  # L-2 is back, L-1 not doubled
    assert wh.query("SELECT key FROM raw.csv_tasks ORDER BY key")["key"].to_list() == ["L-1", "L-2"]
    assert ingestion.ingest_source(wh, landing_dir, "csv", now=NOW + timedelta(hours=3)).files_skipped == 1

    with pytest.raises(ingestion.LandingZoneError, match="never ingested"):
        ingestion.forget_files(wh, landing_dir, [folder / "other.csv"])
    with pytest.raises(ingestion.LandingZoneError, match="not a file of the landing zone"):
        ingestion.forget_files(wh, landing_dir, [tmp_path / "elsewhere.csv"])


def test_the_reingest_command_marks_a_file_and_names_what_it_could_not(
    landing_dir, tmp_path, monkeypatch, capsys
):
    from mlops_assets.cli import main

    folder = landing_dir / "csv"
    folder.mkdir()
    (folder / "lin.csv").write_text(CSV)
    (folder / "lin.yaml").write_text("key: ID\ncreated_at: Created\n")
    wh = Warehouse(tmp_path / "wh.duckdb")
    ingestion.ingest_source(wh, landing_dir, "csv", now=NOW)
    monkeypatch.setenv("MLOPS_WAREHOUSE", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv("MLOPS_LANDING_DIR", str(landing_dir))
    assert main(["reingest", str(folder / "lin.csv")]) == 0
    assert "marked to be read again: lin.csv" in capsys.readouterr().out
    assert ingestion.ingest_source(wh, landing_dir, "csv").files_ingested == 1
    assert main(["reingest", str(folder / "nope.csv")]) == 2
    assert "never ingested" in capsys.readouterr().err
