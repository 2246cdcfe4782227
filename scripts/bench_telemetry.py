"""What /metrics telemetry costs the online p99: the same service with and without it, runs interleaved.

Builds one sandbox (as scripts/bench_serving.py), starts two service processes on it, one with telemetry
(the default) and one with MLOPS_SERVE_TELEMETRY=0, and drives single-task POST /predict with wrk
against each in turn, ROUNDS times (A B B A ...: on a shared machine the load drifts, pairing cancels
most of it). Prints the medians of p50/p99/throughput per side and the p99 ratio.

Under load the wall-clock p99 of a few runs swings by more than the effect, so it also measures what
telemetry adds per request in CPU time, in-process (``--micro-only`` for that alone): the middleware
around a no-op ASGI app, and counting the risk bands of one prediction, each 20,000 times.

    .venv/bin/python scripts/bench_telemetry.py                     # about 3 minutes on 2 cores
    .venv/bin/python scripts/bench_telemetry.py --rounds 6 --duration 10 --connections 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import httpx  # noqa: E402
from bench_serving import TRAIN, _lua, _wrk  # noqa: E402

from mlops_assets.lib import scoring  # noqa: E402
from mlops_assets.reliability.service import ServiceProcess  # noqa: E402
from mlops_assets.serving import sandbox  # noqa: E402


def _start(box, work: Path, telemetry: bool) -> tuple[ServiceProcess, str]:
    """The service with telemetry on or off, ready (on a free port, started again on another if it is taken)."""
    service = ServiceProcess(
        box, work / f"service-{int(telemetry)}.log", {"MLOPS_SERVE_TELEMETRY": "1" if telemetry else "0"}
    )
    try:
        service.wait_ready(180)
    except RuntimeError as exc:
        service.stop()
        sys.exit(f"the service did not become ready: {exc}")
    return service, service.url


def micro(n: int = 20_000) -> dict[str, float]:
    """CPU microseconds per request that telemetry adds: middleware (status, latency, counters) and band counting."""
    import asyncio

    from mlops_assets.serving.telemetry import Telemetry, TelemetryMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        return None

    telemetry = Telemetry(lambda: None)
    wrapped = TelemetryMiddleware(app, telemetry=telemetry)
    scope = {"type": "http", "path": "/predict", "method": "POST"}

    async def loop(target) -> float:
        started = time.process_time()
        for _ in range(n):
            await target(scope, receive, send)
        return (time.process_time() - started) / n * 1e6

    out = {}
    for _ in range(3):  # best of three: the least disturbed by other processes
        bare, with_telemetry = asyncio.run(loop(app)), asyncio.run(loop(wrapped))
        out["middleware_us"] = min(out.get("middleware_us", 1e9), with_telemetry - bare)
        rows = [{"risk_band": "high"}]
        started = time.process_time()
        for _ in range(n):
            telemetry.count_predictions(rows)
        out["count_predictions_us"] = min(
            out.get("count_predictions_us", 1e9), (time.process_time() - started) / n * 1e6
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6, help="runs per side, interleaved")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--micro-only", action="store_true", help="only the in-process CPU cost per request")
    args = parser.parse_args()
    cost = micro()
    print(
        f"telemetry CPU per request: middleware {cost['middleware_us']:.1f} us, "
        f"band counting {cost['count_predictions_us']:.1f} us",
        flush=True,
    )
    if args.micro_only:
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench_telemetry_"))
    box = sandbox.build_sandbox(work / "sandbox", n_tasks=args.tasks, config=TRAIN)
    from mlops_assets.lib.warehouse import Warehouse

    records = scoring.task_records(scoring.open_tasks(Warehouse(box.warehouse).read_table("clean.tasks")))
    script = _lua(work / "single.lua", "/predict", [json.dumps(r) for r in records[:500]])
    services = {side: _start(box, work, side) for side in (True, False)}
    results: dict[bool, list[dict]] = {True: [], False: []}
    load = []
    try:
        for _, url in services.values():
            _wrk(url + "/", script, args.connections, 3)  # warm-up
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for side in order:
                load.append(os.getloadavg()[0])
                result = _wrk(services[side][1] + "/", script, args.connections, args.duration)
                results[side].append(result)
                print(
                    f"round {round_ + 1} telemetry={'on' if side else 'off'}: {result['rps']:.0f} rps "
                    f"p50 {result['p50']:.2f} ms p99 {result['p99']:.2f} ms (load {load[-1]:.1f})",
                    flush=True,
                )
        with httpx.Client(base_url=services[True][1]) as http:
            metrics = http.get("/metrics").text
    finally:
        for service, _ in services.values():
            service.stop()
    summary = {}
    for side, runs in results.items():
        summary["on" if side else "off"] = {
            k: statistics.median(r[k] for r in runs) for k in ("p50", "p99", "rps")
        }
    ratios = [on["p99"] / off["p99"] for on, off in zip(results[True], results[False], strict=True)]
    summary["p99_ratio_median_of_pairs"] = statistics.median(ratios)
    summary["load_1min"] = (min(load), max(load))
    summary["counted_requests"] = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith('mlops_serve_requests_total{endpoint="/predict"')
    )
    print(json.dumps(summary, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
