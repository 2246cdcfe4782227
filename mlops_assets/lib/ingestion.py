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

import gc
import hashlib
import importlib
import multiprocessing
import os
import shutil
import stat
import sys
import tempfile
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mlops_assets.lib.redact import excerpt, redact
from mlops_assets.lib.settings import env, env_number
from mlops_assets.lib.sources import stream
from mlops_assets.lib.sources.base import KIND_COLUMNS, ParsedFile, SourceFormatError
from mlops_assets.lib.warehouse import Warehouse, add_missing_columns, disk_full_error

# source -> (parser module, file suffixes it reads, record kinds it produces)
SOURCES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "jira": ("jira", (".json", ".csv"), ("tasks", "events", "comments")),
    "github": ("github", (".json",), ("tasks",)),
    "asana": ("asana", (".csv", ".json"), ("tasks",)),
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
    "status": pl.String,  # ingested | unreadable | duplicate_file | forgotten (mlops-assets reingest)
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
    """Files of one source in the landing zone, sorted; hidden and temporary files are ignored, and so
    are links that lead out of the landing zone and anything that is not a regular file.
    """
    return scan_landing(landing_root, source)[0]


# What a source folder's files of another kind are, and what to do instead (a warning in the run's log)
_OTHER_KINDS = {
    ".xlsx": "an Excel workbook: save it as CSV (UTF-8)",
    ".xls": "an Excel workbook: save it as CSV (UTF-8)",
    ".xml": "XML (Jira's XML export?): export CSV (all fields) or pull JSON through the API instead",
    ".zip": "an archive: unpack it into the folder",
    ".gz": "an archive: unpack it into the folder",
}


# Files that belong beside a source's exports and are read with them or not at all (a mapped CSV's mapping)
_COMPANIONS = {"csv": (".md", ".yaml", ".yml")}


def scan_landing(landing_root: Path, source: str) -> tuple[list[Path], list[tuple[str, str]]]:
    """(the files of one source that are read, (name, why not) of those that are not: links out, devices,
    pipes, and files of a kind the source does not read, e.g. a workbook in asana/). Hidden and temporary
    files are left out silently.
    """
    if not landing_root.exists():
        raise LandingZoneError(
            f"landing directory {landing_root} does not exist: create it, set MLOPS_LANDING_DIR, "
            "or run `mlops-assets generate --out <dir>` for the sample data"
        )
    folder = landing_root / source
    if not folder.is_dir():
        return [], []
    suffixes = SOURCES[source][1]
    root = landing_root.resolve()
    files, skipped = [], []
    inside: dict[Path, bool] = {}  # folder -> resolves inside the root (asked once per folder, not per file)
    for p in folder.rglob("*"):
        if p.name.startswith((".", "~")) or p.name.endswith(".tmp"):
            continue
        if p.suffix.lower() not in suffixes:
            if (
                p.is_file()
                and not p.is_symlink()
                and p.suffix.lower() not in _COMPANIONS.get(source, (".md",))
            ):
                kind = _OTHER_KINDS.get(p.suffix.lower(), f"not a {' or '.join(suffixes)} file")
                skipped.append(
                    (p.name, f"not read: {kind}; the {source} folder reads {', '.join(suffixes)} files")
                )
            continue
        if p.parent not in inside:
            inside[p.parent] = p.parent.resolve().is_relative_to(root)
        if inside[p.parent] and _inside_regular_file(p, root):
            files.append(p)
        elif p.is_symlink() or not p.is_dir():
            skipped.append(
                (
                    p.name,
                    "not read: a link that leads out of the landing zone, or not a regular file; copy the file "
                    "itself into the folder",
                )
            )
    return sorted(files), sorted(skipped)


def _inside_regular_file(path: Path, root: Path) -> bool:
    """A regular file that resolves inside the landing root: a link out of it (``/proc/self/environ``,
    a home folder) is never read, nor a device or a pipe.
    """
    try:
        if not path.is_symlink():  # its folder resolves inside the root: only a link can lead elsewhere
            return stat.S_ISREG(path.stat().st_mode)
        target = path.resolve(strict=True)
        return target.is_relative_to(root) and stat.S_ISREG(target.stat().st_mode)
    except (OSError, RuntimeError):  # a dangling link or a loop
        return False


def landing_fingerprint(landing_root: Path) -> dict[str, str]:
    """Source -> a fingerprint of its files (path, size, mtime; a mapped CSV's mapping too), for sensors."""
    from mlops_assets.lib.sources import csv_mapped

    out = {}
    for source in SOURCES:
        try:
            files = list_landing_files(landing_root, source)
        except LandingZoneError:
            return {}
        h = hashlib.sha256()
        for p in files:
            # a mapped CSV is read through its <name>.yaml: a changed mapping is a change of the source
            for q in [p, *(csv_mapped.mapping_files(p) if source == "csv" else [])]:
                st = q.stat()
                h.update(f"{q}|{st.st_size}|{st.st_mtime_ns}\n".encode())
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
    # every file in the landing zone that cannot be read, found now or by an earlier run (its content
    # is then skipped as known): (file name, why). Not empty = the source needs a fix (a blocking check).
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def _parse(source: str, path: Path) -> ParsedFile:
    return _parser(source).parse(path)


def _frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(rows, schema=schema, strict=False, infer_schema_length=None)


_ARROW_TYPES = {
    "str": pa.large_string(),
    "datetime": pa.timestamp("us", tz="UTC"),
    "float": pa.float64(),
    "int": pa.int64(),
}


def _arrow_column(values: list[Any], dtype: str) -> pa.Array:
    try:
        return pa.array(values, type=_ARROW_TYPES[dtype])
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        # An odd value (a number as text, a bool among ints): coerced the lenient polars way, else null.
        return (
            pl.Series(values, dtype=_POLARS_TYPES[dtype], strict=False).to_arrow().cast(_ARROW_TYPES[dtype])
        )


def _row_schema(kind: str) -> pa.Schema:
    """The Arrow schema of what a parser fills: the normalized columns, locator and payload."""
    fields = [(name, _ARROW_TYPES[t]) for name, t in KIND_COLUMNS[kind].items()]
    return pa.schema([*fields, ("locator", pa.large_string()), ("payload", pa.large_string())])


