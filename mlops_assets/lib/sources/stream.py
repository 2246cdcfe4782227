"""Read a landing JSON file too big to hold whole, one item at a time: msgspec over a memory map (Trello
boards, GitHub and Jira files: :func:`mapped_items`, :func:`mapped_fields`, :func:`mapped_documents`) or
ijson, its C backend (a Jira file with a record nested past msgspec's depth, which ijson builds without
recursion).

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
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from mlops_assets.lib.sources.base import SourceFormatError, has_surrogate_escape, mend_lone_surrogates

# Files from this size on are streamed (the generator's search pages are about 0.1-5 MB, real single
# issues 15-50 KB: only an export that holds a whole project in one file reaches it).
STREAM_MIN_BYTES = 64 * 1024 * 1024
# Records a streamed part holds before it is handed to ingestion.
PART_RECORDS = 5_000


def first_byte(path: Path) -> bytes:
    """The first non-blank byte of a file (b"" if none); a UTF-8 BOM is skipped."""
    return first_bytes(path, 1)


def first_bytes(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of the file's first 64 KB that are not blanks (those bytes.strip removes), a
    UTF-8 BOM skipped; fewer if there are not so many.
    """
    with open(path, "rb") as f:
        head = f.read(65536)
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.translate(None, b" \t\n\r\x0b\x0c")[:n]


def has_top_level_key(path: Path, key: str) -> bool:
    """Whether the file's top-level object has ``key``, reading only as far as the key (or the end)."""
    import ijson

    with open(path, "rb") as f:
        try:
            for prefix, event, value in ijson.parse(MendedReader(f)):
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
            return next(ijson.items(MendedReader(f), prefix, use_float=True), None)
        except ijson.JSONError:
            return None


def items(path: Path, prefix: str, several: bool = False) -> Iterator[Any]:
    """The elements at ``prefix`` (``item`` of a top-level list, ``issues.item`` of a page), one by one;
    ``several``: of every document of a file of several one after the other (``gh api --paginate``).

    A file that stops being valid JSON part-way raises SourceFormatError naming the file and where.
    """
    import ijson

    with open(path, "rb") as f:
        try:
            yield from ijson.items(MendedReader(f), prefix, use_float=True, multiple_values=several)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            raise _cut_short(path, exc) from None


_INVALID_AT = re.compile(r"invalid character \(byte (\d+)\)")


def non_finite_at(path: Path, exc: Exception) -> tuple[int, str] | None:
    """Where msgspec stopped at a bare ``NaN``, ``Infinity`` or ``-Infinity`` (no JSON, but what Python's
    ``json.dumps`` writes for such a float, and what the whole parse's ``json.loads`` reads): (byte offset,
    the token); None when ``exc`` is another fault.
    """
    found = _INVALID_AT.search(str(exc))
    if found is None:
        return None
    at = int(found.group(1))
    with open(path, "rb") as f:
        f.seek(max(at - 1, 0))
        around = f.read(10)
    here = around[1:] if at > 0 else around
    for token in (b"NaN", b"Infinity"):
        if here.startswith(token):
            negative = at > 0 and around[:1] == b"-"
            return (at - 1, "-Infinity") if negative and token == b"Infinity" else (at, token.decode())
    return None


def _cut_short(path: Path, exc: Exception) -> SourceFormatError:
    return SourceFormatError(
        f"{path.name} is not valid UTF-8 JSON part-way through ({str(exc)[:200]}); was the download cut "
        f"short? Records read before the fault are not kept: the file is ingested whole or not at all"
    )


class MendedReader:
    r"""A binary file as ijson reads it (``read(n)``), every lone surrogate escape replaced by ``\ufffd`` as the
    whole parse reads it (base.mend_lone_surrogates): ijson read ``\ud83d`` alone as "?", fused it with a
    following ``\u0041`` into another character, and refused a lone low surrogate part-way through the file.

    Blocks are mended up to a point no escape can straddle (no backslash among the 11 bytes before it);
    the rest waits for the next block. Costs one regex search a block when there is nothing to mend.
    """

    BLOCK = 1 << 20

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._carry = b""
        self._out = memoryview(b"")
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._out and not self._eof:
            block = self._f.read(self.BLOCK)
            data = self._carry + block
            if not block:
                self._eof, cut = True, len(data)
            else:
                cut = _safe_cut(data)
            self._carry = data[cut:]
            self._out = memoryview(mend_lone_surrogates(data[:cut]))
        if n is None or n < 0 or n >= len(self._out):
            out, self._out = bytes(self._out), memoryview(b"")
            return out
        out, self._out = bytes(self._out[:n]), self._out[n:]
        return out


