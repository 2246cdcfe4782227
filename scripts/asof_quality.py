"""As-of risk, measured (issue 13): late_risk ROC-AUC per prediction point, snapshot training vs today's model.

On the embedded sample (the Makefile's SAMPLE_TASKS, default seed) and on the 501 real Apache Jira
issues of ../shared/data/jira-apache-ase2015 (with their changelogs and comments; skipped when absent):

1. ingestion + cleaning (the library code the assets run), into a temporary warehouse;
2. **today**: the model as it was before as-of features: creation rows only, the creation-time feature
   set (no event features), trained with the default TrainingConfig;
3. **snapshot**: the same training on ``features.task_snapshots`` rows (each task at creation and later
   points while open, every feature), split by task and prediction time as the splits asset does;
4. test ROC-AUC of both at each prediction point (creation / midway / 7 days before the deadline) on
   the same test tasks, with a 95% bootstrap interval (test windows are small on real data).

    .venv/bin/python scripts/asof_quality.py              # a few minutes on 2 cores
    .venv/bin/python scripts/asof_quality.py --no-write   # print only

Writes the ``asof-quality`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REAL_JIRA = ROOT.parent / "shared" / "data" / "jira-apache-ase2015" / "issues"
BOOTSTRAP = 1000
POINTS = ("creation", "midway", "7d_before_deadline", "week_1", "week_4")


def _clean(landing: Path, work: Path):
    """Ingestion and cleaning (the lib code the assets call) into a temporary warehouse."""
    from mlops_assets.lib import cleaning, ingestion
    from mlops_assets.lib.warehouse import Warehouse

    wh = Warehouse(work / "wh.duckdb")
    for source in ingestion.SOURCES:
        ingestion.ingest_source(wh, landing, source)
    tables, _ = cleaning.build_clean(wh)
    return tables["clean.tasks"], tables["clean.task_events"]


def _auc_interval(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    values = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            values.append(roc_auc_score(y[idx], p[idx]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def measure(tasks, events) -> dict:
    import polars as pl
    from sklearn.metrics import roc_auc_score

    from mlops_assets.lib import asof, snapshots, training
    from mlops_assets.lib import splits as splits_lib
    from mlops_assets.lib.gate import data_as_of

    spec = training.MODEL_SPECS["late_risk"]
    as_of = data_as_of(tasks)
    started = time.perf_counter()
    snap = snapshots.task_snapshots(tasks, events, as_of)
    frame = training.model_input(spec, tasks, snap, as_of)
    parts = splits_lib.time_split(frame)
    creation_only = [c for c in spec.feature_columns() if c not in ("age_days", "days_to_deadline", "has_assignee",
                                                                     *asof.STATE_FEATURES)]  # fmt: skip
    today_spec = training.ModelSpec(**{**spec.__dict__, "features": tuple(creation_only)})
    today_parts = {k: v.filter(pl.col("point") == "creation") for k, v in parts.items()}
    cfg = training.TrainConfig(n_trials=15, cv_folds=3)  # the TrainingConfig defaults `make run` uses
    models = {"today": (today_spec, training.train_model(today_spec, today_parts, cfg)),
              "snapshot": (spec, training.train_model(spec, parts, cfg))}  # fmt: skip
    out: dict = {"rows": {k: v.height for k, v in parts.items()}, "tasks": {k: v["task_id"].n_unique() for k, v in parts.items()},
                 "seconds": time.perf_counter() - started, "points": {}}  # fmt: skip
    test = parts["test"]
    # the same tasks at creation and 7 days before their deadline: what the later point buys them
    late_ids = test.filter(pl.col("point") == "7d_before_deadline").select("task_id")
    paired = {"creation (tasks with a 7d row)": test.filter(pl.col("point") == "creation").join(late_ids, on="task_id", how="semi"),
              "all test rows (the asset's test_roc_auc)": test}  # fmt: skip
    for point in (*POINTS, *paired):
        rows = paired[point] if point in paired else test.filter(pl.col("point") == point)
        y = rows["target"].to_numpy()
        entry = {"n": rows.height, "late": float(y.mean()) if len(y) else float("nan")}
        for name, (_spec, trained) in models.items():
            if rows.height and 0 < y.sum() < len(y):
                p = trained.predict(rows)
                entry[name] = (float(roc_auc_score(y, p)), *_auc_interval(y, p))
        out["points"][point] = entry
    return out


def to_markdown(results: dict[str, dict], command: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"Measured {now}; command: `{command}`; default TrainConfig for both models; late_risk test ROC-AUC per "
             f"prediction point with a 95% interval ({BOOTSTRAP} bootstrap resamples of the test rows). *today*: creation "
             "rows and creation-time features only (the model before issue 13); *snapshot*: `features.task_snapshots` "
             "rows, every feature, split by task and prediction time.", "",
             "| data | rows train / val / test (tasks) | point | test rows (late) | today | snapshot |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for data, res in results.items():
        rows = " / ".join(
            f"{res['rows'][s]:,} ({res['tasks'][s]:,})" for s in ("train", "validation", "test")
        )
        for point, e in res["points"].items():
            cells = []
            for name in ("today", "snapshot"):
                v = e.get(name)
                cells.append(f"**{v[0]:.3f}** ({v[1]:.3f}-{v[2]:.3f})" if v else "n/a (one class)")
            lines.append(
                f"| {data} | {rows} | {point} | {e['n']:,} ({e['late']:.0%}) | {cells[0]} | {cells[1]} |"
            )
        snap = {p: res["points"][p].get("snapshot") for p in (*POINTS, "creation (tasks with a 7d row)")}
        today = res["points"]["creation"].get("today")
        if snap["creation"] and snap["7d_before_deadline"] and today:
            gain = snap["7d_before_deadline"][0] - snap["creation"][0]
            same = snap["creation (tasks with a 7d row)"]
            paired = (
                f"; same tasks at creation {same[0]:.3f}: **{snap['7d_before_deadline'][0] - same[0]:+.3f}**"
                if same
                else ""
            )
            lines.append(f"| {data} | | **quality bar** | | at creation: snapshot {snap['creation'][0]:.3f} vs today "
                         f"{today[0]:.3f} ({'no worse' if snap['creation'][0] >= today[0] - 0.005 else 'worse'}) | "
                         f"7 days before the deadline - all tasks at creation: **{gain:+.3f}** "
                         f"({'met' if gain >= 0.05 else 'missed'}: >= +0.05){paired} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/BENCHMARKS.md alone")
    parser.add_argument(
        "--tasks", type=int, default=None, help="sample size (default: the Makefile's SAMPLE_TASKS)"
    )
    args = parser.parse_args()
    from mlops_assets.cli import main as cli
    from mlops_assets.devtools import bench

    tasks = args.tasks or int(
        re.search(r"^SAMPLE_TASKS \?= (\d+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    )
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-asof-") as tmp:
        sample = Path(tmp) / "sample"
        cli(["generate", "--tasks", str(tasks), "--out", str(sample / "landing")])
        results[f"embedded sample ({tasks:,} tasks)"] = measure(*_clean(sample / "landing", sample))
        if REAL_JIRA.exists():
            real = Path(tmp) / "apache"
            shutil.copytree(REAL_JIRA, real / "landing" / "jira")
            results["real Apache Jira (501 issues)"] = measure(*_clean(real / "landing", real))
        else:
            print(f"real data {REAL_JIRA} is absent: only the sample is measured", file=sys.stderr)
    command = "python scripts/asof_quality.py" + (f" --tasks {args.tasks}" if args.tasks else "")
    md = to_markdown(results, command)
    print(md)
    if not args.no_write:
        bench.write_section(md, path=ROOT / "docs" / "BENCHMARKS.md", section="asof-quality")
    return 0


if __name__ == "__main__":
    sys.exit(main())