def _arrow_table(
    rows: list[dict[str, Any]], source: str, kind: str, path_str: str | None, fh: str | None
) -> pa.Table:
    """A parser's row dicts -> an Arrow table in the raw layout (Arrow reads the dicts; no per-row Python).

    ``path_str``/``fh`` None: the rows carry their own ``source_file`` and ``file_hash`` (a chunk of files).
    """
    schema = _row_schema(kind)
    try:
        table = pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # an odd value somewhere: column by column
        types = {**KIND_COLUMNS[kind], "locator": "str", "payload": "str"}
        table = pa.table(
            {name: _arrow_column([r.get(name) for r in rows], types[name]) for name in schema.names}
        )
    n = len(rows)
    prefix = f"{source}|{kind}|"
    text = pa.large_string()
    files = [path_str] * n if path_str is not None else [r["source_file"] for r in rows]
    hashes = [fh] * n if fh is not None else [r["file_hash"] for r in rows]
    return (
        table.append_column(pa.field("source_file", text), pa.array(files, type=text))
        .append_column(pa.field("file_hash", text), pa.array(hashes, type=text))
        .append_column(
            pa.field("record_hash", text),
            pa.array([_sha(prefix + r.get("_salt", "") + r["payload"]) for r in rows], type=text),
        )
    )


def mapping_salt(mapping: bytes) -> str:
    """What a mapped CSV's record hashes carry of the mapping (and file name) that read them; the
    other sources have no mapping and keep the hashes they always had.
    """
    return f"mapping:{hashlib.sha256(mapping).hexdigest()[:16]}|"


def _empty_table(kind: str) -> pa.Table:
    text = pa.large_string()
    return pa.schema(
        [*_row_schema(kind), ("source_file", text), ("file_hash", text), ("record_hash", text)]
    ).empty_table()


