"""The evaluation report of a model: PNG plots (ROC, precision-recall, calibration, feature importance,
residuals) and the self-contained HTML page that shows them with the metrics.

matplotlib is imported inside the plot functions, on an Agg canvas without pyplot. The inputs are checked
as in :mod:`mlops_assets.lib.metrics`, whose curves and metrics the plots draw.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlops_assets.lib.metrics import (
    SKIPPED_METRIC,
    _average_precision,
    _binary_inputs,
    _curve,
    _finite,
    _roc_auc,
    _same_length,
    expected_calibration_error,
)

# --------------------------------------------------------------------------------------------------
# plots

_DPI = 100
_RESIDUAL_SAMPLE = 20_000


def _figure(width: float = 6.0, height: float = 4.5):
    # A Figure on an Agg canvas, without pyplot: no global figure registry to leak, no GUI backend to pick
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=_DPI)
    return path


def _undefined_note(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="dimgray")


def plot_roc(y_true: Any, y_prob: Any, path: str | Path) -> Path:
    """ROC curve with its AUC, as a PNG at `path`."""
    y, p = _binary_inputs(y_true, y_prob)
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="random ranking")
    if 0 < y.sum() < len(y):
        fps, tps, _ = _curve(y, p)
        axes.plot(
            np.r_[0.0, fps / fps[-1]],
            np.r_[0.0, tps / tps[-1]],
            color="C0",
            label=f"model (AUC {_roc_auc(y, p):.3f})",
        )
    else:
        _undefined_note(axes, "ROC undefined: the labels hold a single class")
    axes.set(
        title=f"ROC curve (n={len(y):,})",
        xlabel="False positive rate (on-time tasks flagged)",
        ylabel="True positive rate (late tasks caught)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_pr(y_true: Any, y_prob: Any, path: str | Path) -> Path:
    """Precision-recall curve with average precision and the positive rate as baseline, as a PNG."""
    y, p = _binary_inputs(y_true, y_prob)
    figure = _figure()
    axes = figure.add_subplot()
    if 0 < y.sum() < len(y):
        fps, tps, _ = _curve(y, p)
        axes.step(
            np.r_[0.0, tps / tps[-1]],
            np.r_[1.0, tps / (tps + fps)],
            where="post",
            color="C0",
            label=f"model (AP {_average_precision(y, p):.3f})",
        )
        axes.axhline(y.mean(), linestyle="--", color="gray", label=f"positive rate {y.mean():.3f}")
        axes.legend(loc="upper right")
    else:
        _undefined_note(axes, "Precision-recall undefined: the labels hold a single class")
    axes.set(
        title=f"Precision-recall curve (n={len(y):,})",
        xlabel="Recall (late tasks caught)",
        ylabel="Precision (flagged tasks that are late)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    return _save(figure, path)


def plot_calibration(table: pl.DataFrame, path: str | Path) -> Path:
    """Reliability diagram of a `calibration_table` (observed late rate against mean predicted), as a PNG."""
    figure = _figure()
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ece = expected_calibration_error(table)
    if table.height:
        axes.plot(
            table["mean_predicted"].to_numpy(),
            table["observed_rate"].to_numpy(),
            marker="o",
            color="C0",
            label="model (quantile bins)",
        )
        axes.legend(loc="upper left")
    else:
        _undefined_note(axes, "no rows to calibrate")
    title = "Calibration" + (f" (ECE {ece:.3f})" if ece is not None else "")
    axes.set(
        title=title, xlabel="Mean predicted probability", ylabel="Observed rate", xlim=(0, 1), ylim=(0, 1.02)
    )
    return _save(figure, path)


def plot_feature_importance(table: pl.DataFrame, path: str | Path, top: int = 15) -> Path:
    """Horizontal bars of mean |SHAP| for the `top` features of a `feature_importance_table`, as a PNG."""
    shown = table.sort("mean_abs_shap", descending=True).head(top)
    figure = _figure(6.5, max(2.5, 0.3 * shown.height + 1.2))
    axes = figure.add_subplot()
    axes.barh(shown["feature"].to_list()[::-1], shown["mean_abs_shap"].to_numpy()[::-1], color="C0")
    axes.set(title=f"Feature importance (top {shown.height})", xlabel="Mean |SHAP contribution| (raw score)")
    return _save(figure, path)


def plot_residuals(y_true: Any, y_pred: Any, path: str | Path) -> Path:
    """Predicted against actual days and the residual distribution (a sample of at most 20,000 rows), as a PNG."""
    y = _finite(y_true, "y_true")
    pred = _finite(y_pred, "y_pred")
    _same_length(y_true=y, y_pred=pred)
    if len(y) > _RESIDUAL_SAMPLE:
        rows = np.random.default_rng(0).choice(len(y), _RESIDUAL_SAMPLE, replace=False)
        y, pred = y[rows], pred[rows]
    figure = _figure(10.0, 4.5)
    scatter, histogram = figure.subplots(1, 2)
    if len(y):
        limit = float(max(y.max(), pred.max(), 1.0))
        scatter.scatter(y, pred, s=4, alpha=0.3, color="C0")
        scatter.plot([0, limit], [0, limit], linestyle="--", color="gray", label="perfect prediction")
        scatter.legend(loc="upper left")
        histogram.hist(pred - y, bins=50, color="C0")
        histogram.axvline(0, linestyle="--", color="gray")
    else:
        _undefined_note(scatter, "no rows")
    scatter.set(title="Predicted vs actual cycle time", xlabel="Actual days", ylabel="Predicted days")
    histogram.set(title="Residuals (predicted - actual)", xlabel="Days", ylabel="Tasks")
    return _save(figure, path)


# --------------------------------------------------------------------------------------------------
# report page


def _format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format_value(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0 1rem 1rem 0; } img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; } .scroll { overflow-x: auto; }
"""


def write_evaluation_html(
    model_name: str,
    metrics: Mapping[str, Any],
    slices: pl.DataFrame | None,
    plots: Mapping[str, str | Path],
    path: str | Path,
) -> Path:
    """A self-contained HTML page (plots inlined as base64 PNG): metrics, slice metrics, charts."""
    sections = [
        f"<h1>Evaluation: {html.escape(model_name)}</h1>",
        "<h2>Metrics</h2>",
        _html_table(["metric", "value"], list(metrics.items())),
        '<p class="note">n/a: undefined on this data (for example a single class).</p>',
    ]
    if slices is not None and slices.height:
        evaluated = slices.filter(pl.col("metric") != SKIPPED_METRIC)
        skipped = slices.filter(pl.col("metric") == SKIPPED_METRIC)
        sections.append("<h2>Metrics by slice</h2>")
        if evaluated.height:
            wide = evaluated.pivot(on="metric", index=["slice_column", "slice_value", "n"], values="value")
            sections.append(_html_table(wide.columns, wide.rows()))
        if skipped.height:
            listed = ", ".join(
                f"{column}={value} (n={n})"
                for column, value, n in skipped.select("slice_column", "slice_value", "n").iter_rows()
            )
            sections.append(f'<p class="note">Too small to evaluate: {html.escape(listed)}.</p>')
    if plots:
        sections.append("<h2>Charts</h2>")
    for name, plot_path in plots.items():
        encoded = base64.b64encode(Path(plot_path).read_bytes()).decode("ascii")
        sections.append(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evaluation: {html.escape(model_name)}</title><style>{_PAGE_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
