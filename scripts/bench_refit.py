"""The refit's tree size at scale (issue 14): fit the best trial's parameters on all train rows with other leaves.

usage: python scripts/bench_refit.py --work DIR --model late_risk [--variants JSON]

DIR is a work dir of `mlops-assets bench` whose warehouse holds model_input.<model>_splits. The script
runs a search like the graph's once (the same trials and learning-rate range on the latest 20,000 train
rows, early-stopped on the first 20,000 validation rows; cached in DIR/search_<model>.json). Its rows are
binned on their own, not with all train rows as in the graph, so its best parameters can differ from the
graph's (at 1M late_risk: 8 tuned leaves here, 4 in the graph). Then for
each variant (a JSON list of LightGBM parameter overrides, plus optional "rounds", "patience",
"min_delta") fits those parameters on every train row, early-stopped on the whole validation split, and
prints wall time, trees, the validation metric and the test metric (late_risk ROC-AUC, cycle_time MAE
in days). This is how `TrainConfig.refit_grow_from` / `refit_max_rounds` were chosen
(docs/BENCHMARKS.md, "Whole graph, as `make run` runs it"). One thread, as the trials, unless --threads;
--params refits given parameters (a candidate's logged lgb.* params) instead of a search's best.

    python scripts/bench_refit.py --work /tmp/w1m --model late_risk --variants '[{"num_leaves": 16}, {"num_leaves": 32}]'
    python scripts/bench_refit.py --work DIR --model cycle_time --threads 2 --params "$LOGGED" --variants '[{"bagging_fraction": 0.5}]'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np

from mlops_assets.lib import reporting, training
from mlops_assets.lib.warehouse import Warehouse


def search_params(work: Path, name: str, parts: dict) -> dict:
    """The best trial's parameters of a search on the latest 20,000 train rows (cached in the work dir)."""
    cached = work / f"search_{name}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    small = {
        "train": parts["train"].tail(20_000),
        "validation": parts["validation"].head(20_000),
        "test": parts["test"].head(5_000),
    }
    config = training.TrainConfig(
        tune_rows=0, learning_rate=(0.15, 0.2)
    )  # the graph's trials search from 0.15
    params = training.train_model(training.get_spec(name), small, config).params
    cached.write_text(json.dumps(params))
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--model", default="late_risk", choices=sorted(training.MODEL_SPECS))
    parser.add_argument("--variants", default='[{}, {"num_leaves": 16}, {"num_leaves": 32}]')
    parser.add_argument("--params", default=None, help="the parameters to refit (JSON, e.g. a candidate's logged "
                        "lgb.* params) instead of a search's best")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads of the refits")
    args = parser.parse_args()

    parts = reporting.split_frames(
        Warehouse(args.work / "warehouse.duckdb").read_table(f"model_input.{args.model}_splits")
    )
    spec = training.get_spec(args.model)
    feats = spec.feature_columns()
    params = json.loads(args.params) if args.params else search_params(args.work, args.model, parts)
    print("search parameters:", params, flush=True)
    train, val, test = parts["train"], parts["validation"], parts["test"]
    levels = training.category_levels(train, training.categorical_columns(train, feats))
    dataset = {"feature_pre_filter": False, "verbosity": -1, "num_threads": 1}
    rows = lgb.Dataset(
        training.to_matrix(train, feats, levels),
        train["target"].to_numpy(),
        params=dataset,
        free_raw_data=False,
    ).construct()
    validation = lgb.Dataset(
        training.to_matrix(val, feats, levels), val["target"].to_numpy(), reference=rows, params=dataset
    ).construct()
    test_x = training.to_matrix(test, feats, levels)
    y_test = training.original_scale(spec, test["target"].to_numpy())
    print(f"train {train.height:,}, validation {val.height:,}, test {test.height:,} rows", flush=True)
    for variant in json.loads(args.variants):
        fit = {k: v for k, v in params.items() if k != "num_boost_round"}
        rounds = variant.pop("rounds", 3000)
        patience = variant.pop("patience", 100)
        min_delta = variant.pop("min_delta", 0.0)
        fit.update({"num_threads": args.threads, **variant})
        started = time.perf_counter()
        booster = lgb.train(
            fit,
            rows,
            num_boost_round=rounds,
            valid_sets=[validation],
            valid_names=["validation"],
            keep_training_booster=True,
            callbacks=[
                lgb.early_stopping(patience, first_metric_only=True, verbose=False, min_delta=min_delta)
            ],
        )
        seconds = time.perf_counter() - started
        trees = max(booster.best_iteration, 1)
        raw = booster.predict(test_x, num_iteration=trees)
        prediction = np.clip(np.expm1(raw), 0, None) if spec.log_target else raw
        metric = training.score(spec, y_test, prediction, "test")[spec.gate_metric]
        print(
            json.dumps(
                {
                    "variant": {**variant, "rounds": rounds, "patience": patience, "min_delta": min_delta},
                    "seconds": round(seconds, 1),
                    "trees": trees,
                    "validation": round(booster.best_score["validation"][spec.eval_metric], 4),
                    spec.gate_metric: round(metric, 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