def _spool(table: pa.Table, folder: str, kind: str) -> str:
    """Write a worker's table to an Arrow file for the writer to map: no copying through a pipe."""
    path = os.path.join(folder, f"{os.getpid()}-{uuid.uuid4().hex}-{kind}.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return path


def _unspool(path: str) -> pa.Table:
    """A spooled table, memory-mapped (zero-copy); the file is unlinked at once, the mapping lives on."""
    try:
        with pa.memory_map(path) as source:
            return pa.ipc.open_file(source).read_all()
    finally:
        os.unlink(path)


def _spool_dir() -> str:
    """Where workers leave their tables: shared memory when there is room, else the temp folder."""
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * (WRITE_BATCH_BYTES + PARSE_AHEAD_BYTES):
            return tempfile.mkdtemp(prefix="mlops-ingest-", dir=shm)
    except OSError:
        pass
    return tempfile.mkdtemp(prefix="mlops-ingest-")


# Above this many bytes of new files, parsing fans out over worker processes (one per core); below it
# the cost of starting spawned workers (imports, about 0.5 s) and shipping frames back outweighs the gain.
# Measured on 2 cores (2026-12-05, synthetic pages, the raw assets alone, in process vs workers): Jira
# 24 MB 0.7 vs 1.1 s, 232 MB 6.3 vs 4.5 s; GitHub 11 MB 0.3 vs 0.8 s, 109 MB 2.4 vs 1.9 s alone but
# 2.3 vs 2.8-3.1 s inside the whole 100k graph (`mlops-assets bench --tasks 100000`). 256 MB before:
# the 100k graph's 232 MB of Jira pages parsed in the step's own process while a core idled.
PARALLEL_MIN_BYTES = 128 * 1024 * 1024


def _parse_job(source: str, path_str: str, known: frozenset[str]) -> dict[str, Any]:
    """Parse one file: its parser's row dicts per kind (``frames``), each tagged with the file and its
    content hash, for _parse_chunk to build one table for many files.
    """
    path = Path(path_str)
    suffix, salt = _mapping_of(source, path)
    if _streamable(source, path):
        fh, size = _file_hash_streamed(path, suffix)
        out = {"path": path_str, "file_hash": fh, "size": size, "salt": salt}
        return {**out, "status": "skipped" if fh in known else "stream"}
    data = path.read_bytes()
    fh = file_hash(data + suffix) if suffix else file_hash(data)
    out: dict[str, Any] = {"path": path_str, "file_hash": fh, "size": len(data)}
    if fh in known:
        return {**out, "status": "skipped"}
    # Parsing allocates millions of dicts and lists without reference cycles; the cyclic collector would
    # walk them over and over as they pile up (5x the JSON decoding time on a 400 MB Trello board).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        try:
            parsed = _parse(source, path)
        except SourceFormatError as exc:
            return {**out, "status": "unreadable", "error": redact(str(exc)), "excerpt": excerpt(data)}
        except RecursionError:
            return {
                **out,
                "status": "unreadable",
                "excerpt": excerpt(data),
                "error": f"{path.name}: nested too deeply to read (more than {sys.getrecursionlimit()} levels); "
                "this is not an export the tool writes: check how the file was made",
            }
        except Exception as exc:  # noqa: BLE001 - one file's parser crash must not take its source down
            return {
                **out,
                "status": "unreadable",
                "excerpt": excerpt(data),
                "error": redact(
                    f"{path.name}: the {source} parser could not read this file "
                    f"({type(exc).__name__}: {str(exc)[:300]}); the other files were ingested. "
                    "Check that the file is the export it claims to be, fix or remove it, and re-run"
                ),
            }
        del data
        kinds = SOURCES[source][2]
        unexpected = [k for k, v in parsed.records.items() if v and k not in kinds]
        if unexpected:
            raise RuntimeError(f"parser for {source} produced record kinds {unexpected} it does not declare")
        n_records = parsed.n_records
        frames = {}
        for kind in kinds:
            rows = parsed.records.get(kind)
            if rows:
                for row in rows:
                    row["source_file"], row["file_hash"] = path_str, fh
                    if salt:
                        row["_salt"] = salt
                frames[kind] = rows
    finally:
        if gc_was_enabled:
            gc.enable()
    return {
        **out,
        "status": "ingested",
        "frames": frames,
        "encoding": parsed.encoding,
        "shape": parsed.shape,
        "n_records": n_records,
        "rejects": [
            (r.locator, redact(r.reason), redact(r.payload), _record_hash(source, "reject", r.payload))
            for r in parsed.rejects
        ],
    }


def _mapping_of(source: str, path: Path) -> tuple[bytes, str]:
    """(what a file's content hash adds to its bytes, what its record hashes are salted with): a mapped
    CSV's mapping; nothing for the other sources. The same whether the file is parsed whole or streamed.
    """
    if source != "csv":
        return b"", ""
    from mlops_assets.lib.sources.csv_mapped import mapping_bytes

    # a mapped CSV's content is its bytes read through its mapping: a fixed mapping is re-read, and
    # the same bytes under two mappings are two inputs, not a silent duplicate; the file's name too:
    # it is the default source_name, part of every task_id (csv:<name>:<key>)
    mapping = mapping_bytes(path) + b"\0name\0" + path.stem.encode("utf-8", "surrogateescape")
    # and so is each of its records: a row read through another mapping is another record (the
    # reading cleaning then prefers is the later one), not a duplicate of the first reading
    return b"\0mapping\0" + mapping, mapping_salt(mapping)


def _streamable(source: str, path: Path) -> bool:
    """A file big enough to stream, of a source whose parser can (lib/sources/stream.py): JSON, or the
    suffixes its parser names in ``STREAM_SUFFIXES`` (a mapped CSV).
    """
    try:
        big = path.stat().st_size >= stream.STREAM_MIN_BYTES
    except OSError:
        return False
    parser = _parser(source)
    if (
        not big
        or path.suffix.lower() not in getattr(parser, "STREAM_SUFFIXES", (".json",))
        or not hasattr(parser, "parse_stream")
    ):
        return False
    try:  # the parser looks at the file's start only: a generator it returns has not read anything yet
        return _parser(source).parse_stream(path) is not None
    except Exception:  # noqa: BLE001 - whatever it is, the whole-file parse will say what is wrong
        return False


def _parser(source: str):
    return importlib.import_module(f"mlops_assets.lib.sources.{SOURCES[source][0]}")


def _file_hash_streamed(path: Path, suffix: bytes = b"") -> tuple[str, int]:
    """The same content hash as file_hash(path.read_bytes() + suffix), read 8 MB at a time; the file's size."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(8 * 1024 * 1024):
            h.update(block)
            size += len(block)
    h.update(suffix)
    return h.hexdigest()[:32], size


def _parse_workers(files: list[Path]) -> int:
    """How many worker processes parse these files: 0 (in this process) unless the input is big enough to pay."""
    workers = min(os.cpu_count() or 1, 4, len(files))
    if workers < 2 or sum(p.stat().st_size for p in files) < PARALLEL_MIN_BYTES:
        return 0
    return workers


def _parse_all(source: str, files: list[Path], known: frozenset[str], workers: int = 0):
    """Yield _parse_job results in file order, from ``workers`` processes (0: in this one)."""
    if not workers:
        for chunk, _ in _chunks(files):
            yield from _chunk_jobs(_parse_chunk(source, chunk, known))
        return
    # spawn, not fork: the calling process may be a Dagster step with threads (fork could copy a held lock).
    ctx = multiprocessing.get_context("spawn")
    spool = _spool_dir()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        # Workers run ahead of the writer by at most PARSE_AHEAD_BYTES of files, so parsed tables
        # never pile up in memory while a batch is being written.
        pending: deque = deque()
        ahead = 0
        try:
            for chunk, size in _chunks(files):
                pending.append((pool.submit(_parse_chunk, source, chunk, known, spool), size))
                ahead += size
                while ahead >= PARSE_AHEAD_BYTES or len(pending) >= 256:
                    future, done = pending.popleft()
                    ahead -= done
                    yield from _chunk_jobs(future.result())
            while pending:
                yield from _chunk_jobs(pending.popleft()[0].result())
        finally:
            for future, _ in pending:
                future.cancel()
            pool.shutdown(wait=True)
            shutil.rmtree(spool, ignore_errors=True)  # tables of jobs never consumed (a failed run)


# Files are parsed in chunks of up to this many bytes or files (by a worker, or in this process) and
# give one table per record kind for the whole chunk: per file, the round trip (a future, three spooled Arrow files, a
# pickled result) cost as much as the parse itself for 15-50 KB issue files, and two workers were no
# faster than one process on 11,000 of them.
CHUNK_BYTES = 8 * 1024 * 1024
CHUNK_FILES = 512


def _chunks(files: list[Path]) -> Iterator[tuple[list[str], int]]:
    """Consecutive groups of files (paths, total bytes) of at most CHUNK_BYTES / CHUNK_FILES each."""
    chunk: list[str] = []
    size = 0
    for p in files:
        n = p.stat().st_size
        if chunk and (size + n > CHUNK_BYTES or len(chunk) >= CHUNK_FILES):
            yield chunk, size
            chunk, size = [], 0
        chunk.append(str(p))
        size += n
    if chunk:
        yield chunk, size


def _parse_chunk(
    source: str, paths: list[str], known: frozenset[str], spool: str | None = None
) -> tuple[list[dict], dict[str, Any]]:
    """Parse each file, and build one table per kind for all of them (spooled when in a worker).

    Arrow builds a table from row dicts at a fixed cost per call: once per 8 MB chunk rather than
    once per 15 KB file took that cost from a third of the parse to nothing.
    """
    jobs, rows = [], {}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the chunk's row dicts pile up without cycles (see _parse_job)
    try:
        for path in paths:
            job = _parse_job(source, path, known)
            for kind, part in job.pop("frames", {}).items():
                rows.setdefault(kind, []).extend(part)
            jobs.append(job)
        frames = {}
        for kind in list(rows):
            table = _arrow_table(rows.pop(kind), source, kind, None, None)
            frames[kind] = _spool(table, spool, kind) if spool else table
    finally:
        if gc_was_enabled:
            gc.enable()
    return jobs, frames


def _chunk_jobs(result: tuple[list[dict], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """A chunk's file jobs, then its records (status ``records``): a batch is cut only after the latter."""
    jobs, frames = result
    yield from jobs
    yield {"status": "records", "frames": frames}


# New files are written in batches of about this many input bytes, one transaction each (a file and
# its manifest row always commit together), so memory stays bounded however large the drop is. The
# batch's Arrow tables are about its input size, so this is what a batch holds in memory outside
# DuckDB. Smaller batches cost time: every commit closes the database, and DuckDB's checkpoint then
# costs more the bigger the tables already are. Measured on 1M synthetic tasks' Jira pages (2.3 GB,
# same machine and load): 256 MB batches 78 s (commits 43 s of it), 512 MB 65 s, 1 GB 63-66 s with
# twice the memory (4.2 GB against 2.0 GB for 256 MB).
WRITE_BATCH_BYTES = 512 * 1024 * 1024
# DuckDB's buffer pool while a batch is written (its default, 80% of RAM, let the writer hold 4.8 GB
# at 1M tasks); DuckDB spills to its temp directory beyond it, and inserts go in bounded slices
# (insert_slices), so a batch never needs more than this. 768 MB rather than 1 GB: on 100k
# real-shaped tasks (2026-12-04, quiet) the process-tree peak was 2,848 MB against 3,132 MB, and the
# Jira step no slower (48 s against 55 s); 384 MB batches instead gave 2,793 MB but 58 s.
WRITE_MEMORY_LIMIT = "768MB"
# How far (in input bytes) parse workers may run ahead of the writer. Parsed chunks wait in the spool
# (files in /dev/shm count as memory) until the writer takes them; when the writer is the slower side,
# as it is once the raw tables are large, the queue stays full, so this is memory the peak carries.
# Measured on real-shaped Jira single-issue files (333,025 files, 5.5 GB; 2 cores, 2026-12-04): 512 MB
# ahead let the spool hold 696 MB at the peak (3,599 MB in all); 128 MB held 198 MB (3,166 MB), and
# the 100k run took 161 s against 148 s (the workers idle a little more while a batch commits).
PARSE_AHEAD_BYTES = 128 * 1024 * 1024
MEMORY_LIMIT_ENV = "MLOPS_INGEST_MEMORY_LIMIT"
BATCH_MB_ENV = "MLOPS_INGEST_BATCH_MB"


def write_memory_limit() -> str:
    """DuckDB's memory limit while ingestion writes: MLOPS_INGEST_MEMORY_LIMIT (e.g. '2GB') or the default."""
    return env(MEMORY_LIMIT_ENV).replace("'", "") or WRITE_MEMORY_LIMIT


def write_batch_bytes() -> int:
    """Input bytes per write transaction: MLOPS_INGEST_BATCH_MB or the default."""
    return int(env_number(BATCH_MB_ENV, WRITE_BATCH_BYTES / (1024 * 1024)) * 1024 * 1024)


def ingest_source(
    warehouse: Warehouse, landing_root: Path, source: str, now: datetime | None = None
) -> IngestReport:
    """Parse the source's new landing files and append their records to its raw tables.

    Files commit in batches (``WRITE_BATCH_BYTES``): a run that dies half-way leaves whole files
    ingested and recorded, and the next run skips them and carries on with the rest.
    """
    now = now or datetime.now(UTC)
    kinds = SOURCES[source][2]
    report = IngestReport(
        source=source, records_parsed=dict.fromkeys(kinds, 0), records_new=dict.fromkeys(kinds, 0)
    )
    files, skipped = scan_landing(landing_root, source)
    report.files_seen = len(files)
    for name, why in skipped:
        report.messages.append(f"{name}: {why}")
    first_file, recorded, unreadable = _known_files(warehouse, source)
    known = frozenset(first_file)
    workers = _parse_workers(files)
    batch_bytes = write_batch_bytes()
    batch = _Batch(kinds, single_thread=workers > 0)
    streamed: list[dict[str, Any]] = []
    with _Flusher(background=workers > 0) as flusher:
        for job in _parse_all(source, files, known, workers):
            if not _take_job(job, batch, report, first_file, recorded, unreadable, streamed, source, now):
                continue
            if batch.bytes >= batch_bytes:  # only here: a chunk's files and records commit together
                flusher.flush(batch, warehouse, source, now, report)
                batch = _Batch(kinds, single_thread=workers > 0)
        flusher.flush(batch, warehouse, source, now, report, always=True)
    for job in streamed:
        _ingest_streamed(warehouse, source, job, now, report)
    return report


def _take_job(
    job: dict[str, Any],
    batch: _Batch,
    report: IngestReport,
    first_file: dict[str, str],
    recorded: set[str],
    unreadable: dict[str, str],
    streamed: list[dict[str, Any]],
    source: str,
    now: datetime,
) -> bool:
    """Add one result of _parse_all to the batch; True when it was a chunk's records (a batch may end there)."""
    if job["status"] == "records":  # a worker's chunk: the records of the file jobs just before
        for kind, table in job["frames"].items():
            batch.parts[kind].append(table if isinstance(table, pa.Table) else _unspool(table))
        return True
    fh, rel = job["file_hash"], job["path"]
    if job["status"] == "skipped" or fh in first_file:
        report.files_skipped += 1
        if fh in unreadable:
            report.unreadable.append((Path(rel).name, unreadable[fh]))
        if rel not in recorded:  # a copy under another name: recorded once, so every file is accounted for
            recorded.add(rel)
            batch.files.append(
                _manifest_entry(
                    source,
                    job,
                    now,
                    "duplicate_file",
                    f"same content as {Path(first_file[fh]).name}: nothing new in it",
                )
            )
        return False
    first_file[fh] = rel
    recorded.add(rel)
    if job["status"] == "stream":  # written on its own after the batches, in its own transaction
        streamed.append(job)
        return False
    batch.bytes += job["size"]
    if job["status"] == "unreadable":
        report.files_unreadable += 1
        report.messages.append(f"{Path(rel).name}: {job['error']}")
        report.unreadable.append((Path(rel).name, job["error"]))
        unreadable[fh] = job["error"]
        batch.rejects.append(_reject_row(source, job, now, "<file>", job["error"], job["excerpt"]))
        batch.files.append(_manifest_entry(source, job, now, "unreadable", job["error"], n_rejects=1))
    else:
        if job["encoding"] != "utf-8":
            report.latin1_files.append(Path(rel).name)
        batch.rejects += [
            _reject_row(source, job, now, loc, reason, payload, rh)
            for loc, reason, payload, rh in job["rejects"]
        ]
        batch.files.append(
            _manifest_entry(
                source,
                job,
                now,
                "ingested",
                f"not UTF-8: decoded as {job['encoding']}" if job["encoding"] != "utf-8" else None,
                n_records=job["n_records"],
                n_rejects=len(job["rejects"]),
                encoding=job["encoding"],
                shape=job["shape"],
            )
        )
        report.files_ingested += 1
    return False


def _manifest_entry(
    source: str,
    job: dict[str, Any],
    now: datetime,
    status: str,
    message: str | None,
    *,
    n_records: int = 0,
    n_rejects: int = 0,
    encoding: str | None = None,
    shape: str | None = None,
) -> dict[str, Any]:
    """A file's raw.ingested_files row."""
    return {
        "source": source,
        "source_file": job["path"],
        "file_hash": job["file_hash"],
        "size_bytes": job["size"],
        "ingested_at": now,
        "encoding": encoding,
        "shape": shape,
        "status": status,
        "n_records": n_records,
        "n_rejects": n_rejects,
        "message": message,
    }


def _reject_row(
    source: str,
    job: dict[str, Any],
    now: datetime,
    locator: str,
    reason: str,
    payload: str,
    record_hash: str | None = None,
) -> dict[str, Any]:
    """A raw.rejects row (REJECT_SCHEMA) of the file of `job`."""
    return {
        "source": source,
        "source_file": job["path"],
        "file_hash": job["file_hash"],
        "locator": locator,
        "reason": reason,
        "record_hash": record_hash,
        "payload": payload,
        "ingested_at": now,
    }


class _Flusher:
    """Writes batches in order, at most one at a time; in the background when parse workers run.

    With workers, a batch's write (DuckDB on one thread, which releases the GIL) overlaps the parsing
    and collecting of the next batch: before, the workers stopped PARSE_AHEAD_BYTES ahead while this
    process wrote. The batch in the writer lets each slice go once it is inserted (_Writer.add), so
    the two batches together hold about one batch's bytes, not two: on 100k real-shaped tasks
    (111,009 Jira files, 1.65 GB; 2 cores, 2026-12-05) the process-tree peak of the Jira step was
    3,202-3,294 MB with whole batches held through the write, 2,468-2,484 MB letting slices go, and
    3,123-3,151 MB for the code before the writer thread. Still one transaction per batch, committed
    in file order: the next write starts only after the previous one committed, and a failed write stops the ingestion with its own error (at
    the next flush or on leaving), batches written before it kept, none after it started.
    """

    def __init__(self, background: bool):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ingest-write") if background else None
        self._pending: Future | None = None

    def flush(self, batch: _Batch, *args: Any, **kwargs: Any) -> None:
        self.wait()
        if self._pool is None:
            batch.flush(*args, **kwargs)
        else:
            self._pending = self._pool.submit(batch.flush, *args, **kwargs)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _Flusher:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc is None:
                self.wait()
            elif (
                self._pending is not None
            ):  # the write in flight ends (commits or rolls back) before we leave
                self._pending.exception()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


class _Batch:
    """Parsed files waiting to be written in one transaction."""

    def __init__(self, kinds: tuple[str, ...], single_thread: bool = False):
        self.single_thread = single_thread
        self.parts: dict[str, list[pa.Table]] = {kind: [] for kind in kinds}
        self.rejects: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.bytes = 0

    def flush(
        self, warehouse: Warehouse, source: str, now: datetime, report: IngestReport, always: bool = False
    ) -> None:
        if not self.files and not always:
            return
        frames = {}
        for kind in list(self.parts):
            parts = self.parts.pop(kind)  # the batch keeps no reference: the writer frees as it goes
            frames[kind] = _with_time(pa.concat_tables(parts) if parts else _empty_table(kind), now)
            del parts
        parsed = {kind: frame.num_rows for kind, frame in frames.items()}
        new, report.table_rows = _write(
            warehouse,
            source,
            frames,
            _frame(self.rejects, REJECT_SCHEMA),
            self.files,
            now,
            single_thread=self.single_thread,
        )
        for kind, rows in parsed.items():
            report.records_parsed[kind] += rows
            report.records_new[kind] += new.get(kind, 0)
        report.rejects += len(self.rejects)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _record_hash(source: str, kind: str, payload: str) -> str:
    return _sha(f"{source}|{kind}|{payload}")


def _known_files(warehouse: Warehouse, source: str) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """(content hash -> the first file ingested with it, every file path already in the manifest,
    content hash -> why it could not be read, for contents found unreadable).
    """
    if not warehouse.table_exists("raw.ingested_files"):
        return {}, set(), {}
    frame = warehouse.query(
        """SELECT file_hash, source_file, status, message FROM raw.ingested_files WHERE source = ?
           ORDER BY ingested_at, source_file""",
        [source],
    )
    first: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for fh, path, status, message in frame.iter_rows():
        if status == FORGOTTEN:  # `mlops-assets reingest`: read this content again
            if first.get(fh) is not None:
                del first[fh]
            unreadable.pop(fh, None)
            continue
        if status != "duplicate_file" and fh not in first:
            first[fh] = path
            if status == "unreadable":
                unreadable[fh] = message or "could not be read"
    return first, set(frame["source_file"].to_list()), unreadable


FORGOTTEN = "forgotten"


def forget_files(
    warehouse: Warehouse, landing_root: Path, paths: list[Path], now: datetime | None = None
) -> list[str]:
    """Mark landing files to be read again by the next ingestion (``mlops-assets reingest``); the file names marked.

    Every content the manifest recorded for each path gets a ``forgotten`` row (raw stays append-only:
    records read again that are already stored are not stored twice). A path outside the landing zone,
    or one the manifest never recorded, raises LandingZoneError naming it.
    """
    now = now or datetime.now(UTC)
    root = landing_root.resolve()
    wanted: dict[str, str] = {}
    for path in paths:
        full = path.resolve()
        if (
            not full.is_relative_to(root)
            or len(full.relative_to(root).parts) < 2
            or full.relative_to(root).parts[0] not in SOURCES
        ):
            raise LandingZoneError(
                f"{path} is not a file of the landing zone {landing_root} "
                f"(<landing>/<source>/..., source one of {', '.join(SOURCES)})"
            )
        wanted[str(full)] = full.relative_to(root).parts[0]
    if not warehouse.table_exists("raw.ingested_files"):
        raise LandingZoneError("nothing has been ingested yet: there is nothing to read again")
    with warehouse.connect() as con:  # candidates by file name; then compared as resolved paths
        con.register("_names", pa.table({"name": sorted({Path(w).name for w in wanted})}))
        rows = con.execute(
            """SELECT DISTINCT f.source, f.source_file, f.file_hash, f.size_bytes FROM raw.ingested_files f
               SEMI JOIN _names n ON f.source_file = n.name OR f.source_file LIKE '%/' || n.name
               WHERE f.status NOT IN ('duplicate_file', 'forgotten')"""
        ).fetchall()
    found = [r for r in rows if str(Path(r[1]).resolve()) in wanted]
    missing = sorted(set(wanted) - {str(Path(r[1]).resolve()) for r in found})
    if missing:
        raise LandingZoneError(f"never ingested, so nothing to read again: {', '.join(missing)}")
    forgotten = [
        {
            "source": source,
            "source_file": path,
            "file_hash": fh,
            "size_bytes": size,
            "ingested_at": now,
            "encoding": None,
            "shape": None,
            "status": FORGOTTEN,
            "n_records": 0,
            "n_rejects": 0,
            "message": "marked to be read again (mlops-assets reingest)",
        }
        for source, path, fh, size in found
    ]
    with warehouse.connect() as con:
        con.register("_forgotten", _frame(forgotten, FILES_SCHEMA).to_arrow())
        con.execute("INSERT INTO raw.ingested_files BY NAME SELECT * FROM _forgotten")
    return sorted({Path(r[1]).name for r in found})


def ensure_raw_tables(con, source: str, plain_payload: bool = False) -> None:
    """Create the source's raw tables (empty, with the full schema) so readers never miss one.

    ``plain_payload`` (DuckDB files; a DuckLake writes Parquet) stores new tables' ``payload`` column
    uncompressed: choosing and applying a string compression to gigabytes of JSON that nothing scans
    but a rebuild cost more CPU than the rest of the write, for about a fifth of the file size.
    """
    for kind in SOURCES[source][2]:
        _create_like(
            con,
            raw_table(source, kind),
            pl.DataFrame(schema=kind_schema(kind)),
            plain=("payload",) if plain_payload else (),
        )
    _create_like(con, "raw.rejects", pl.DataFrame(schema=REJECT_SCHEMA))
    _create_like(con, "raw.ingested_files", pl.DataFrame(schema=FILES_SCHEMA))


def _create_like(con, table: str, frame: pl.DataFrame, plain: tuple[str, ...] = ()) -> None:
    con.register("_empty", frame.to_arrow())
    skip = f"EXCLUDE ({', '.join(plain)})" if plain else ""
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * {skip} FROM _empty LIMIT 0")
    add_missing_columns(con, table, "_empty", uncompressed=plain)  # the plain columns, or a newer parser's
    con.unregister("_empty")


def _write(
    warehouse: Warehouse,
    source: str,
    frames: dict[str, pa.Table],
    rejects: pl.DataFrame,
    file_rows: list[dict[str, Any]],
    now: datetime,
    single_thread: bool = False,
) -> tuple[dict[str, int], dict[str, int]]:
    """Append one batch (its new records, rejects and manifest rows) in one transaction."""
    with _Writer(warehouse, source, file_rows, single_thread) as writer:
        new_counts = writer.add(frames)
        totals = writer.finish(rejects)
    return new_counts, totals


class _Writer:
    """One write transaction on a source's raw tables: records in as many parts as come, then the
    rejects and the manifest rows, then COMMIT. Leaving it by an exception rolls everything back.
    """

    def __init__(
        self, warehouse: Warehouse, source: str, file_rows: list[dict[str, Any]], single_thread: bool = False
    ):
        self.warehouse, self.source, self.file_rows, self.single_thread = (
            warehouse,
            source,
            file_rows,
            single_thread,
        )
        self.per_file_new: dict[str, int] = {}
        self.totals: dict[str, int] = {}

    def __enter__(self) -> _Writer:
        self._cm = self.warehouse.connect()
        con = self.con = self._cm.__enter__()
        try:
            if (
                self.single_thread
            ):  # parse workers keep the cores busy: a second DuckDB thread would only contend
                con.execute("SET threads = 1")
            con.execute(f"SET memory_limit = '{write_memory_limit()}'")
            # Rows need not keep the scan's order inside one append: DuckDB can then stream the insert
            # instead of buffering it to reorder (the raw layer's order is (source_file, locator) anyway).
            con.execute("SET preserve_insertion_order = false")
            con.execute("BEGIN TRANSACTION")
            ensure_raw_tables(con, self.source, plain_payload=not self.warehouse.is_lake)
        except BaseException:
            self._reset()
            self._cm.__exit__(None, None, None)
            raise
        return self

    def add(self, frames: dict[str, pa.Table]) -> dict[str, int]:
        """Insert the records of ``frames`` not yet stored; returns the new rows per kind.

        Takes the tables out of ``frames`` and lets each slice go once it is inserted: a batch's
        memory (Arrow buffers, or the parse workers' spooled files) shrinks while it is written,
        so the next batch, collected meanwhile on the main thread, does not come on top of all of it.
        """
        con, new_counts = self.con, {}
        for kind in list(frames):
            table = raw_table(self.source, kind)
            before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            incoming = _new_records(con, table, frames.pop(kind), before)
            rows = new_counts[kind] = incoming.num_rows
            if rows:
                counts = incoming.group_by("file_hash").aggregate([("file_hash", "count")])
                for fh, n in zip(
                    counts["file_hash"].to_pylist(), counts["file_hash_count"].to_pylist(), strict=True
                ):
                    self.per_file_new[fh] = self.per_file_new.get(fh, 0) + n
            slices = insert_slices(incoming)
            del incoming  # insert_slices holds the only reference now and drops chunks as they go in
            for part in slices:
                con.register("_incoming", part)
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
                con.unregister("_incoming")
                del part
            self.totals[kind] = before + rows
        return new_counts

    def finish(self, rejects: pl.DataFrame) -> dict[str, int]:
        """Rejects and manifest rows, then COMMIT; returns each raw table's rows after the write."""
        con = self.con
        if rejects.height:
            con.register("_rejects", rejects.to_arrow())
            con.execute(
                """INSERT INTO raw.rejects BY NAME SELECT * FROM _rejects i
                   WHERE i.record_hash IS NULL
                      OR NOT EXISTS (SELECT 1 FROM raw.rejects r WHERE r.record_hash = i.record_hash)"""
            )
            con.unregister("_rejects")
        if self.file_rows:
            for row in self.file_rows:  # a duplicate_file row shares its hash with the file credited
                row["n_new_records"] = (
                    self.per_file_new.get(row["file_hash"], 0) if row["status"] == "ingested" else 0
                )
            con.register("_files", _frame(self.file_rows, FILES_SCHEMA).to_arrow())
            # Another ingestion of the same landing zone may have committed these files while this one
            # parsed them (its records then came to nothing new here): one manifest row per file.
            # (a row already there is another writer's, unless the file was marked to be read again since)
            con.execute("""INSERT INTO raw.ingested_files BY NAME SELECT * FROM _files f
                           WHERE coalesce((SELECT arg_max(m.status, m.ingested_at) FROM raw.ingested_files m
                                           WHERE m.source_file = f.source_file AND m.file_hash = f.file_hash),
                                          'forgotten') = 'forgotten'""")
            con.unregister("_files")
        con.execute("COMMIT")
        self.committed = True
        return self.totals

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is not None and not getattr(self, "committed", False):
                self.con.execute("ROLLBACK")
        finally:
            self._reset()
            self._cm.__exit__(None, None, None)
        if exc is not None and _is_out_of_memory(exc):
            raise IngestionMemoryError(_memory_message(self.source, self.file_rows, exc)) from None
        full = disk_full_error(self.warehouse.path, exc) if exc is not None and self.warehouse.path else None
        if full is not None:  # the same message as any other write on a full disk: where, and what to do
            raise full from None
        return False

    def _reset(self) -> None:
        # Settings belong to the database instance, which a DuckLake warehouse keeps for the whole
        # process: later work on it (cleaning in the same run) must not inherit them.
        self.con.execute("RESET memory_limit")
        self.con.execute("RESET preserve_insertion_order")
        if self.single_thread:
            self.con.execute("RESET threads")


STAGING_SCHEMA = "ingest_staging"
# A streamed file's parts are staged this many bytes (of Arrow) at a time: one commit and one check
# against the raw and staging tables per stage, not per part (each commit and check costs more as the
# staging table grows: per 5,000-record part, a 500 MB CSV took 237 s against 86 s for 250 MB).
STAGE_BYTES = 64 * 1024 * 1024


class _StagedWriter(_Writer):
    """The write of one streamed file, atomic for readers like _Writer's, in memory bounded by a stage.

    DuckDB keeps the rows a transaction appends in memory until it commits, past its memory limit
    (measured on DuckDB 1.5: 4M rows of ~600 B appended in one transaction held 3.6 GB; an 800 MB
    CSV streamed into one transaction peaked at 4.3 GB). So the parts are committed, STAGE_BYTES at a
    time, into staging tables of their own (``ingest_staging.<table>_<file hash>``), their records
    checked against the raw table and what is staged already; then one transaction moves them into
    the raw tables (a table-to-table insert DuckDB writes out as it goes) with the rejects and the
    manifest row, and drops the staging tables. Readers of the raw layer never see part of a file; a fault
    part-way drops the staging tables, and a kill leaves only staging tables, which the file's next
    attempt replaces.
    """

    def __enter__(self) -> _StagedWriter:
        self._cm = self.warehouse.connect()
        con = self.con = self._cm.__enter__()
        self.staged: dict[str, str] = {}
        self.pending: dict[str, list[pa.Table]] = {}
        self.pending_bytes = 0
        try:
            con.execute(f"SET memory_limit = '{write_memory_limit()}'")
            con.execute("SET preserve_insertion_order = false")
            ensure_raw_tables(con, self.source, plain_payload=not self.warehouse.is_lake)
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {STAGING_SCHEMA}")
        except BaseException:
            self._reset()
            self._cm.__exit__(None, None, None)
            raise
        return self

    def _staging(self, kind: str) -> str:
        if kind not in self.staged:
            table = raw_table(self.source, kind)
            name = f"{STAGING_SCHEMA}.{table.split('.')[-1]}_{self.file_rows[0]['file_hash'][:16]}"
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {table} LIMIT 0")
            self.staged[kind] = name
        return self.staged[kind]

    def add(self, frames: dict[str, pa.Table]) -> dict[str, int]:
        """Collect a part's records; every STAGE_BYTES of them are staged (and committed) at once.
        Returns the new rows per kind of what was staged by this call (the rest comes with flush).
        """
        for kind, frame in frames.items():
            self.pending.setdefault(kind, []).append(frame)
            self.pending_bytes += frame.nbytes
        return self.flush() if self.pending_bytes >= STAGE_BYTES else {}

    def flush(self) -> dict[str, int]:
        """Stage (and commit) the collected records neither in the raw table nor staged already."""
        frames = {
            kind: pa.concat_tables(parts, promote_options="default") for kind, parts in self.pending.items()
        }
        self.pending, self.pending_bytes = {}, 0
        con, new_counts = self.con, {}
        for kind, frame in frames.items():
            table, staging = raw_table(self.source, kind), self._staging(kind)
            incoming = _new_records(
                con, table, frame, con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            )
            incoming = _new_records(
                con, staging, incoming, con.execute(f"SELECT count(*) FROM {staging}").fetchall()[0][0]
            )
            for part in insert_slices(incoming):
                con.register("_incoming", part)
                con.execute(f"INSERT INTO {staging} BY NAME SELECT * FROM _incoming")
                con.unregister("_incoming")
                del part
            new_counts[kind] = incoming.num_rows
        return new_counts

    def finish(self, rejects: pl.DataFrame) -> dict[str, int]:
        """One transaction: the staged records into the raw tables, the rejects, the manifest row."""
        if self.pending:
            raise RuntimeError("flush() the collected records before finish()")
        con = self.con
        con.execute("BEGIN TRANSACTION")
        moved = 0
        for kind, staging in self.staged.items():
            table = raw_table(self.source, kind)
            # another writer may have stored some of these records since they were staged (DuckLake)
            moved += con.execute(f"""INSERT INTO {table} BY NAME SELECT * FROM {staging} s
                                     WHERE NOT EXISTS (SELECT 1 FROM {table} r WHERE r.record_hash = s.record_hash)""").fetchall()[
                0
            ][0]
            con.execute(f"DROP TABLE {staging}")
        self.per_file_new = {self.file_rows[0]["file_hash"]: moved}
        self.totals = {
            kind: con.execute(f"SELECT count(*) FROM {raw_table(self.source, kind)}").fetchall()[0][0]
            for kind in self.staged
        }
        self.staged = {}
        return super().finish(rejects)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and not getattr(self, "committed", False):
            try:
                self.con.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - no transaction was open (the fault came while staging)
                pass
            for staging in self.staged.values():
                try:
                    self.con.execute(f"DROP TABLE IF EXISTS {staging}")
                except Exception:  # noqa: BLE001 - the next attempt of the file replaces it anyway
                    pass
            self.committed = True  # nothing left to roll back: _Writer.__exit__ only resets and re-raises
        return super().__exit__(exc_type, exc, tb)


def _with_time(table: pa.Table, now: datetime) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return table.append_column(pa.field("ingested_at", ts), pa.repeat(pa.scalar(now, ts), table.num_rows))


def _ingest_streamed(
    warehouse: Warehouse, source: str, job: dict[str, Any], now: datetime, report: IngestReport
) -> None:
    """A file too big to parse whole: its parser's parts are staged one by one, then moved into the raw
    tables in one transaction with its manifest row (_StagedWriter).

    Memory holds one part (stream.PART_RECORDS records) at a time, whatever the file's size. A fault
    part-way (the file stops being JSON) leaves nothing of the file and records it as unreadable.
    """
    path, fh, rel, salt = Path(job["path"]), job["file_hash"], job["path"], job.get("salt", "")
    kinds = SOURCES[source][2]
    row = _manifest_entry(
        source, job, now, "ingested", "streamed: too big to parse at once", encoding="utf-8"
    )
    parts = _parser(source).parse_stream(path)
    if parts is None:  # _streamable asked the same question a moment ago: the file changed under us
        raise LandingZoneError(
            f"{path.name} changed while it was being ingested: re-run when the copy is complete"
        )
    rejects: list[dict[str, Any]] = []
    parsed_counts = dict.fromkeys(kinds, 0)
    new_counts = dict.fromkeys(kinds, 0)
    try:
        with _StagedWriter(warehouse, source, [row]) as writer:
            for part in parts:
                row["shape"] = part.shape
                row["encoding"] = getattr(part, "encoding", None) or "utf-8"
                row["n_records"] += part.n_records
                frames = {}
                for kind in kinds:
                    rows = part.records.get(kind)
                    if rows:
                        if salt:  # a mapped CSV's record hashes carry its mapping, as when parsed whole
                            for r in rows:
                                r["_salt"] = salt
                        frames[kind] = _with_time(_arrow_table(rows, source, kind, rel, fh), now)
                        parsed_counts[kind] += len(rows)
                    part.records[kind] = []
                for kind, n in writer.add(frames).items():
                    new_counts[kind] += n
                rejects += [
                    _reject_row(
                        source,
                        job,
                        now,
                        r.locator,
                        redact(r.reason),
                        redact(r.payload),
                        _record_hash(source, "reject", r.payload),
                    )
                    for r in part.rejects
                ]
            for kind, n in writer.flush().items():
                new_counts[kind] += n
            row["n_rejects"] = len(rejects)
            if row["encoding"] != "utf-8":  # what the whole parse would say, after the streamed note
                row["message"] += f"; not UTF-8: decoded as {row['encoding']}"
            totals = writer.finish(_frame(rejects, REJECT_SCHEMA))
    except (SourceFormatError, RecursionError) as exc:
        error = (
            redact(str(exc))
            if isinstance(exc, SourceFormatError)
            else f"{path.name}: nested too deeply to read"
        )
        report.files_unreadable += 1
        report.rejects += 1  # the file's own reject row, counted as when it is parsed whole
        report.messages.append(f"{path.name}: {error}")
        report.unreadable.append((path.name, error))
        payload = excerpt(path.read_bytes()[:4096] if path.exists() else b"")
        reject = _reject_row(source, job, now, "<file>", error, payload)
        _write(
            warehouse,
            source,
            {},
            _frame([reject], REJECT_SCHEMA),
            [_manifest_entry(source, job, now, "unreadable", error, n_rejects=1)],
            now,
        )
        return
    report.files_ingested += 1
    if row["encoding"] != "utf-8":
        report.latin1_files.append(path.name)
    report.rejects += len(rejects)
    report.table_rows.update(totals)
    for kind in kinds:
        report.records_parsed[kind] += parsed_counts[kind]
        report.records_new[kind] += new_counts[kind]


# One INSERT takes at most this much of a batch, as ONE Arrow chunk. DuckDB scans an Arrow table
# chunk by chunk, and every chunk costs each string column buffers of its own that live until the
# transaction commits: a batch of 2,505 single-issue files (one tiny chunk each, 33 columns) needed
# 1.3 GB of DuckDB memory for 56 MB of rows and failed. Slices of whole chunks up to this size keep
# both the chunk count and the copy made to combine them bounded, whatever the files look like.
INSERT_SLICE_BYTES = 64 * 1024 * 1024
INSERT_SLICE_ROWS = 122_880  # a DuckDB row group: an append this big goes straight to the file
INSERT_MAX_CHUNKS = 16  # a slice of more chunks than this is joined into one


def insert_slices(table: pa.Table) -> Iterator[pa.Table]:
    """``table`` as consecutive tables of at most INSERT_SLICE_BYTES / INSERT_SLICE_ROWS and
    INSERT_MAX_CHUNKS chunks each.

    Slices are cut at the table's own chunk boundaries (a file's rows stay together) unless one
    chunk alone is over the limits, which is then cut by rows. A slice of many small chunks is joined
    into one (a copy of at most one slice at a time).
    """
    schema, chunks = table.schema, table.to_batches()
    del table  # with the caller's reference gone too, each chunk is freed once its slice is inserted
    chunks.reverse()
    group: list[pa.RecordBatch] = []
    size = rows = 0

    def emit() -> pa.Table:
        joined = pa.Table.from_batches(group, schema=schema)
        # A few big chunks scan as cheaply as one: only many small ones are worth a copy.
        return joined.combine_chunks() if len(group) > INSERT_MAX_CHUNKS else joined

    while chunks:
        chunk = chunks.pop()
        pieces = [chunk]
        if chunk.nbytes > INSERT_SLICE_BYTES or chunk.num_rows > INSERT_SLICE_ROWS:
            per_row = max(1, chunk.nbytes // max(chunk.num_rows, 1))
            step = max(1, min(INSERT_SLICE_ROWS, INSERT_SLICE_BYTES // per_row))
            pieces = [chunk.slice(i, step) for i in range(0, chunk.num_rows, step)]
        for piece in pieces:
            if group and (
                size + piece.nbytes > INSERT_SLICE_BYTES or rows + piece.num_rows > INSERT_SLICE_ROWS
            ):
                yield emit()
                group, size, rows = [], 0, 0
            group.append(piece)
            size += piece.nbytes
            rows += piece.num_rows
    if group:
        yield emit()


class IngestionMemoryError(MemoryError):
    """DuckDB ran out of the memory it may use while writing a batch; the message names the files and the knobs."""


def _is_out_of_memory(exc: BaseException) -> bool:
    import duckdb

    return isinstance(exc, (duckdb.OutOfMemoryException, MemoryError)) and not isinstance(
        exc, IngestionMemoryError
    )


def _memory_message(source: str, file_rows: list[dict[str, Any]], exc: BaseException) -> str:
    names = [Path(r["source_file"]).name for r in file_rows]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    mb = sum(r.get("size_bytes") or 0 for r in file_rows) / 1e6
    return (
        f"{source}: out of memory while writing {len(names)} file(s) ({mb:.0f} MB: {shown}) under a "
        f"{write_memory_limit()} DuckDB limit. Nothing of this batch was written; files written before it are "
        f"kept. Set {MEMORY_LIMIT_ENV} higher (e.g. 4GB) or {BATCH_MB_ENV} lower (e.g. 128), then re-run. "
        f"({str(exc).splitlines()[0][:200]})"
    )


def _new_records(con, table: str, frame: pa.Table, rows_before: int) -> pa.Table:
    """The rows of ``frame`` whose record_hash is neither in ``table`` nor earlier in the batch.

    Of a record that several files (or places in one file) hold, the one with the smallest
    (source_file, locator) is kept. Deduplicating here, on the hash column alone, spares DuckDB a
    window over the payloads.
    """
    if frame.num_rows == 0:
        return frame
    keys = pl.from_arrow(frame.select(["record_hash", "source_file", "locator"])).with_row_index("_i")
    if keys["record_hash"].n_unique() < keys.height:
        first = keys.sort(["source_file", "locator"]).unique("record_hash", keep="first")["_i"]
        keep = pl.Series(values=[False] * keys.height).scatter(first, True)
        frame = frame.filter(keep.to_arrow())  # a mask, chunk by chunk: no copy of the whole batch
    if rows_before:
        con.register("_hashes", frame.select(["record_hash"]))
        present = con.execute(
            f"SELECT h.record_hash FROM _hashes h SEMI JOIN {table} r ON r.record_hash = h.record_hash"
        ).to_arrow_table()
        con.unregister("_hashes")
        if present.num_rows:
            frame = frame.filter(
                pc.invert(pc.is_in(frame["record_hash"], value_set=present.column(0).combine_chunks()))
            )
    return frame
