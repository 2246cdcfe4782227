"""What the per-source writers share: the column-wise JSON template engine and paged output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib.synthetic.world import _LOREM

# --- landing files ------------------------------------------------------------------------------
# JSON is assembled column-wise with polars string expressions from pre-serialized fragments (one
# json.dumps per person, status or priority, not per task): 1,000,000 tasks write in seconds.
# Every free text comes from the fixed vocabularies in .world, which hold no quote or backslash, so a
# value is valid JSON once wrapped in quotes.


def _render(template: str) -> pl.Expr:
    """``'{"key":"@@key@@"}'`` -> one string per row, ``@@col@@`` replaced by that column's text."""
    parts = template.split("@@")
    exprs = [
        pl.lit(part) if i % 2 == 0 else pl.col(part).cast(pl.String)
        for i, part in enumerate(parts)
        if part or i % 2
    ]
    return pl.concat_str(exprs)


def _q(expr: pl.Expr) -> pl.Expr:
    """A JSON string value, or null."""
    return (
        pl.when(expr.is_null())
        .then(pl.lit("null"))
        .otherwise(pl.concat_str([pl.lit('"'), expr, pl.lit('"')]))
    )


def _num(expr: pl.Expr) -> pl.Expr:
    return pl.when(expr.is_null()).then(pl.lit("null")).otherwise(expr.cast(pl.String))


def _fmt(col: str, fmt: str) -> pl.Expr:
    return pl.col(col).dt.strftime(fmt)


def _lookup(col: str, mapping: dict[str, str]) -> pl.Expr:
    return pl.col(col).replace_strict(mapping, default="null", return_dtype=pl.String)


def _json_list(expr: pl.Expr, item: str = '"{}"') -> pl.Expr:
    """A comma-joined text column as a JSON list of strings (``a,b`` -> ``["a","b"]``)."""
    return (
        pl.when(expr == "")
        .then(pl.lit("[]"))
        .otherwise(
            pl.concat_str([pl.lit('["'), expr.str.replace_all(",", '","', literal=True), pl.lit('"]')])
        )
    )


def _description(length: pl.Expr, offset: pl.Expr) -> pl.Expr:
    """Text of exactly ``length`` characters that neither starts nor ends with a space (parsers strip)."""
    return (
        pl.when(length == 0)
        .then(pl.lit(""))
        .otherwise(pl.concat_str([pl.lit("W"), pl.lit(_LOREM).str.slice(offset, length - 2), pl.lit(".")]))
    )


def _write_pages(
    rendered: pl.Series, out_dir: Path, stem: str, page_size: int, wrap: Any, duplicate_at: int | None = None
) -> list[Path]:
    """Cut rendered records (each ending in ",") into pages: ``head + records + tail``, ``wrap(start, total)``.

    A page's records are one contiguous range of the Arrow buffer, so pages are written without copies.
    """
    n = len(rendered)
    if duplicate_at is not None and n > duplicate_at + 1:
        # the record at the page boundary shows up again on the next page, as when an issue
        # changes while a client pages through the results
        rendered = rendered.gather(np.insert(np.arange(n), duplicate_at + 1, duplicate_at))
    data, offsets = _arrow_text(rendered)
    total = len(rendered)
    paths = []
    for page, first in enumerate(range(0, total, page_size)):
        last = min(first + page_size, total)
        head, tail = wrap(first, total)
        path = out_dir / f"{stem}-{page + 1:04d}.json"
        with path.open("wb") as fh:
            fh.write(head.encode("utf-8"))
            fh.write(data[offsets[first] : offsets[last] - 1])  # drop the last record's comma
            fh.write(tail.encode("utf-8"))
        paths.append(path)
    return paths


def _arrow_text(texts: pl.Series) -> tuple[memoryview, np.ndarray]:
    """The UTF-8 bytes of a string series and each row's offsets, straight from Arrow (no Python str)."""
    import pyarrow as pa

    arr = texts.to_arrow()
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = memoryview(arr.buffers()[2]) if arr.buffers()[2] is not None else memoryview(b"")
    return data, offsets


def _utf8_rows(texts: pl.Series) -> list[memoryview]:
    data, offsets = _arrow_text(texts)
    return [data[offsets[i] : offsets[i + 1]] for i in range(len(texts))]
