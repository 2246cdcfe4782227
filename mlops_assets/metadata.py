"""Asset and check metadata as people read it in the UI (every asset that emits metadata passes it here).

Floats, bare or inside JSON values, are rounded to 4 significant digits and stay floats, so Dagster
still plots them over runs; ints stay ints (plotted too); text, paths, URLs and Markdown pass through
(text is made readable where it is written, with ``lib.readable.number_text``). MLflow and the warehouse
tables keep full precision: only the metadata is rounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from mlops_assets.lib.readable import readable_values, significant


def readable(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` with its floats at 4 significant digits."""
    return {key: _value(value) for key, value in metadata.items()}


def _value(value: Any) -> Any:
    if isinstance(value, dg.FloatMetadataValue):
        return value if value.value is None else dg.MetadataValue.float(significant(value.value))
    if isinstance(value, dg.JsonMetadataValue):
        return dg.MetadataValue.json(readable_values(value.data))
    if isinstance(value, dg.MetadataValue):
        return value
    return readable_values(value)
