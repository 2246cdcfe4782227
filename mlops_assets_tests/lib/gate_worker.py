"""A separate process for the gate's concurrency and crash tests (test_gate_reliability.py).

``python -m mlops_assets_tests.lib.gate_worker JOB.json``: imports, signals ``<out>.ready``, waits for
``go`` (so two workers start their critical part together), then runs one job and writes its result
to ``<out>``. A ``crash`` job runs the gate once per kill point, each time in a forked child patched
to SIGKILL itself at that point.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time
from pathlib import Path

from mlops_assets.lib import gate, registry


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(module, name: str) -> None:
    original = getattr(module, name)

    def patched(*args, **kwargs):
        result = original(*args, **kwargs)
        _die()
        return result

    setattr(module, name, patched)


def _before(module, name: str) -> None:
    setattr(module, name, lambda *args, **kwargs: _die())


# Each boundary of the gate a crash can fall on: (where, how).
KILL_POINTS = {
    "version_created": lambda: _after(registry, "_create_version"),
    "decision_tagged": lambda: _after(registry, "_write_decision"),
    "alias_moved": lambda: _after(registry, "_move_alias"),
    "registry_done": lambda: _before(gate, "record_decision"),
    "decision_recorded": lambda: _before(gate, "save_reference"),
}


def main(job_path: str) -> None:
    import mlflow.pyfunc  # noqa: F401  (imported before the start signal: the workers then race for real)

    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    if job["kind"] == "crash":
        out.write_text(json.dumps(crash_each(job)))
        return
    with open(job["data"], "rb") as fh:
        data = pickle.load(fh)
    out.with_suffix(".ready").touch()
    go = Path(job["go"])
    while not go.exists():
        time.sleep(0.005)
    spec = data["spec"]
    if job["kind"] == "log_and_gate":  # a training run then its gate, on a store that may not exist yet
        client = registry.get_client(job["uri"])
        run_id = registry.log_training_run(
            spec,
            data["trained"],
            data["splits"],
            tasks=data["tasks"],
            history=data["history"],
            tracking_uri=job["uri"],
            artifacts_dir=job["artifacts"],
        )
        decision = registry.register_and_gate(
            spec, run_id, data["trained"].metrics, test=data["splits"]["test"], client=client
        )
    else:  # "gate"
        decision = registry.register_and_gate(
            spec,
            job["run_id"],
            data["trained"].metrics,
            test=data["splits"]["test"],
            client=registry.get_client(job["uri"]),
        )
    out.write_text(
        json.dumps(
            {
                "promoted": decision.promoted,
                "version": decision.version,
                "before": decision.champion_version_before,
                "reason": decision.reason,
            }
        )
    )


def crash_each(job: dict) -> dict[str, int]:
    """Run the whole gate step once per kill point, each in a child forked from this warm process.

    Forked before anything has started a thread pool (LightGBM's OpenMP, polars, DuckDB), so each
    child pays neither the imports nor a fork hazard. Returns how each child ended (-signal or exit code).
    """
    children = {}
    for point, target in job["targets"].items():
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                from mlops_assets.lib.warehouse import Warehouse

                with open(job["data"], "rb") as fh:
                    data = pickle.load(fh)
                KILL_POINTS[point]()
                gate.run_gate(
                    data["spec"],
                    Warehouse(target["warehouse"]),
                    registry.get_client(target["uri"]),
                    job["candidate"],
                    data["splits"],
                )
                code = 3  # not killed: the kill point was never reached
            finally:
                os._exit(code)
        children[point] = pid
    ended = {}
    for point, pid in children.items():
        _, status = os.waitpid(pid, 0)
        ended[point] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return ended


if __name__ == "__main__":
    main(sys.argv[1])
