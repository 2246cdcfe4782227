"""Landing zone -> raw layer: parse new files with their source's parser, append what is new.

Each source writes ``raw.<source>_<kind>`` tables (one per record kind the source has): the
normalized columns of base.TASK_COLUMNS / EVENT_COLUMNS / COMMENT_COLUMNS, the source record itself
(``payload``), and where it came from (``source_file``, ``file_hash``, ``locator``, ``record_hash``,
``ingested_at``). Tables are append-only. A file already ingested (same content hash) is skipped; a
record already present (same ``record_hash``) adds nothing, so re-ingesting is idempotent, while a
newer export of the same issue (different content) adds a new version that cleaning picks up.
Bookkeeping: ``raw.ingested_files`` (one row per file seen, with its outcome) and ``raw.rejects``
(records or whole files a parser could not use, with a reason; cleaning turns them into quarantine).
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import polars as pl

from mlops_assets.lib.sources.base import KIND_COLUMNS, ParsedFile, SourceFormatError
from mlops_assets.lib.warehouse import Warehouse

# source -> (parser module, file suffixes it reads, record kinds it produces)
SOURCES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "jira": ("jira", (".json", ".csv"), ("tasks", "events", "comments")),
    "github": ("github", (".json",), ("tasks",)),
    "asana": ("asana", (".csv",), ("tasks",)),
    "trello": ("trello", (".json",), ("tasks", "events", "comments")),
    "csv": ("csv_mapped", (".csv",), ("tasks",)),
}

_POLARS_TYPES = {"str": pl.String, "datetime": pl.Datetime("us", "UTC"), "float": pl.Float64, "int": pl.Int64}
META_SCHEMA = {
    "source_file": pl.String,
    "file_hash": pl.String,
    "locator": pl.String,
    "record_hash": pl.String,
    "ingested_at": pl.Datetime("us", "UTC"),
    "payload": pl.String,
}
REJECT_SCHEMA = {
    "source": pl.String,
    "source_file": pl.String,
    "file_hash": pl.String,
    "locator": pl.String,
    "reason": pl.String,
    "record_hash": pl.String,
    "payload": pl.String,
    "ingested_at": pl.Datetime("us", "UTC"),
}
FILES_SCHEMA = {
    "source": pl.String,
    "source_file": pl.String,
    "file_hash": pl.String,
    "size_bytes": pl.Int64,
    "encoding": pl.String,
    "shape": pl.String,
    "status": pl.String,  # ingested | unreadable | duplicate_file
    "n_records": pl.Int64,
    "n_new_records": pl.Int64,
    "n_rejects": pl.Int64,
    "message": pl.String,
    "ingested_at": pl.Datetime("us", "UTC"),
}


class LandingZoneError(RuntimeError):
    """The landing zone is not usable (missing directory); the message says what to do."""


def raw_table(source: str, kind: str) -> str:
    return f"raw.{source}_{kind}"


def kind_schema(kind: str) -> dict[str, pl.DataType]:
    cols = {name: _POLARS_TYPES[t] for name, t in KIND_COLUMNS[kind].items()}
    return {**cols, **META_SCHEMA}


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def list_landing_files(landing_root: Path, source: str) -> list[Path]:
    """Files of one source in the landing zone, sorted; hidden and temporary files are ignored."""
    if not landing_root.exists():
        raise LandingZoneError(
            f"landing directory {landing_root} does not exist: create it, set MLOPS_LANDING_DIR, "
            "or run `mlops-assets generate --out <dir>` for the sample data"
        )
    folder = landing_root / source
    if not folder.is_dir():
        return []
    suffixes = SOURCES[source][1]
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith((".", "~")) and not p.name.endswith(".tmp")
    )


def landing_fingerprint(landing_root: Path) -> dict[str, str]:
    """source -> a fingerprint of its files (path, size, mtime), for sensors to notice changes cheaply."""
    out = {}
    for source in SOURCES:
        try:
            files = list_landing_files(landing_root, source)
        except LandingZoneError:
            return {}
        h = hashlib.sha256()
        for p in files:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        out[source] = h.hexdigest()[:16] if files else ""
    return out


@dataclass
class IngestReport:
    """What one ingestion of one source did."""

    source: str
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped: int = 0  # already ingested (same content)
    files_unreadable: int = 0
    records_parsed: dict[str, int] = field(default_factory=dict)
    records_new: dict[str, int] = field(default_factory=dict)
    table_rows: dict[str, int] = field(default_factory=dict)  # rows in each raw table after the write
    rejects: int = 0
    latin1_files: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _parse(source: str, path: Path) -> ParsedFile:
    module = importlib.import_module(f"mlops_assets.lib.sources.{SOURCES[source][0]}")
    return module.parse(path)


def _frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema, strict=False, infer_schema_length=None)


# Above this many bytes of new files, parsing fans out over worker processes (one per core); below it
# the cost of starting spawned workers (imports, about 1-2 s) and shipping frames back outweighs the gain.
PARALLEL_MIN_BYTES = 256 * 1024 * 1024


def _parse_job(source: str, path_str: str, known: frozenset[str]) -> dict[str, Any]:
    """Parse one file into Arrow IPC frames per kind (runs in a worker process for big inputs)."""
    path = Path(path_str)
    data = path.read_bytes()
    fh = file_hash(data)
    out: dict[str, Any] = {"path": path_str, "file_hash": fh, "size": len(data)}
    if fh in known:
        return {**out, "status": "skipped"}
    try:
        parsed = _parse(source, path)
    except SourceFormatError as exc:
        return {**out, "status": "unreadable", "error": str(exc), "excerpt": data[:2000].decode("utf-8", "replace")}
    del data
    kinds = SOURCES[source][2]
    unexpected = [k for k, v in parsed.records.items() if v and k not in kinds]
    if unexpected:
        raise RuntimeError(f"parser for {source} produced record kinds {unexpected} it does not declare")
    frames = {}
    for kind in kinds:
        rows = parsed.records.get(kind, [])
        for row in rows:
            row["record_hash"] = _record_hash(source, kind, row["payload"])
            row["source_file"] = path_str
            row["file_hash"] = fh
        frames[kind] = _frame(rows, {k: v for k, v in kind_schema(kind).items() if k != "ingested_at"}).write_ipc(None).getvalue()
    return {**out, "status": "ingested", "frames": frames, "encoding": parsed.encoding, "shape": parsed.shape,
            "n_records": parsed.n_records,
            "rejects": [(r.locator, r.reason, r.payload, _record_hash(source, "reject", r.payload)) for r in parsed.rejects]}


def _parse_all(source: str, files: list[Path], known: frozenset[str]):
    """Yield _parse_job results in file order, in parallel when the input is big enough to pay for it."""
    total = sum(p.stat().st_size for p in files)
    workers = min(os.cpu_count() or 1, 4, len(files))
    if total < PARALLEL_MIN_BYTES or workers < 2:
        for p in files:
            yield _parse_job(source, str(p), known)
        return
    # spawn, not fork: the calling process may be a Dagster step with threads (fork could copy a held lock).
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        yield from pool.map(_parse_job, repeat(source), [str(p) for p in files], repeat(known),
                            chunksize=max(1, len(files) // (workers * 8)))


# New files are written in batches of about this many input bytes, one transaction each (a file and
# its manifest row always commit together), so memory stays bounded however large the drop is.
WRITE_BATCH_BYTES = 256 * 1024 * 1024


def ingest_source(warehouse: Warehouse, landing_root: Path, source: str, now: datetime | None = None) -> IngestReport:
    """Parse the source's new landing files and append their records to its raw tables.

    Files commit in batches (``WRITE_BATCH_BYTES``): a run that dies half-way leaves whole files
    ingested and recorded, and the next run skips them and carries on with the rest.
    """
    now = now or datetime.now(UTC)
    kinds = SOURCES[source][2]
    report = IngestReport(source=source, records_parsed=dict.fromkeys(kinds, 0), records_new=dict.fromkeys(kinds, 0))
    files = list_landing_files(landing_root, source)
    report.files_seen = len(files)
    known = frozenset(_known_file_hashes(warehouse, source))
    batch = _Batch(kinds)
    seen_now: set[str] = set()
    for job in _parse_all(source, files, known):
        fh, rel = job["file_hash"], job["path"]
        if job["status"] == "skipped" or fh in seen_now:
            report.files_skipped += 1
            continue
        seen_now.add(fh)
        entry = {"source": source, "source_file": rel, "file_hash": fh, "size_bytes": job["size"], "ingested_at": now}
        batch.bytes += job["size"]
        if job["status"] == "unreadable":
            report.files_unreadable += 1
            report.messages.append(f"{Path(rel).name}: {job['error']}")
            batch.rejects.append({"source": source, "source_file": rel, "file_hash": fh, "locator": "<file>",
                                  "reason": job["error"], "record_hash": None, "payload": job["excerpt"],
                                  "ingested_at": now})
            batch.files.append({**entry, "encoding": None, "shape": None, "status": "unreadable", "n_records": 0,
                                "n_rejects": 1, "message": job["error"]})
        else:
            if job["encoding"] != "utf-8":
                report.latin1_files.append(Path(rel).name)
            for kind, ipc in job["frames"].items():
                batch.parts[kind].append(pl.read_ipc(ipc))
            batch.rejects += [{"source": source, "source_file": rel, "file_hash": fh, "locator": loc, "reason": reason,
                               "record_hash": rh, "payload": payload, "ingested_at": now}
                              for loc, reason, payload, rh in job["rejects"]]
            batch.files.append({**entry, "encoding": job["encoding"], "shape": job["shape"], "status": "ingested",
                                "n_records": job["n_records"], "n_rejects": len(job["rejects"]),
                                "message": "not UTF-8: decoded as Latin-1" if job["encoding"] != "utf-8" else None})
            report.files_ingested += 1
        if batch.bytes >= WRITE_BATCH_BYTES:
            batch.flush(warehouse, source, now, report)
            batch = _Batch(kinds)
    batch.flush(warehouse, source, now, report, always=True)
    return report


class _Batch:
    """Parsed files waiting to be written in one transaction."""

    def __init__(self, kinds: tuple[str, ...]):
        self.parts: dict[str, list[pl.DataFrame]] = {kind: [] for kind in kinds}
        self.rejects: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.bytes = 0

    def flush(self, warehouse: Warehouse, source: str, now: datetime, report: IngestReport, always: bool = False) -> None:
        if not self.files and not always:
            return
        frames = {
            kind: (pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=kind_schema(kind)).drop("ingested_at"))
            .with_columns(pl.lit(now, dtype=pl.Datetime("us", "UTC")).alias("ingested_at"))
            for kind, parts in self.parts.items()
        }
        self.parts = {}
        new, report.table_rows = _write(warehouse, source, frames, _frame(self.rejects, REJECT_SCHEMA), self.files, now)
        for kind, frame in frames.items():
            report.records_parsed[kind] += frame.height
            report.records_new[kind] += new.get(kind, 0)
        report.rejects += len(self.rejects)


def _record_hash(source: str, kind: str, payload: str) -> str:
    return hashlib.sha256(f"{source}|{kind}|{payload}".encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _known_file_hashes(warehouse: Warehouse, source: str) -> set[str]:
    if not warehouse.table_exists("raw.ingested_files"):
        return set()
    frame = warehouse.query("SELECT DISTINCT file_hash FROM raw.ingested_files WHERE source = ?", [source])
    return set(frame["file_hash"].to_list())


def ensure_raw_tables(con, source: str) -> None:
    """Create the source's raw tables (empty, with the full schema) so readers never miss one."""
    for kind in SOURCES[source][2]:
        _create_like(con, raw_table(source, kind), pl.DataFrame(schema=kind_schema(kind)))
    _create_like(con, "raw.rejects", pl.DataFrame(schema=REJECT_SCHEMA))
    _create_like(con, "raw.ingested_files", pl.DataFrame(schema=FILES_SCHEMA))


