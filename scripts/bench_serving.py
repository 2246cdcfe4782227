"""Benchmark the online scoring service on loopback and write docs/benchmarks/serving.md.

Builds a sandbox (synthetic clean.tasks in a DuckDB warehouse, both models trained and promoted in a
SQLite MLflow store), starts `python -m mlops_assets.serving` as its own process, and drives it with
`wrk` (apt-get install wrk) from another process: single-task POST /predict rotating over open tasks
at several connection counts (closed loop: each connection sends its next request when the answer
arrives), then 100-task POST /predict/batch requests.

    .venv/bin/python scripts/bench_serving.py                    # about 2 minutes on 2 cores
    .venv/bin/python scripts/bench_serving.py --duration 5 --out /tmp/serving.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from mlops_assets.lib import registry, scoring, training  # noqa: E402
from mlops_assets.reliability.service import ServiceProcess  # noqa: E402
from mlops_assets.serving import sandbox  # noqa: E402

TRAIN = training.TrainConfig(n_trials=8, timeout_s=120, cv_folds=0)

LUA = """
local bodies = {%s}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %%d, \\"seconds\\": %%f, \\"non2xx\\": %%d, \\"errors\\": %%d, "
    .. "\\"p50\\": %%f, \\"p90\\": %%f, \\"p99\\": %%f, \\"max\\": %%f}\\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
"""


def _lua(path: Path, endpoint: str, bodies: list[str]) -> Path:
    path.write_text(LUA % (",\n".join("[==[" + b + "]==]" for b in bodies), endpoint))
    return path


def _wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    result["rps"] = result["requests"] / result["seconds"]
    result["connections"] = connections
    return result


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its live children (uvicorn's worker processes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                total += _cpu_seconds(int(child))
            except FileNotFoundError:
                pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6000, help="synthetic tasks in the warehouse")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", default="1,4,8,16", help="single-task runs, comma-separated")
    parser.add_argument("--batch-connections", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="MLOPS_SERVE_WORKERS of the service")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "serving.md")
    parser.add_argument("--work", type=Path, default=None,
                        help="serve the champions and warehouse of a `mlops-assets bench --work DIR` run (e.g. "
                        "1M-trained ones) instead of a fresh sandbox")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    started = time.perf_counter()
    if args.work:
        box = sandbox.Sandbox(root=args.work, warehouse=args.work / "warehouse.duckdb",
                              tracking_uri=f"sqlite:///{args.work}/mlflow.db", artifacts=args.work / "mlflow-artifacts")  # fmt: skip
    else:
        box = sandbox.build_sandbox(work / "sandbox", n_tasks=args.tasks, config=TRAIN)
    build_s = time.perf_counter() - started
    from mlops_assets.lib.warehouse import Warehouse

    tasks = Warehouse(box.warehouse).read_table("clean.tasks")
    open_tasks = scoring.open_tasks(tasks)
    records = scoring.task_records(open_tasks)
    champions = scoring.load_champions(registry.get_client(box.tracking_uri), compile_models=False)
    trees = {name: model.booster.num_trees() for name, model in champions.items()}

    # on a free loopback port, started again on another if that one is taken while the service loads
    service = ServiceProcess(box, work / "service.log", {"MLOPS_SERVE_WORKERS": str(args.workers)})
    try:
        try:
            service.wait_ready(600 if args.work else 120)
        except RuntimeError as exc:
            sys.exit(f"the service did not become ready: {exc}")
        url, pid = service.url, service.process.pid
        single = _lua(work / "single.lua", "/predict", [json.dumps(r) for r in records[:500]])
        batches = [json.dumps({"tasks": records[i : i + 100]}) for i in range(0, len(records) - 99, 100)][:20]
        batch = _lua(work / "batch.lua", "/predict/batch", batches)
        _wrk(url + "/", single, 4, 3)  # warm-up
        runs = []
        for connections in [int(c) for c in args.connections.split(",")]:
            cpu = _cpu_seconds(pid)
            result = _wrk(url + "/", single, connections, args.duration)
            result["service_cpu"] = (_cpu_seconds(pid) - cpu) / result["seconds"]
            runs.append(result)
            print(
                f"single c={connections}: {result['rps']:.0f} rps p50 {result['p50']:.1f} ms p99 {result['p99']:.1f} ms"
            )
        cpu = _cpu_seconds(pid)
        batch_run = _wrk(url + "/", batch, args.batch_connections, args.duration)
        batch_run["service_cpu"] = (_cpu_seconds(pid) - cpu) / batch_run["seconds"]
        print(f"batch100 c={args.batch_connections}: {batch_run['rps']:.1f} req/s p50 {batch_run['p50']:.1f} ms "
              f"p99 {batch_run['p99']:.1f} ms")  # fmt: skip
    finally:
        service.stop()

    _write(args, runs, batch_run, trees, len(records), build_s, load_before)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _write(args, runs, batch_run, trees, n_open, build_s, load_before) -> None:
    import lightgbm
    import polars

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    rows = "\n".join(
        f"| {r['connections']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['max']:.0f} "
        f"| {r['service_cpu']:.2f} | {r['non2xx'] + r['errors']} |"
        for r in runs
    )
    meets = [r for r in runs if r["p99"] <= 20 and r["rps"] >= 500]
    verdict = (
        f"met at {', '.join(str(r['connections']) for r in meets)} connection(s)"
        if meets
        else "**not met** in this run (see the analysis below; mind the load average)"
    )
    setup = (
        f"the warehouse and champions of {args.work} as its bench run left them ({n_open:,} open tasks)"
        if args.work
        else f"{args.tasks:,} synthetic tasks in clean.tasks, both models tuned ({TRAIN.n_trials} Optuna trials) and promoted"
    )
    text = f"""## Online scoring service (`mlops_assets.serving`)

