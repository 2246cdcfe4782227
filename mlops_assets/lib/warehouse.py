"""The warehouse: one schema per layer, atomic writes; a DuckDB file (local) or a DuckLake (cluster).

``Warehouse("data/warehouse.duckdb")`` is one DuckDB file: one writing process at a time, so
connections are short-lived and wait (bounded) on the file lock.

``Warehouse("ducklake:postgres:dbname=lake host=... user=... password=...", data_path="/shared/lake")``
is a DuckLake: the catalog lives in PostgreSQL, the data as Parquet files under ``data_path`` (a
path every machine mounts). Every process attaches it once (``ATTACH ... AS lake; USE lake``) and
takes a cursor per connection; readers never wait, and writers from any process or machine commit
one at a time (a PostgreSQL advisory lock held for the length of one write connection), so a
read-modify-write such as the raw layer's de-duplicating insert stays correct under concurrent
runs. A commit is all-or-nothing: a writer killed mid-way leaves the previous snapshot in place.

Nothing outside this module knows which of the two it talks to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

LAYERS = ("raw", "clean", "features", "model_input", "models", "reporting", "monitoring", "serving")
LAKE_PREFIX = "ducklake:"
LAKE_ALIAS = "lake"
_T = TypeVar("_T")


def add_missing_columns(
    con: duckdb.DuckDBPyConnection, table: str, relation: str, uncompressed: tuple[str, ...] = ()
) -> None:
    """Give ``table`` every column of ``relation`` (a registered frame) it lacks; its older rows read NULL.

    ``uncompressed``: columns stored without compression (DuckDB files only).
    """
    present = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    for name, dtype, *_ in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall():
        if name not in present:
            using = " USING COMPRESSION uncompressed" if name in uncompressed else ""
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {dtype}{using}')


# Two processes that open a warehouse that does not exist yet race: one creates the file, and for a
# moment the other finds it without its header ("not a valid DuckDB database file"). That file is
# waited for this long; a file that stays invalid is reported as it is. 30 s, not 5: on a loaded CI
# machine the creator can be descheduled between creating the file and writing its headers.
CREATION_WAIT_S = 30.0
_HEADER_BYTES = 3 * 4096  # DuckDB's file header and its two database headers


def _being_created(path: Path, exc: Exception) -> bool:
    """Whether ``exc`` is DuckDB finding ``path`` without a complete header, as while another process creates it:
    the file is shorter than the headers, or was written in the last CREATION_WAIT_S (DuckDB sizes the
    file before it writes the headers: CI saw a full-length file still invalid under load).
    """
    if "not a valid duckdb database file" not in str(exc).lower():
        return False
    try:
        info = path.stat()
    except OSError:
        return True
    return info.st_size < _HEADER_BYTES or time.time() - info.st_mtime < CREATION_WAIT_S


class WarehouseLockedError(RuntimeError):
    """Another process holds the warehouse for writing longer than we were willing to wait."""


class WarehouseFullError(OSError):
    """The warehouse's disk is full: the write was rolled back and the previous tables stay."""


def disk_full_error(path: Path, exc: BaseException) -> WarehouseFullError | None:
    """A WarehouseFullError naming the file and what to do, when `exc` is DuckDB's ENOSPC; else None."""
    if "no space left on device" not in str(exc).lower():
        return None
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free"
    except OSError:
        free = "free space unknown"
    return WarehouseFullError(
        28,
        f"the disk of the warehouse {path} is full ({free}): the write was rolled back and the previous "
        "tables are unchanged; free space there, or point MLOPS_WAREHOUSE at a larger disk, and run again",
    )