def _create_like(con, table: str, frame: pl.DataFrame) -> None:
    con.register("_empty", frame.to_arrow())
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM _empty LIMIT 0")
    existing = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    for name, dtype, *_ in con.execute("DESCRIBE _empty").fetchall():
        if name not in existing:  # a newer parser added a column: widen the table, old rows get NULL
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{name}" {dtype}')
    con.unregister("_empty")


def _write(warehouse: Warehouse, source: str, frames: dict[str, pl.DataFrame], rejects: pl.DataFrame,
           file_rows: list[dict[str, Any]], now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    new_counts: dict[str, int] = {}
    totals: dict[str, int] = {}
    with warehouse.connect() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            ensure_raw_tables(con, source)
            for kind, frame in frames.items():
                table = raw_table(source, kind)
                con.register("_incoming", frame.to_arrow())
                before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                con.execute(
                    f"""INSERT INTO {table} BY NAME
                        SELECT * FROM _incoming i
                        WHERE NOT EXISTS (SELECT 1 FROM {table} r WHERE r.record_hash = i.record_hash)
                        QUALIFY row_number() OVER (PARTITION BY i.record_hash ORDER BY i.source_file, i.locator) = 1"""
                )
                totals[kind] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                new_counts[kind] = totals[kind] - before
                con.unregister("_incoming")
            if rejects.height:
                con.register("_rejects", rejects.to_arrow())
                con.execute(
                    """INSERT INTO raw.rejects BY NAME SELECT * FROM _rejects i
                       WHERE i.record_hash IS NULL
                          OR NOT EXISTS (SELECT 1 FROM raw.rejects r WHERE r.record_hash = i.record_hash)"""
                )
                con.unregister("_rejects")
            if file_rows:
                per_file_new = _new_per_file(con, source, frames)
                for row in file_rows:
                    row["n_new_records"] = per_file_new.get(row["file_hash"], 0)
                con.register("_files", _frame(file_rows, FILES_SCHEMA).to_arrow())
                con.execute("INSERT INTO raw.ingested_files BY NAME SELECT * FROM _files")
                con.unregister("_files")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return new_counts, totals


def _new_per_file(con, source: str, frames: dict[str, pl.DataFrame]) -> dict[str, int]:
    hashes = [h for f in frames.values() for h in f["file_hash"].unique().to_list()]
    if not hashes:
        return {}
    parts = " UNION ALL ".join(f"SELECT file_hash FROM {raw_table(source, k)}" for k in frames)
    rows = con.execute(
        f"SELECT file_hash, count(*) FROM ({parts}) WHERE file_hash IN (SELECT unnest(?)) GROUP BY 1", [hashes]
    ).fetchall()
    return dict(rows)
