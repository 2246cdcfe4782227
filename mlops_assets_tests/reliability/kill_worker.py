"""A child process that ingests or cleans a warehouse and SIGKILLs itself at a chosen statement.

    python -m mlops_assets_tests.reliability.kill_worker ingest|clean WAREHOUSE LANDING [SQL_PREFIX N]

With SQL_PREFIX and N, the process kills itself (SIGKILL, no clean-up) just before the N-th statement
starting with SQL_PREFIX that any warehouse connection executes: a fixed point inside a write.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mlops_assets.lib import warehouse as warehouse_module
from mlops_assets.lib.cleaning import build_clean
from mlops_assets.lib.ingestion import SOURCES, ingest_source
from mlops_assets.lib.warehouse import Warehouse

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class _KillingConnection:
    """A DuckDB connection that dies before the N-th statement starting with a prefix."""

    seen = 0

    def __init__(self, con, prefix: str, n: int):
        self._con, self._prefix, self._n = con, prefix, n

    def execute(self, sql: str, *args, **kwargs):
        if sql.lstrip().upper().startswith(self._prefix):
            _KillingConnection.seen += 1
            if _KillingConnection.seen == self._n:
                os.kill(os.getpid(), signal.SIGKILL)
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def arm(prefix: str, n: int) -> None:
    original = Warehouse.connect

    @contextmanager
    def connect(self, read_only: bool = False):
        with original(self, read_only) as con:
            yield con if read_only else _KillingConnection(con, prefix, n)

    warehouse_module.Warehouse.connect = connect


def main(argv: list[str]) -> None:
    mode, wh, landing = argv[:3]
    if len(argv) == 5:
        arm(argv[3].upper(), int(argv[4]))
    warehouse = Warehouse(wh)
    if mode == "ingest":
        for source in SOURCES:
            ingest_source(warehouse, Path(landing), source, now=NOW)
    else:
        tables, _ = build_clean(warehouse, NOW)
        warehouse.replace_tables(tables)


if __name__ == "__main__":
    main(sys.argv[1:])
