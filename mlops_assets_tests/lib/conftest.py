"""Fixtures of the pure-library tests."""

from __future__ import annotations

import pytest

from mlops_assets.lib.warehouse import Warehouse


@pytest.fixture(params=["file", "ducklake"])
def warehouse(request, tmp_path) -> Warehouse:
    """The same test on both warehouse kinds: a DuckDB file (local profile) and a DuckLake (cluster)."""
    if request.param == "file":
        return Warehouse(tmp_path / "wh.duckdb")
    pytest.importorskip("duckdb_extension_ducklake")
    return Warehouse(f"ducklake:{tmp_path / 'catalog.ducklake'}", data_path=tmp_path / "lake")


def ingest_whole_and_streamed(
    tmp_path, monkeypatch, source: str, name: str, text: str, part_records: int
) -> dict[str, Warehouse]:
    """``text`` landed as ``name`` in ``source``'s folder and ingested twice: parsed whole (tmp_path/whole), then
    streamed in parts of ``part_records`` (tmp_path/streamed, every file counting as big). Each ingestion takes
    the file (none unreadable) and its manifest says how it read it; returns the two warehouses by that name.
    """
    from mlops_assets.lib import ingestion
    from mlops_assets.lib.sources import stream

    out = {}
    for how in ("whole", "streamed"):
        if how == "streamed":
            monkeypatch.setattr(stream, "STREAM_MIN_BYTES", 1)
            monkeypatch.setattr(stream, "PART_RECORDS", part_records)
        folder = tmp_path / how / "landing" / source
        folder.mkdir(parents=True)
        (folder / name).write_text(text, encoding="utf-8")
        wh = Warehouse(tmp_path / how / "wh.duckdb")
        report = ingestion.ingest_source(wh, tmp_path / how / "landing", source)
        assert report.files_ingested == 1 and report.files_unreadable == 0, report.messages
        message = wh.query("SELECT message FROM raw.ingested_files")["message"][0] or ""
        assert message.startswith("streamed") == (how == "streamed")
        out[how] = wh
    return out
