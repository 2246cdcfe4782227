"""Benchmark the batch table serving.task_risk_scores: scoring.score_open_tasks on ~1,000,000 open tasks.

Builds (once, cached under --cache) a clean.tasks-shaped table from the seeded synthetic generator:
``--base-tasks`` synthetic tasks, whose open ones are repeated with new task ids until there are
``--open-tasks`` open tasks (the generator leaves about 17% open; repeating keeps the history table
near the size of a real one with that many open tasks, and the per-row work is the same), and the
sandbox champions of scripts/bench_serving.py. The champions are compiled to native code once per
model version (``scoring.load_champions`` -> ``fast_trees``, cached under ``--cache``/forests): that
one-time compile is timed apart (``--cold`` clears the cache first). Then times ``score_open_tasks``
in a fresh process per run (wall and CPU time, peak RSS of that process, the load average) and
writes the figures into docs/benchmarks/serving.md between the ``batch`` markers.

    .venv/bin/python scripts/bench_scoring.py                   # about 2 minutes on 2 cores
    .venv/bin/python scripts/bench_scoring.py --open-tasks 100000 --runs 1 --out /tmp/serving.md
    .venv/bin/python scripts/bench_scoring.py --work /tmp/w1m --out /tmp/serving.md  # 1M-trained champions
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- batch:start -->", "<!-- batch:end -->"


def _prepare(args: argparse.Namespace) -> tuple[Path, str]:
    import polars as pl

    from mlops_assets.lib import scoring, training
    from mlops_assets.serving import sandbox

    args.cache.mkdir(parents=True, exist_ok=True)
    if args.work:  # the champions and clean.tasks of a `mlops-assets bench --work DIR` run
        import duckdb

        tracking_uri = f"sqlite:///{args.work.resolve()}/mlflow.db"
        table = args.cache / f"tasks_{args.work.resolve().name}_{args.open_tasks}.parquet"
    else:
        box_root = args.cache / "sandbox"
        box = sandbox.empty_sandbox(box_root)
        if not (box_root / "ready").exists():
            config = training.TrainConfig(
                n_trials=8, timeout_s=120, cv_folds=0
            )  # as scripts/bench_serving.py
            box = sandbox.build_sandbox(box_root, n_tasks=6000, config=config)
            (box_root / "ready").write_text("ok")
        tracking_uri = box.tracking_uri
        table = args.cache / f"tasks_{args.base_tasks}_{args.open_tasks}.parquet"
    if not table.exists():
        if args.work:
            with duckdb.connect(str(args.work / "warehouse.duckdb"), read_only=True) as con:
                base = con.sql("select * from clean.tasks").pl()
        else:
            base = sandbox.clean_tasks(args.base_tasks, seed=21)
        is_open = pl.col("status_category").fill_null("todo") != "done"
        open_part = base.filter(is_open)
        copies, parts = -(-args.open_tasks // max(open_part.height, 1)), [base.filter(~is_open)]
        for copy in range(copies):
            parts.append(open_part.with_columns(pl.col("task_id") + f"~{copy}"))
        tasks = pl.concat(parts)
        extra = scoring.open_tasks(tasks).height - args.open_tasks  # trim the last copy to the exact count
        if extra > 0:
            tasks = tasks.head(tasks.height - extra)
        tasks.write_parquet(table)
    return table, tracking_uri


def _compile(cache: Path, tracking_uri: str, cold: bool) -> dict:
    """Compile the champions into the forest cache (a fresh process; timed) unless they are there."""
    import shutil

    forests = cache / "forests"
    if cold:
        shutil.rmtree(forests, ignore_errors=True)
    code = (
        "import json, sys, time; sys.path.insert(0, sys.argv[3]); from mlops_assets.lib import registry, scoring; "
        "t = time.perf_counter(); scoring.load_champions(registry.get_client(sys.argv[1]), cache_dir=sys.argv[2]); "
        "print('JSON ' + json.dumps({'compile_s': time.perf_counter() - t}))"
    )
    cached = forests.exists() and any(forests.iterdir())
    out = subprocess.run([sys.executable, "-c", code, tracking_uri, str(forests), str(ROOT)], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    result = json.loads(next(line for line in out.splitlines() if line.startswith("JSON "))[5:])
    return {**result, "cached": cached, "load": os.getloadavg()}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(table: str, tracking_uri: str, threads: int | None, cache: Path) -> None:
    """One timed run in this process; prints a JSON line."""
    import polars as pl

    from mlops_assets.lib import features, registry, scoring

    tasks = pl.read_parquet(table)
    started = time.perf_counter()
    champions = scoring.load_champions(registry.get_client(tracking_uri), cache_dir=cache / "forests")
    champions_s = time.perf_counter() - started
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    load = os.getloadavg()
    cpu_before = _cpu_s()
    started = time.perf_counter()
    history = features.History.from_tasks(tasks)
    history_s = time.perf_counter() - started
    scores = scoring.score_open_tasks(tasks, champions["late_risk"], champions["cycle_time"],
                                      dt.datetime.now(dt.UTC), history=history, num_threads=threads)  # fmt: skip
    total_s = time.perf_counter() - started
    cpu_s = _cpu_s() - cpu_before
    print("JSON " + json.dumps({
        "n_tasks": tasks.height, "n_open": scores.height, "history_s": history_s, "total_s": total_s, "cpu_s": cpu_s,
        "explained": scores["reason_1"].is_not_null().sum(),
        "at_risk": scores.filter(pl.col("late_risk") >= scoring.MEDIUM_FROM).height,
        "with_deadline": scores["late_risk"].is_not_null().sum(),
        "rss_loaded_gib": rss_loaded, "rss_peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load": load, "trees": {n: m.booster.num_trees() for n, m in champions.items()}, "champions_s": champions_s,
    }))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-tasks", type=int, default=1_000_000)
    parser.add_argument(
        "--base-tasks", type=int, default=1_200_000, help="synthetic tasks before repeating open ones"
    )
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="LightGBM threads (default: every core)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench_scoring_cache"))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "serving.md")
    parser.add_argument(
        "--cold", action="store_true", help="clear the compiled-model cache first (times the compile)"
    )
    parser.add_argument("--work", type=Path, default=None,
                        help="score with the champions and clean.tasks of a `mlops-assets bench --work DIR` run "
                             "(e.g. champions trained on 1M tasks), its open tasks repeated to --open-tasks")  # fmt: skip
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child, args.threads, args.cache)
        return 0

    started = time.perf_counter()
    table, tracking_uri = _prepare(args)
    print(f"data ready in {time.perf_counter() - started:.0f} s: {table}")
    args.compiled = _compile(args.cache, tracking_uri, args.cold)
    print(f"champions {'loaded from the cache' if args.compiled['cached'] else 'compiled'} in "
          f"{args.compiled['compile_s']:.1f} s (load {args.compiled['load'][0]:.2f})")  # fmt: skip
    runs = []
    for _ in range(args.runs):
        command = [sys.executable, __file__, "--child", str(table), tracking_uri, "--cache", str(args.cache)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        result = json.loads(next(line for line in out.splitlines() if line.startswith("JSON "))[5:])
        runs.append(result)
        print(f"{result['n_open']:,} open tasks: {result['total_s']:.1f} s (history {result['history_s']:.1f} s), "
              f"peak RSS {result['rss_peak_gib']:.2f} GiB, load {result['load'][0]:.2f}")  # fmt: skip
    _write(args, runs)
    return 0


def _write(args: argparse.Namespace, runs: list[dict]) -> None:
    first = runs[0]
    totals = [r["total_s"] for r in runs]
    history = [r["history_s"] for r in runs]
    rss = [r["rss_peak_gib"] for r in runs]
    cpu_s = [r["cpu_s"] for r in runs if "cpu_s" in r]
    cpu_text = f"; CPU time {min(cpu_s):.1f}-{max(cpu_s):.1f} s (user+system, all threads)" if cpu_s else ""
    compiled = args.compiled
    compile_text = (
        f"loaded with their compiled code from the cache in {max(r['champions_s'] for r in runs):.1f} s at most "
        "(registry included); "
        + ("already compiled before this run (`--cold` times the compile)" if compiled["cached"] else
           f"compiled before the runs in {compiled['compile_s']:.1f} s (once per model version; load "
           f"{compiled['load'][0]:.2f})")
    )  # fmt: skip
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    source, champions = (
        (f"clean.tasks of {args.work}", f"trained by that run on {args.work}")
        if args.work
        else (f"{args.base_tasks:,} synthetic tasks", "the sandbox of bench_serving.py")
    )
    text = f"""{START}
