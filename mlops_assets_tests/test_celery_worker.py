"""A Celery prefork pool process (billiard, daemonic) can run steps that start processes of their own."""

import json
import multiprocessing
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


# The pool is started from a fresh single-threaded interpreter, as Celery's worker main process is: forked
# from a pytest-xdist worker that still holds other tests' threads (a webserver, a browser driver), a
# billiard child can inherit a lock held mid-operation and hang for good (seen in CI: pool.terminate()
# waiting on a worker stuck in billiard's queue lock).
_POOL_SCRIPT = """
import json, billiard
from mlops_assets_tests.test_celery_worker import _spawn_pool_in_step
pool = billiard.Pool(1)  # the pool Celery's prefork workers use
try:
    print(json.dumps([pool.apply_async(_spawn_pool_in_step, (p,)).get(timeout=120) for p in (False, True)]))
finally:
    pool.terminate()
    pool.join()
"""


def test_a_pool_process_may_start_a_spawn_pool_once_prepared():
    done = subprocess.run(
        [sys.executable, "-c", _POOL_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    unprepared, prepared = json.loads(done.stdout.strip().splitlines()[-1])
    assert unprepared == "daemonic processes are not allowed to have children"
    assert prepared == [3, 4]


def test_the_workers_config_imports_the_preparation():
    config = yaml.safe_load((ROOT / "deploy" / "cluster" / "celery.yaml").read_text())
    assert "mlops_assets.celery_worker" in config["execution"]["config"]["config_source"]["imports"]
