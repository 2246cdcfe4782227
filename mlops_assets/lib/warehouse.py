"""The DuckDB warehouse: one file, one schema per layer, atomic writes, retries on the file lock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

LAYERS = ("raw", "clean", "features", "model_input", "models", "reporting", "monitoring", "serving")


class WarehouseLockedError(RuntimeError):
    """Another process holds the DuckDB file for writing longer than we were willing to wait."""


class Warehouse:
    """A DuckDB file. Connections are short-lived so that several processes can take turns."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with every layer schema present; waits (bounded) while another process writes."""
        if read_only and not self.path.exists():
            raise FileNotFoundError(
                f"warehouse {self.path} does not exist yet: materialize the ingestion assets first "
                "(`make run`), or point MLOPS_WAREHOUSE at an existing file"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:  # "Could not set lock on file": another writer holds it
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    if "lock" in str(exc).lower():
                        raise WarehouseLockedError(
                            f"{self.path} stayed locked by another process for {self.lock_timeout_s:.0f}s; "
                            "stop the other writer (a run, a notebook, a DuckDB shell) and retry"
                        ) from exc
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        try:
            # Dates of timestamps (deadline comparisons) must not depend on the machine's time zone.
            con.execute("SET TimeZone = 'UTC'")
            if not read_only:
                for schema in LAYERS:
                    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run a read query and return a polars DataFrame."""
        with self.connect(read_only=self.path.exists()) as con:
            return con.execute(sql, params or []).pl()

    def table_exists(self, table: str) -> bool:
        if not self.path.exists():
            return False
        schema, name = table.split(".")
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
        return rows[0][0] > 0

    def read_table(self, table: str) -> pl.DataFrame:
        return self.query(f"SELECT * FROM {table}")

    def replace_tables(self, tables: dict[str, pl.DataFrame]) -> dict[str, int]:
        """Replace several tables in one transaction: readers see all old or all new, never a mix."""
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, frame in tables.items():
                    con.register("_incoming", frame.to_arrow())
                    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _incoming")
                    con.unregister("_incoming")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return {table: frame.height for table, frame in tables.items()}

    def append(self, table: str, frame: pl.DataFrame) -> int:
        """Append rows, creating the table from the frame's schema on first use."""
        with self.connect() as con:
            con.register("_incoming", frame.to_arrow())
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _incoming LIMIT 0")
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
            con.unregister("_incoming")
        return frame.height