class Warehouse:
    """A DuckDB file or a DuckLake. Connections are short-lived so that several processes can take turns."""

    def __init__(self, path: str | Path, lock_timeout_s: float = 120.0, data_path: str | Path | None = None):
        self.location = str(path)
        self.is_lake = self.location.startswith(LAKE_PREFIX)
        # The file of a local warehouse; a DuckLake has none (its catalog is a URL, its data a folder).
        self.path = None if self.is_lake else Path(path)
        self.data_path = str(data_path) if data_path else None
        self.lock_timeout_s = lock_timeout_s

    def __repr__(self) -> str:
        return f"Warehouse({_redact(self.location)!r})"

    def version_stamp(self) -> tuple:
        """Changes whenever a write commits, cheap to ask: the (mtime_ns, size) of the DuckDB file and
        its WAL, or a DuckLake's current snapshot id (its files change on every machine but this one).
        """
        if self.is_lake:
            with self.connect(read_only=True) as con:
                return (
                    "snapshot",
                    int(con.execute(f"SELECT id FROM {LAKE_ALIAS}.current_snapshot()").fetchall()[0][0]),
                )
        stamp: list[int] = []
        for part in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                info = part.stat()
            except FileNotFoundError:
                continue
            stamp += [info.st_mtime_ns, info.st_size]
        return tuple(stamp)

    def exists(self) -> bool:
        """Whether there is anything to read yet (a DuckLake catalog is created on first connection)."""
        return True if self.is_lake else self.path.exists()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection with every layer schema present; waits (bounded) while another process writes."""
        if self.is_lake:
            with self._lake_connect(read_only) as con:
                yield con
            return
        if read_only and not self.path.exists():
            raise FileNotFoundError(
                f"warehouse {self.path} does not exist yet: materialize the ingestion assets first "
                "(`make run`), or point MLOPS_WAREHOUSE at an existing file"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        created_by = time.monotonic() + CREATION_WAIT_S
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:  # "Could not set lock on file": another writer holds it
                if _being_created(self.path, exc) and time.monotonic() < min(deadline, created_by):
                    time.sleep(
                        0.05
                    )  # another process created the file a moment ago and is writing its header
                    continue
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    if (full := disk_full_error(self.path, exc)) is not None:
                        raise full from exc
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
        except duckdb.Error as exc:
            if (full := disk_full_error(self.path, exc)) is not None:
                raise full from exc
            raise
        finally:
            con.close()

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Run a read query and return a polars DataFrame."""
        with self.connect(read_only=self.exists()) as con:
            return con.execute(sql, params or []).pl()

    def table_exists(self, table: str) -> bool:
        if not self.exists():
            return False
        schema, name = table.split(".")
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
        return rows[0][0] > 0

    def read_table(self, table: str) -> pl.DataFrame:
        return self.query(f"SELECT * FROM {table}")

    def replace_tables(self, tables: dict[str, pl.DataFrame]) -> dict[str, int]:
        """Replace several tables in one transaction: readers see all old or all new, never a mix."""

        def write() -> None:
            with self.connect() as con:
                con.execute("BEGIN TRANSACTION")
                try:
                    for table, frame in tables.items():
                        con.register("_incoming", frame.to_arrow())
                        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _incoming")
                        con.unregister("_incoming")
                    con.execute("COMMIT")
                except BaseException:
                    _rollback(con)
                    raise

        self._retry_conflicts(write)
        return {table: frame.height for table, frame in tables.items()}

    def append(self, table: str, frame: pl.DataFrame) -> int:
        """Append rows, creating the table from the frame's schema on first use."""

        def write() -> None:
            with self.connect() as con:
                con.register("_incoming", frame.to_arrow())
                con.execute("BEGIN TRANSACTION")
                try:
                    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _incoming LIMIT 0")
                    add_missing_columns(
                        con, table, "_incoming"
                    )  # a history table written by an older version
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
                    con.execute("COMMIT")
                except BaseException:
                    _rollback(con)
                    raise
                finally:
                    con.unregister("_incoming")

        self._retry_conflicts(write)
        return frame.height

    # -- DuckLake -------------------------------------------------------------------------------

    @contextmanager
    def _lake_connect(self, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
        if (os.getpid(), self.location, self.data_path) not in _LAKES:
            # The first ATTACH of a new catalog creates its metadata tables: two processes doing
            # that at once collide in PostgreSQL, so attaching takes the writer lock too.
            with self._writer_lock(read_only=False):
                _attached_lake(self.location, self.data_path)
        with self._writer_lock(read_only):
            root = _attached_lake(self.location, self.data_path)
            con = root.cursor()
            try:
                con.execute(f"USE {LAKE_ALIAS}")
                con.execute("SET TimeZone = 'UTC'")
                if not read_only:
                    present = {
                        r[0]
                        for r in con.execute(
                            "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = current_database()"
                        ).fetchall()
                    }
                    for schema in LAYERS:
                        if schema not in present:
                            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                yield con
            finally:
                con.close()

    @contextmanager
    def _writer_lock(self, read_only: bool) -> Iterator[None]:
        """One writer at a time across processes and machines, for a DuckLake whose catalog is PostgreSQL."""
        dsn = _postgres_dsn(self.location)
        if read_only or dsn is None:
            yield
            return
        try:
            import psycopg2
        except ImportError:
            raise RuntimeError(
                "a DuckLake warehouse with a PostgreSQL catalog needs psycopg2: pip install -e '.[cluster]'"
            ) from None

        key = int.from_bytes(
            hashlib.sha256(f"mlops_assets.warehouse:{dsn}".encode()).digest()[:8], "big", signed=True
        )
        pg = psycopg2.connect(dsn, connect_timeout=10)
        try:
            pg.autocommit = True
            deadline = time.monotonic() + self.lock_timeout_s
            delay = 0.02
            with pg.cursor() as cur:
                while True:
                    cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                    if cur.fetchone()[0]:
                        break
                    if time.monotonic() > deadline:
                        raise WarehouseLockedError(
                            f"{_redact(self.location)} had another writer for {self.lock_timeout_s:.0f}s: "
                            "find the long-running write (pg_locks, locktype 'advisory') and retry"
                        )
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
            yield
        finally:
            pg.close()  # closing the session releases the advisory lock, also when the process dies

    def _retry_conflicts(self, write: Callable[[], _T]) -> _T:
        """Retry a whole write when DuckLake reports a conflicting commit by a writer outside our lock."""
        attempts = 5 if self.is_lake else 1
        for attempt in range(attempts):
            try:
                return write()
            except duckdb.TransactionException as exc:
                if attempt == attempts - 1 or "conflict" not in str(exc).lower():
                    raise
                time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:  # a failed COMMIT has already ended the transaction
        pass


def _redact(location: str) -> str:
    """The location without its password, for messages."""
    import re

    return re.sub(r"(password\s*=\s*)\S+", r"\1***", location)


def _postgres_dsn(location: str) -> str | None:
    prefix = LAKE_PREFIX + "postgres:"
    return location[len(prefix) :] if location.startswith(prefix) else None


_LAKES: dict[tuple[int, str, str | None], duckdb.DuckDBPyConnection] = {}
_LAKES_LOCK = threading.Lock()


def _attached_lake(location: str, data_path: str | None) -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB with the lake attached (extensions loaded and ATTACH paid once).

    Each cursor's transaction reads the latest snapshot from the catalog, so commits of other
    processes are seen. Keyed by pid: a forked worker builds its own. One attachment serves readers
    and writers (a catalog file cannot be attached twice in one process): a read-only connection
    is one that takes no writer lock and creates nothing.
    """
    key = (os.getpid(), location, data_path)
    with _LAKES_LOCK:
        if key in _LAKES:
            return _LAKES[key]
        con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        try:
            for path in _extension_files(location):
                con.execute(f"LOAD '{path}'")
            options = []
            if data_path:
                Path(data_path).mkdir(parents=True, exist_ok=True)
                options.append(f"DATA_PATH '{_sql_str(str(Path(data_path).resolve()) + os.sep)}'")
            suffix = f" ({', '.join(options)})" if options else ""
            con.execute(f"ATTACH '{_sql_str(location)}' AS {LAKE_ALIAS}{suffix}")
        except BaseException:
            con.close()
            raise
        _LAKES[key] = con
        return con


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _extension_files(location: str) -> list[Path]:
    """The ducklake (and for a PostgreSQL catalog, postgres) extension binaries from their PyPI wheels.

    Nothing is downloaded at run time. The wheels ship ``<name>.duckdb_extension`` files; DuckDB
    derives the entry point from the file name and the postgres extension's is
    ``postgres_scanner``, so that one is loaded through a link under that name.
    """
    needed = ["ducklake"] + (["postgres"] if _postgres_dsn(location) is not None else [])
    files = []
    for name in needed:
        spec = importlib.util.find_spec(f"duckdb_extension_{name}")
        found = (
            sorted(
                Path(spec.submodule_search_locations[0]).rglob(
                    f"v{duckdb.__version__}/{name}.duckdb_extension"
                )
            )
            if spec and spec.submodule_search_locations
            else []
        )
        if not found:
            raise RuntimeError(
                f"the DuckDB {name} extension for duckdb {duckdb.__version__} is not installed: "
                f"pip install -e '.[cluster]' (or duckdb-extension-{name}=={duckdb.__version__}): a DuckLake "
                "warehouse needs it"
            )
        files.append(found[0] if name != "postgres" else _linked_as(found[0], "postgres_scanner"))
    return files


def _linked_as(binary: Path, entry: str) -> Path:
    folder = Path(tempfile.gettempdir()) / f"mlops-duckdb-extensions-{os.getuid()}" / f"v{duckdb.__version__}"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / f"{entry}.duckdb_extension"
    if not (link.is_symlink() and link.resolve() == binary.resolve()):
        tmp = folder / f".{entry}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(binary)
        tmp.replace(link)  # atomic: concurrent workers never see a half-made link
    return link
