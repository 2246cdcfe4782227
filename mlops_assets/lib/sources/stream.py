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

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

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
            raise _cut_short(path, exc) from None


def _cut_short(path: Path, exc: Exception) -> SourceFormatError:
    return SourceFormatError(
        f"{path.name} is not valid UTF-8 JSON part-way through ({str(exc)[:200]}); was the download cut "
        f"short? Records read before the fault are not kept: the file is ingested whole or not at all"
    )


_decode_item = msgspec.json.Decoder().decode


def mapped_items(path: Path, key: str) -> Iterator[Any]:
    """The elements of the array at the top-level object's ``key``, one by one, as ``items(path, f"{key}.item")``
    gives them, about 5x faster: the 389 MB board of 1M tasks (317,364 actions, 99,373 cards) in 2.1-2.2 s
    instead of 10.2-10.5 s, its ingest_trello step 21.0 -> 13.3 s (docs/BENCHMARKS.md).

    msgspec reads the file through a memory map (the file's pages, which the kernel reclaims), splits the
    array into raw items (a small view per item, 56 bytes each with its list slot: 56 MB for a million) and
    decodes them one at a time; each view is dropped once its item is made. It reads what the whole parse's
    msgspec reads: an integer past 64 bits is kept (ijson refused the file); a lone surrogate escape or a
    number past a double fails the file, as it fails the first pass over a streamed board already.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise SourceFormatError(f"{path.name} is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            top = array = raws = raw = None  # views into the map: all gone before it closes
            try:
                try:
                    top = msgspec.json.decode(m, type=dict[str, msgspec.Raw])
                    array = top.get(key)
                    raws = [] if array is None else msgspec.json.decode(array, type=list[msgspec.Raw])
                    top = array = None
                    for i in range(len(raws)):
                        raw, raws[i] = raws[i], None
                        item = _decode_item(raw)
                        raw = None
                        yield item
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise _cut_short(path, exc) from None
            finally:
                top = array = raws = raw = None
                if hasattr(mmap, "MADV_DONTNEED"):
                    m.madvise(mmap.MADV_DONTNEED)