Command: `.venv/bin/python {" ".join(["scripts/bench_serving.py", *sys.argv[1:]])}`

- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC
- machine: {os.cpu_count()} cores, {cpu}, {mem:.1f} GiB RAM; load average at start {" ".join(f"{x:.2f}" for x in load_before)}
  (the cores are shared with other work and with the load generator itself)
- software: Python {platform.python_version()}, polars {polars.__version__}, lightgbm {lightgbm.__version__}, uvicorn + FastAPI, wrk 4.1
- setup ({build_s:.0f} s): {setup}; late_risk {trees["late_risk"]} trees, cycle_time {trees["cycle_time"]} trees. Requests rotate over {min(n_open, 500)} open tasks.
- service: `python -m mlops_assets.serving` with MLOPS_SERVE_WORKERS={args.workers}, micro-batching scorer thread per process,
  features by `history_index.feature_columns`, answers by `scoring.score_rows`
- load generator: `wrk -t1 -c<N> -d{args.duration}s` with a Lua script (closed loop, separate process)

### Single task, POST /predict

Target: p99 <= 20 ms and >= 500 requests/s on 2 cores: {verdict}.

| connections | requests/s | p50 ms | p90 ms | p99 ms | max ms | service CPU (cores) | non-2xx/errors |
|---|---|---|---|---|---|---|---|
{rows}

### 100-task batches, POST /predict/batch

- {batch_run["connections"]} connections: {batch_run["rps"]:.1f} batches/s ({batch_run["rps"] * 100:.0f} tasks/s), p50 {batch_run["p50"]:.1f} ms,
  p99 {batch_run["p99"]:.1f} ms, service CPU {batch_run["service_cpu"]:.2f} cores, non-2xx/errors {batch_run["non2xx"] + batch_run["errors"]}
"""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    marker = "<!-- analysis -->"
    old = args.out.read_text() if args.out.exists() else ""
    analysis = old[old.index(marker) :] if marker in old else f"{marker}\n"
    args.out.write_text(text + "\n" + analysis)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
