"""Numbers a person can read: floats at 4 significant digits, counts with thousands separators in text.

Only what people read is rounded (asset and check metadata, reasons, Markdown tables); MLflow and the
warehouse tables keep full precision. Rounded floats stay floats, so the UI still plots them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

SIGNIFICANT_DIGITS = 4


def significant(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``x`` rounded to ``digits`` significant digits (0.11564781994396651 -> 0.1156); nan, inf and 0 unchanged."""
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def number_text(x: float | int, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A number as text: counts with thousands separators (6,000), floats at ``digits`` significant digits
    (0.1156, 12.35, 123,500).
    """
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, Integral):
        return f"{int(x):,}"
    value = significant(x, digits)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 1e-4:
        # Enough decimals to show every significant digit, and no more (no float noise).
        decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
        return f"{value:,.{decimals}f}".rstrip("0").rstrip(".")
    return f"{value:.{digits - 1}e}"


def readable_values(value: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``value`` with every float inside it (dicts, lists, numpy scalars) at ``digits`` significant digits;
    ints, bools, strings and everything else unchanged.
    """
    if isinstance(value, bool | Integral | str) or value is None:
        return int(value) if isinstance(value, Integral) and not isinstance(value, bool) else value
    if isinstance(value, Real):
        return significant(value, digits)
    if isinstance(value, Mapping):
        return {k: readable_values(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [readable_values(v, digits) for v in value]
    return value


def markdown_image(path: Path) -> str:
    """A PNG file as a Markdown image with the bytes inline (a data: URL), named by the file's stem."""
    import base64

    return f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def slices_markdown(slices: pl.DataFrame, limit: int = 40) -> str:
    """A Markdown table of per-slice metrics (slice_column, slice_value, metric, n, value), the first ``limit``
    rows with a value.
    """
    import polars as pl

    rows = slices.filter(pl.col("value").is_not_null()).head(limit)
    lines = ["| slice | value | metric | n | score |", "|---|---|---|---:|---:|"]
    lines += [
        f"| {r['slice_column']} | {r['slice_value']} | {r['metric']} | {number_text(r['n'])} | "
        f"{number_text(r['value'])} |"
        for r in rows.iter_rows(named=True)
    ]
    return "\n".join(lines)
