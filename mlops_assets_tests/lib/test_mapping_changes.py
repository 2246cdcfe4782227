"""A mapped CSV is its bytes read through its mapping (issue 20 item 5): a changed mapping is a change."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_assets.lib import ingestion
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
    assert sorted(_manifest(wh)) == [("app.csv", "ingested"), ("web.csv", "ingested")]  # was: one duplicate_file
