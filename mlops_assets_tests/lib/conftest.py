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