### Batch table serving.task_risk_scores (`scoring.score_open_tasks`)

Command: `.venv/bin/python {" ".join(["scripts/bench_scoring.py", *sys.argv[1:]])}` (each run a fresh process)

- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, {cpu}, {mem:.1f} GiB RAM;
  load average (1 min) at the start of each run: {", ".join(f"{r['load'][0]:.2f}" for r in runs)}
- data: {first["n_tasks"]:,} tasks in the table, {first["n_open"]:,} open ({source}, the open
  ones repeated under new task ids); {first["with_deadline"]:,} open tasks with a deadline, {first["at_risk"]:,} of them
  medium/high risk, {first["explained"]:,} with their three reasons; champions: late_risk
  {first["trees"]["late_risk"]} trees, cycle_time {first["trees"]["cycle_time"]} trees ({champions})
- champions (not in the wall time below): {compile_text}
- wall time of `score_open_tasks` (History.from_tasks included): {min(totals):.1f}-{max(totals):.1f} s over {len(runs)} runs{cpu_text}
  (of which History.from_tasks {min(history):.1f}-{max(history):.1f} s); peak RSS of the process {min(rss):.2f}-{max(rss):.2f} GiB
  (the table loaded: {first["rss_loaded_gib"]:.2f} GiB)
- target <= 20 s on 2 cores: {"met" if max(totals) <= 20 else "**not met**"} in these runs
{END}"""
    old = args.out.read_text() if args.out.exists() else ""
    if START in old and END in old:
        new = old[: old.index(START)] + text + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    args.out.write_text(new)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
