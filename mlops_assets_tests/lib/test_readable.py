"""Numbers a person can read: 4 significant digits for floats, thousands separators for counts in text."""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import pytest

from mlops_assets.lib.readable import number_text, readable_values, significant
from mlops_assets.metadata import readable


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0.11564781994396651, 0.1156),
        (0.99995, 1.0),
        (123456.789, 123500.0),
        (-0.000123456, -0.0001235),
        (12.3449, 12.34),
        (0.0, 0.0),
        (3.0, 3.0),
        (np.float64(0.712345678), 0.7123),
        (np.float32(0.5), 0.5),
    ],
)
def test_significant_keeps_four_significant_digits(x, expected):
    assert significant(x) == expected
    assert isinstance(significant(x), float)


def test_significant_leaves_nan_and_inf():
    assert math.isnan(significant(float("nan")))
    assert significant(float("inf")) == float("inf")


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (6000, "6,000"),
        (1234567, "1,234,567"),
        (np.int64(12000), "12,000"),
        (7, "7"),
        (-2500, "-2,500"),
        (0.11564781994396651, "0.1156"),
        (12.3449, "12.34"),
        (1234.5678, "1,235"),
        (123456.789, "123,500"),
        (0.5, "0.5"),
        (2.0, "2"),
        (0.000012345, "1.234e-05"),
        (True, "True"),
        (float("nan"), "nan"),
    ],
)
def test_number_text(x, expected):
    assert number_text(x) == expected


def test_readable_values_rounds_floats_inside_structures_and_leaves_the_rest():
    value = {
        "auc": 0.876543,
        "n": np.int64(6000),
        "ok": True,
        "name": "late_risk",
        "none": None,
        "per_slice": [{"value": np.float64(0.333333333), "rows": 12}],
        "pair": (1.23456, 2),
    }
    assert readable_values(value) == {
        "auc": 0.8765,
        "n": 6000,
        "ok": True,
        "name": "late_risk",
        "none": None,
        "per_slice": [{"value": 0.3333, "rows": 12}],
        "pair": [1.235, 2],
    }
    assert type(readable_values(value)["n"]) is int


def test_readable_metadata_keeps_kinds_so_plots_still_work():
    meta = readable(
        {
            "test_roc_auc": dg.MetadataValue.float(0.11564781994396651),
            "rows": 6000,
            "share": 0.333333333,
            "dagster/row_count": 1234567,
            "json": dg.MetadataValue.json({"mae": 1.23456789, "n": 5}),
            "report": dg.MetadataValue.path("/tmp/report.html"),
            "reason": "drift share 0.1156 over 0.1",
            "md": dg.MetadataValue.md("| a |\n|---|\n| 0.123456 |"),
            "missing": dg.MetadataValue.float(None),
        }
    )
    assert meta["test_roc_auc"] == dg.MetadataValue.float(0.1156)
    assert meta["share"] == 0.3333 and meta["rows"] == 6000 and meta["dagster/row_count"] == 1234567
    assert meta["json"] == dg.MetadataValue.json({"mae": 1.235, "n": 5})
    assert meta["report"] == dg.MetadataValue.path("/tmp/report.html")
    assert meta["reason"] == "drift share 0.1156 over 0.1"
    assert meta["md"].value == "| a |\n|---|\n| 0.123456 |"  # Markdown is written readable where it is made
    assert meta["missing"].value is None


def test_materialized_metadata_stays_numeric_so_the_ui_plots_it():
    """What the instance stores: rounded floats as float entries, counts as int entries (the plotted kinds)."""

    @dg.asset
    def scored() -> dg.MaterializeResult:
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "test_roc_auc": dg.MetadataValue.float(0.87654321),
                    "drift_share": 0.11564781994396651,
                    "rows": 6000,
                }
            )
        )

    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([scored], instance=instance).success
    stored = instance.get_latest_materialization_event(scored.key).asset_materialization.metadata
    assert stored["test_roc_auc"] == dg.FloatMetadataValue(0.8765)
    assert stored["drift_share"] == dg.FloatMetadataValue(0.1156)
    assert stored["rows"] == dg.IntMetadataValue(6000)


def test_the_slice_table_shows_the_first_slices_with_a_value_in_readable_numbers():
    import polars as pl

    from mlops_assets.lib.readable import slices_markdown

    slices = pl.DataFrame(
        {
            "slice_column": ["source", "source", "project"],
            "slice_value": ["jira", "github", "A"],
            "metric": ["mae", "mae", "mae"],
            "n": [12345, 3, 7],
            "value": [1.23456, None, 2.0],
        }
    )
    lines = slices_markdown(slices).splitlines()
    assert lines[0] == "| slice | value | metric | n | score |"
    assert lines[2:] == ["| source | jira | mae | 12,345 | 1.235 |", "| project | A | mae | 7 | 2 |"]
    assert len(slices_markdown(slices, limit=1).splitlines()) == 3


def test_a_plot_is_inlined_as_a_markdown_image(tmp_path):
    import base64

    from mlops_assets.lib.readable import markdown_image

    path = tmp_path / "calibration.png"
    png = b"\x89PNG fake"
    path.write_bytes(png)
    assert markdown_image(path) == f"![calibration](data:image/png;base64,{base64.b64encode(png).decode()})"