def _safe_cut(data: bytes) -> int:
    """The last offset of ``data`` that no escape (at most 12 bytes, from a backslash) straddles: one with no
    backslash among the 11 bytes before it; 0 when there is none.
    """
    end = len(data)
    while end > 0:
        at = data.rfind(b"\\", max(0, end - 11), end)
        if at < 0:
            return end
        end = at
    return 0


def has_surrogate_escapes(path: Path) -> bool:
    """Whether the file holds a surrogate escape at all, a pair or not (one regex search over its map)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return has_surrogate_escape(m)


_MENDED_PREFIX = "mlops-mended-"


def _remove_orphaned_copies() -> None:
    """Remove TMPDIR's mended copies whose process is gone (a file's size each, left by a killed run)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_MENDED_PREFIX}*-*"):
        pid = folder.name[len(_MENDED_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive, another user's
            continue


@contextmanager
def mended_copy(path: Path) -> Iterator[Path]:
    r"""A temporary copy of the file with its lone surrogate escapes replaced by ``\ufffd`` (MendedReader), under
    the same name, for readers that need a file (a memory map); removed afterwards. Costs the file's size
    of temporary disk for as long as it is read. Copies left by a process that died without cleaning up
    (SIGKILL, the OOM killer) are removed by the next one: the folder is named after the process.
    """
    _remove_orphaned_copies()
    folder = Path(tempfile.mkdtemp(prefix=f"{_MENDED_PREFIX}{os.getpid()}-"))
    try:
        copy = folder / path.name
        with open(path, "rb") as src, open(copy, "wb") as dst:
            shutil.copyfileobj(MendedReader(src), dst, MendedReader.BLOCK)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def mapped_file(path: Path, expected: str | None = None) -> Iterator[mmap.mmap]:
    """The file's memory map for the mapped readers: its pages are the file's, which the kernel reclaims,
    and are dropped once read. SourceFormatError for an empty file (nothing to map; ``expected``: the shape
    the message names). A view into the map that the caller still holds when it closes keeps it mapped
    until the view goes.
    """
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise SourceFormatError(f"{path.name} is empty" + (f": expected {expected}" if expected else ""))
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield m
    finally:
        if hasattr(mmap, "MADV_DONTNEED"):
            m.madvise(mmap.MADV_DONTNEED)
        try:
            m.close()
        except BufferError:  # a view the caller still holds: the map goes with it
            pass


# decodes one raw value (a msgspec.Raw or a view) into Python objects
decode = msgspec.json.Decoder().decode


def drained(raws: list[Any]) -> Iterator[Any]:
    """The raw elements of a list one by one, each slot emptied as it is handed out (the views go with it)."""
    for i in range(len(raws)):
        raw, raws[i] = raws[i], None
        yield raw
        raw = None


def raw_head(raw: msgspec.Raw | memoryview | None) -> bytes | None:
    """The first byte of a raw JSON value (a msgspec.Raw, or a document of :func:`mapped_documents`: both start
    on the value, never on a blank): ``[`` for a list, ``{`` for an object; None for no value (an absent key).
    """
    if raw is None:
        return None
    with memoryview(raw) as view:
        return view[:1].tobytes()


def mapped_items(path: Path, key: str | None) -> Iterator[Any]:
    """The elements of the array at the top-level object's ``key`` (None: of the top-level array), one by one,
    as ``items(path, f"{key}.item")`` gives them, about 5x faster: the 389 MB board of 1M tasks (317,364
    actions, 99,373 cards) in 2.1-2.2 s instead of 10.2-10.5 s, its ingest_trello step 21.0 -> 13.3 s
    (docs/BENCHMARKS.md).

    msgspec reads the file through a memory map (the file's pages, which the kernel reclaims), splits the
    array into raw items (a small view per item, 56 bytes each with its list slot: 56 MB for a million) and
    decodes them one at a time; each view is dropped once its item is made. It reads what the whole parse's
    msgspec reads: an integer past 64 bits is kept (ijson refused the file); a number past a double fails
    the file, and so does a lone surrogate escape (the board's reader then reads a ``mended_copy``).
    """
    with mapped_file(path) as m:
        top = array = raws = raw = None  # views into the map: all gone before it closes
        try:
            if key is None:
                array = msgspec.json.decode(m, type=msgspec.Raw)
            else:
                top = msgspec.json.decode(m, type=dict[str, msgspec.Raw])
                array = top.get(key)
            raws = [] if array is None else msgspec.json.decode(array, type=list[msgspec.Raw])
            top = array = None
            for raw in drained(raws):
                item = decode(raw)
                raw = None
                yield item
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _cut_short(path, exc) from None
        finally:
            top = array = raws = raw = None


def mapped_fields(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The values of the top-level object's fields ``names`` that it has, decoded; the others are skipped
    over the memory map, not built (a big search page's ``names``, wherever it stands: one msgspec pass).
    """
    with mapped_file(path) as m:
        top = None
        try:
            top = msgspec.json.decode(m, type=dict[str, msgspec.Raw])
            return {name: decode(top[name]) for name in names if name in top}
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _cut_short(path, exc) from None
        finally:
            top = None


_BLANKS = re.compile(rb"[ \t\r\n]*")
# msgspec's message for a document followed by more: "JSON is malformed: trailing characters (byte N)", N one
# past the start of what follows (checked below, whichever way a version counts it).
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")


def _document_ends(m: Any) -> list[tuple[int, int]]:
    """(start, end) of every top-level JSON document of the buffer, one after the other with blanks between
    (``gh api --paginate``); each is checked whole by msgspec on the way, without building it.
    """
    view, spans = memoryview(m), []
    at = 3 if bytes(view[:3]) == b"\xef\xbb\xbf" else 0
    try:
        while (at := _BLANKS.match(m, at).end()) < len(m):
            try:
                msgspec.json.decode(view[at:], type=msgspec.Raw)
                spans.append((at, len(m)))
                break
            except msgspec.DecodeError as exc:
                found = _TRAILING.search(str(exc))
                if found is None:
                    raise
                # the next document starts at N - 1 (msgspec 0.18-0.19) or N: the first that leaves a whole
                # document before it and starts on a non-blank byte
                for nxt in (at + int(found.group(1)) - 1, at + int(found.group(1))):
                    if at < nxt < len(m) and m[nxt : nxt + 1] not in b" \t\r\n":
                        try:
                            msgspec.json.decode(view[at:nxt], type=msgspec.Raw)
                        except msgspec.DecodeError:
                            continue
                        spans.append((at, nxt))
                        at = nxt
                        break
                else:
                    raise
    finally:
        view.release()
    return spans


def mapped_documents(path: Path) -> Iterator[tuple[int, int, memoryview]]:
    r"""(number, how many, raw document) for every top-level JSON document of the file, the pages of ``gh api
    --paginate`` one after the other or a file's one document, read through a memory map as
    :func:`mapped_items`: a first pass finds and checks every document (nothing is built), so a file that is
    not JSON fails before anything is yielded. A document is a view into the map: decode it
    (``msgspec.json.decode``, or into ``list[msgspec.Raw]`` to split a list into raw items) and drop it before
    asking for the next one.

    A lone surrogate escape (an emoji cut in two), which msgspec refuses and the whole parse reads as U+FFFD,
    is read from a ``mended_copy`` of the file.
    """
    failed: Exception | None = None
    with mapped_file(path) as m:
        try:
            spans = _document_ends(m)
        except (msgspec.DecodeError, RecursionError) as exc:
            failed = exc
        else:
            view = memoryview(m)
            try:
                for number, (start, end) in enumerate(spans, start=1):
                    yield number, len(spans), view[start:end]  # checked whole by the first pass
            finally:
                view.release()
    if isinstance(failed, RecursionError):
        raise SourceFormatError(
            f"{path.name} nests JSON values deeper than the reader goes (msgspec: {failed}); no tracker exports "
            "such a file: check what wrote it"
        )
    if failed is not None:
        if not has_surrogate_escapes(path):
            raise _cut_short(path, failed) from None
        with mended_copy(path) as copy:
            yield from mapped_documents(copy)
