"""A Celery prefork pool process (billiard, daemonic) can run steps that start processes of their own."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import billiard
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


def test_a_pool_process_may_start_a_spawn_pool_once_prepared():
    pool = billiard.Pool(1)  # the pool Celery's prefork workers use
    try:
        assert (
            pool.apply(_spawn_pool_in_step, (False,)) == "daemonic processes are not allowed to have children"
        )
        assert pool.apply(_spawn_pool_in_step, (True,)) == [3, 4]
    finally:
        pool.terminate()
        pool.join()


def test_the_workers_config_imports_the_preparation():
    config = yaml.safe_load((ROOT / "deploy" / "cluster" / "celery.yaml").read_text())
    assert "mlops_assets.celery_worker" in config["execution"]["config"]["config_source"]["imports"]
