"""Typed resources: every asset reaches storage, MLflow and the sources through these."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from mlops_assets.lib.warehouse import Warehouse

DEFAULT_WAREHOUSE = "data/warehouse.duckdb"
DEFAULT_LANDING = "data/landing"
DEFAULT_REPORTS = "data/reports"


def env_or_default(name: str, default: str) -> str | dg.EnvVar:
    """`dg.EnvVar(name)` when the variable is set (the UI then shows where it came from), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (MLOPS_WAREHOUSE, default data/warehouse.duckdb)."""

    path: str = DEFAULT_WAREHOUSE

    def get(self) -> Warehouse:
        return Warehouse(self.path)


class LandingZoneResource(dg.ConfigurableResource):
    """The landing zone where exports and API pulls arrive, one folder per source (MLOPS_LANDING_DIR)."""

    path: str = DEFAULT_LANDING

    def root(self) -> Path:
        return Path(self.path)

    def source_dir(self, source: str) -> Path:
        return Path(self.path) / source


class ReportsResource(dg.ConfigurableResource):
    """Where HTML and PNG reports are written (MLOPS_REPORTS_DIR, default data/reports)."""

    path: str = DEFAULT_REPORTS

    def dir(self, *parts: str) -> Path:
        out = Path(self.path).joinpath(*parts)
        out.mkdir(parents=True, exist_ok=True)
        return out
