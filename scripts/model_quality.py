"""Model quality, measured: the whole lifecycle on the embedded sample and on the real Apache Jira issues.

Runs ingestion -> cleaning -> features -> splits -> training -> evaluation -> gate in process, with
the default TrainingConfig (what `make run` uses), on

- the embedded sample: the Makefile's SAMPLE_TASKS generated with the default seed, as `make run` lands it;
- the 501 real Apache Jira issues of ../shared/data/jira-apache-ase2015 (skipped when absent),

and writes the test metrics, with a bootstrap 95% interval (test windows are small on the real data),
into the `quality` section of docs/BENCHMARKS.md.

    .venv/bin/python scripts/model_quality.py            # about a minute on 2 cores
    .venv/bin/python scripts/model_quality.py --no-write
"""

from __future__ import annotations

import argparse
import json
import os
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
BOOTSTRAP = 2000
# The reference the issue names: Choetkiertikul et al. (EMSE 2017) report 0.83 average ROC-AUC for
# predicting delayed issues on eight open-source Jira projects.
REFERENCE = (
    "Choetkiertikul et al. (EMSE 2017): 0.83 average ROC-AUC, eight Jira projects, one model per project"
)


def _bootstrap(metric, y: np.ndarray, p: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(BOOTSTRAP):
        idx = rng.integers(0, len(y), len(y))
        value = metric(y[idx], p[idx])
        if value is not None and np.isfinite(value):
            values.append(value)
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def run_lifecycle(landing: Path, work: Path) -> dict:
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLOPS_MLFLOW_ARTIFACTS"] = str(work / "artifacts")
    import dagster as dg
    import polars as pl

    from mlops_assets.definitions import build_resources, defs
    from mlops_assets.lib import registry, reporting, training
    from mlops_assets.lib.metrics import classification_metrics
    from mlops_assets.lib.warehouse import Warehouse

    started = time.perf_counter()
    result = dg.materialize(
        list(defs.assets),
        selection=dg.AssetSelection.groups("ingestion", "cleaning", "features", "training", "evaluation"),
        resources=build_resources(str(work / "wh.duckdb"), str(landing), str(work / "reports")),
        raise_on_error=False,
    )
    if not result.success:
        raise SystemExit(
            f"lifecycle failed on {landing}: "
            + "; ".join(e.step_failure_data.error.message for e in result.get_step_failure_events())
        )
    seconds = time.perf_counter() - started
    wh = Warehouse(work / "wh.duckdb")
    checks = {
        f"{e.asset_key.to_user_string()}:{e.check_name}": (
            e.passed,
            {k: v.value for k, v in e.metadata.items()},
        )
        for e in result.get_asset_check_evaluations()
        if e.asset_key.path[0] in ("models", "reporting")
    }
    out: dict = {"seconds": seconds, "checks": checks, "models": {}}
    for name, spec in training.MODEL_SPECS.items():
        row = wh.query(
            f"SELECT run_id, metrics FROM models.{name}_candidate ORDER BY recorded_at DESC LIMIT 1"
        )
        metrics = json.loads(row["metrics"][0])
        parts = reporting.split_frames(wh.read_table(f"model_input.{name}_splits"))
        model = registry.load_run_model(row["run_id"][0], os.environ["MLFLOW_TRACKING_URI"])
        test = parts["test"]
        y = training.original_scale(spec, test["target"].cast(pl.Float64).to_numpy())
        p = model.predict_features(test)
        if spec.kind == "binary":
            interval = _bootstrap(lambda a, b: classification_metrics(a, b).get("roc_auc"), y, p)
        else:
            base = training.baseline_prediction(spec, parts["train"], test)
            y_all = np.column_stack([y, base])
            interval = _bootstrap(
                lambda a, b: 1 - np.mean(np.abs(a[:, 0] - b)) / np.mean(np.abs(a[:, 0] - a[:, 1])), y_all, p
            )
        decision = wh.query(
            f"SELECT promoted, reason FROM models.{name}_champion ORDER BY recorded_at DESC LIMIT 1"
        )
        out["models"][name] = {
            "rows": {s: parts[s].height for s in ("train", "validation", "test")},
            "positive_rate": {s: float(parts[s]["target"].mean()) for s in ("train", "test")}
            if spec.kind == "binary"
            else None,
            "metrics": metrics,
            "interval": interval,
            "gate": decision.row(0, named=True) if decision.height else None,
        }
    return out


def to_markdown(results: dict[str, dict]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {now}; command: `python scripts/model_quality.py`; default TrainingConfig (15 trials, seed 42, "
        f"3 CV folds), the lifecycle in process. Intervals: {BOOTSTRAP} bootstrap resamples of the test window.",
        "",
        "| data | model | train / val / test rows | test metric | 95% interval | CV on train | floor | whole lifecycle (s) |",
        "|---|---|---|---|---|---|---|---:|",
    ]
    for data, res in results.items():
        for name, m in res["models"].items():
            rows = " / ".join(f"{v:,}" for v in m["rows"].values())
            met = m["metrics"]
            lo, hi = m["interval"]
            if name == "late_risk":
                metric = f"ROC-AUC **{met['test_roc_auc']:.3f}** (PR-AUC {met['test_pr_auc']:.3f}, Brier {met['test_brier']:.3f})"
                cv = f"ROC-AUC {met.get('cv_roc_auc_mean', float('nan')):.3f} +- {met.get('cv_roc_auc_std', float('nan')):.3f}"
                floor = (
                    ">= 0.80 on the sample: " + ("met" if met["test_roc_auc"] >= 0.80 else "missed")
                    if data.startswith("embedded")
                    else REFERENCE
                )
                interval = f"{lo:.3f} - {hi:.3f}"
                rates = m["positive_rate"]
                rows += f" (late: train {rates['train']:.0%}, test {rates['test']:.0%})"
            else:
                metric = (
                    f"MAE **{met['test_mae']:.2f} d** vs baseline {met['test_baseline_mae']:.2f} d: "
                    f"**{met['test_mae_improvement']:.0%} lower**"
                )
                cv = f"MAE {met.get('cv_mae_mean', float('nan')):.2f} +- {met.get('cv_mae_std', float('nan')):.2f} d"
                floor = (
                    ">= 20% below the baseline on the sample: "
                    + ("met" if met["test_mae_improvement"] >= 0.2 else "missed")
                    if data.startswith("embedded")
                    else "beats the per-project median baseline: "
                    + ("yes" if met["test_mae"] < met["test_baseline_mae"] else "no")
                )
                interval = f"improvement {lo:.0%} - {hi:.0%}"
            lines.append(
                f"| {data} | {name} | {rows} | {metric} | {interval} | {cv} | {floor} | {res['seconds']:.0f} |"
            )
    lines += ["", "Checks on these runs (warnings included):", ""]
    for data, res in results.items():
        for key, (passed, meta) in sorted(res["checks"].items()):
            lines.append(
                f"- {data}, `{key}`: {'passed' if passed else '**failed**'} {json.dumps(meta, default=str)}"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    from mlops_assets.cli import main as cli
    from mlops_assets.devtools import bench

    tasks = int(re.search(r"^SAMPLE_TASKS \?= (\d+)$", (ROOT / "Makefile").read_text(), re.M).group(1))
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mlops-quality-") as tmp:
        sample = Path(tmp) / "sample"
        cli(["generate", "--tasks", str(tasks), "--out", str(sample / "landing")])
        results[f"embedded sample ({tasks:,} tasks)"] = run_lifecycle(sample / "landing", sample)
        if REAL_JIRA.exists():
            real = Path(tmp) / "apache"
            shutil.copytree(REAL_JIRA, real / "landing" / "jira")
            results["real Apache Jira (501 issues)"] = run_lifecycle(real / "landing", real)
        else:
            print(f"real data {REAL_JIRA} is absent: only the sample is measured", file=sys.stderr)
    md = to_markdown(results)
    print(md)
    if not args.no_write:
        bench.write_section(md, path=ROOT / "docs" / "BENCHMARKS.md", section="quality")
    return 0


if __name__ == "__main__":
    sys.exit(main())
