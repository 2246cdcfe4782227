"""Read a landing JSON file too big to hold whole, one item at a time (ijson, its C backend).

A parser decodes an ordinary file at once (msgspec: fast, and the parsed objects of a few MB are
cheap). A 1 GB search page decoded at once costs several GB of Python objects; streamed, the
parser holds one part of :data:`PART_RECORDS` records at a time, and ingestion writes each part
inside the file's one transaction (lib/ingestion.py ``_ingest_streamed``). Streaming is for files of
``STREAM_MIN_BYTES`` and more; it reads UTF-8 JSON (what the APIs write); anything else a parser
cannot stream is decoded whole as before. A big mapped CSV streams too (``csv_mapped.parse_stream``:
read line by line in any encoding the whole parse reads, one record's lines at a time), with the same
records, rejects and hashes as when it is parsed whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_assets.lib.sources.base import SourceFormatError

# Files from this size on are streamed (the generator's search pages are about 0.1-5 MB, real single
# issues 15-50 KB: only an export that holds a whole project in one file reaches it).
STREAM_MIN_BYTES = 64 * 1024 * 1024
# Records a streamed part holds before it is handed to ingestion.
PART_RECORDS = 5_000


def first_byte(path: Path) -> bytes:
    """The first non-blank byte of a file (b"" if none); a UTF-8 BOM is skipped."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    stripped = head.lstrip()
    return stripped[:1]


def has_top_level_key(path: Path, key: str) -> bool:
    """Whether the file's top-level object has ``key``, reading only as far as the key (or the end)."""
    import ijson

    with open(path, "rb") as f:
        try:
            for prefix, event, value in ijson.parse(f):
                if prefix == "" and event == "map_key" and value == key:
                    return True
        except ijson.JSONError:
            return False
    return False


def first_value(path: Path, prefix: str) -> Any:
    """The value at ``prefix`` (e.g. ``names``), or None; the rest of the file is skimmed, not built."""
    import ijson

    with open(path, "rb") as f:
        try:
            return next(ijson.items(f, prefix, use_float=True), None)
        except ijson.JSONError:
            return None


def items(path: Path, prefix: str) -> Iterator[Any]:
    """The elements at ``prefix`` (``item`` of a top-level list, ``issues.item`` of a page), one by one.

    A file that stops being valid JSON part-way raises SourceFormatError naming the file and where.
    """
    import ijson

    with open(path, "rb") as f:
        try:
            yield from ijson.items(f, prefix, use_float=True)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise SourceFormatError(
                f"{path.name} is not valid UTF-8 JSON part-way through ({str(exc)[:200]}); was the download cut "
                f"short? Records read before the fault are not kept: the file is ingested whole or not at all"
            ) from None
