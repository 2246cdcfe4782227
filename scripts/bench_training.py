"""Training at scale (issue 14): this code's training against the search on every train row, same splits.

usage: python scripts/bench_training.py --work DIR [--models late_risk,cycle_time] [--trials 15]
           [--timeout 300] [--reference-trials N] [--reference-timeout S] [--no-reference]
           [--parallel-trials N] [--seed N]

DIR is a work dir of `mlops-assets bench` whose warehouse holds model_input.<model>_splits (e.g. after
`mlops-assets bench --tasks 1000000 --data-only --work DIR` and the splits stages). For each model
it trains twice on the same splits, one after the other in this process:

* **now**: ``TrainConfig(n_trials, timeout_s)`` with its default ``tune_rows`` (trials on the most recent
  train rows, one refit on all of them);
* **reference**: the same budget with ``tune_rows=0``: every trial fits every train row (the training
  before issue 14).

and prints one table: wall time, LightGBM's share, trials run, trees and leaves of the kept forest,
the per-row cost of its SHAP reasons (LightGBM's ``pred_contrib`` on 20,000 test rows) and the test
metrics (late_risk ROC-AUC, cycle_time MAE), plus the differences the issue bounds (0.005 ROC-AUC, 2% MAE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from mlops_assets.lib import reporting, training
from mlops_assets.lib.warehouse import Warehouse

PRIMARY = {"late_risk": "test_roc_auc", "cycle_time": "test_mae"}


def forest_shape(booster) -> dict:
    dump = booster.dump_model()
    leaves = [info["num_leaves"] for info in dump["tree_info"]]
    return {"trees": len(leaves), "leaves": int(sum(leaves)), "max_leaves": int(max(leaves, default=0))}


def contrib_us_per_row(model: training.TrainedModel, test) -> float:
    rows = test.head(20_000)
    matrix = training.to_matrix(rows, model.features, model.category_levels)
    started = time.perf_counter()
    model.booster.predict(matrix, pred_contrib=True, num_threads=1)
    return (time.perf_counter() - started) / max(rows.height, 1) * 1e6


def run(name: str, parts: dict, config: training.TrainConfig) -> dict:
    spec = training.get_spec(name)
    lines: list[str] = []
    started = time.perf_counter()
    model = training.train_model(spec, parts, config, progress=lines.append)
    wall = time.perf_counter() - started
    for line in lines:
        print("   ", line, flush=True)
    return {
        "model": name,
        "tune_rows": config.tune_rows,
        "wall_s": wall,
        "lightgbm_s": model.lightgbm_seconds,
        "trials": model.n_trials,
        **forest_shape(model.booster),
        "contrib_us_per_row": contrib_us_per_row(model, parts["test"]),
        "metric": PRIMARY[name],
        "value": model.metrics[PRIMARY[name]],
        "val": {k: v for k, v in model.metrics.items() if k.startswith(("val_", "test_", "cv_"))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--models", default="late_risk,cycle_time")
    parser.add_argument("--trials", type=int, default=training.TrainConfig.n_trials)
    parser.add_argument("--timeout", type=float, default=training.TrainConfig.timeout_s)
    parser.add_argument("--reference-trials", type=int, default=None, help="default: --trials")
    parser.add_argument("--reference-timeout", type=float, default=None, help="default: --timeout")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--parallel-trials", type=int, default=training.TrainConfig.parallel_trials,
                        help="trials fit at a time (both trainings)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=training.TrainConfig.seed, help="the search's seed")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    wh = Warehouse(args.work / "warehouse.duckdb")
    rows = []
    for name in args.models.split(","):
        parts = reporting.split_frames(wh.read_table(f"model_input.{name}_splits"))
        print(
            f"{name}: train {parts['train'].height:,}, validation {parts['validation'].height:,}, "
            f"test {parts['test'].height:,} rows",
            flush=True,
        )
        now = training.TrainConfig(
            n_trials=args.trials, timeout_s=args.timeout, parallel_trials=args.parallel_trials, seed=args.seed
        )
        rows.append(run(name, parts, now))
        print(json.dumps(rows[-1]), flush=True)
        if not args.no_reference:
            ref = training.TrainConfig(
                n_trials=args.reference_trials or args.trials,
                timeout_s=args.reference_timeout or args.timeout,
                tune_rows=0,
                sorted_metric_every=1,
                parallel_trials=args.parallel_trials,
                seed=args.seed,
            )
            rows.append(run(name, parts, ref))
            print(json.dumps(rows[-1]), flush=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {load}, `python {' '.join(sys.argv)}`\n")
    print(
        "| model | training | wall (s) | LightGBM (s) | trials | trees | leaves (max/tree) | pred_contrib (us/row) | test metric |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        how = (
            "all rows every trial (reference)"
            if r["tune_rows"] == 0
            else f"trials on latest {r['tune_rows']:,}, refit"
        )
        print(
            f"| {r['model']} | {how} | {r['wall_s']:.1f} | {r['lightgbm_s']:.1f} | {r['trials']} | {r['trees']:,} | "
            f"{r['leaves']:,} ({r['max_leaves']}) | {r['contrib_us_per_row']:.0f} | {r['metric']} {r['value']:.4f} |"
        )
    for name in args.models.split(","):
        pair = [r for r in rows if r["model"] == name]
        if len(pair) == 2:
            new, ref = pair
            if name == "late_risk":
                print(
                    f"- {name}: ROC-AUC {new['value']:.4f} vs {ref['value']:.4f}: {new['value'] - ref['value']:+.4f} "
                    f"(bound -0.005); time x{ref['wall_s'] / new['wall_s']:.1f} faster"
                )
            else:
                change = (new["value"] - ref["value"]) / ref["value"] * 100
                print(
                    f"- {name}: MAE {new['value']:.3f} vs {ref['value']:.3f}: {change:+.1f}% (bound +2%); "
                    f"time x{ref['wall_s'] / new['wall_s']:.1f} faster"
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
