"""A Celery prefork pool process (billiard, daemonic) can run steps that start processes of their own."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _spawn_pool_in_step(prepare: bool) -> object:
    if prepare:
        from mlops_assets.celery_worker import allow_step_subprocesses

        allow_step_subprocesses()
    try:
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            return sorted(pool.map(abs, [-3, -4]))
    except AssertionError as exc:  # what lib/ingestion's parallel parsing met on the workers
        return str(exc)


# The pool runs in a fresh interpreter in its own session. Seen twice in CI (fresh clones, 2026-12-04):
# both answers came back and then billiard's pool.terminate() + join() waited for good on a worker stuck
# in billiard's queue lock, in the xdist worker's process and again from a fresh interpreter; never
# locally. So the pool is closed (workers exit on the sentinel, no signal), and a teardown that still
# hangs is killed with everything it started: the teardown is billiard's, not what this test is about.
_POOL_SCRIPT = """
import json, billiard
from mlops_assets_tests.test_celery_worker import _spawn_pool_in_step
pool = billiard.Pool(1)  # the pool Celery's prefork workers use
try:
    print(json.dumps([pool.apply_async(_spawn_pool_in_step, (p,)).get(timeout=120) for p in (False, True)]), flush=True)
finally:
    pool.close()  # the workers exit on the close sentinel; terminate() would signal them
    pool.join()
"""


def test_a_pool_process_may_start_a_spawn_pool_once_prepared():
    proc = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert lines, f"the pool gave no results (exit {proc.returncode}): {err[-3000:]}"
    unprepared, prepared = json.loads(lines[-1])
    assert unprepared == "daemonic processes are not allowed to have children"
    assert prepared == [3, 4]


def test_the_workers_config_imports_the_preparation():
    config = yaml.safe_load((ROOT / "deploy" / "cluster" / "celery.yaml").read_text())
    assert "mlops_assets.celery_worker" in config["execution"]["config"]["config_source"]["imports"]
