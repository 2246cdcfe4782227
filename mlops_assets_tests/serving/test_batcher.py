"""The service's micro-batcher: requests scored together, and one that cannot be scored fails only itself."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import polars as pl

from mlops_assets.serving.app import Batcher


def _score(calls: list[list[str]]):
    """A scoring function that, like a date past the calendar did, raises for one request's rows."""

    def score(snapshot, frames: list[pl.DataFrame]) -> list:
        ids = [frame["task_id"][0] for frame in frames]
        calls.append(ids)
        if "hostile" in ids:
            raise OverflowError("date value out of range")
        return [(snapshot, [{"task_id": task_id}], {}) for task_id in ids]

    return score


async def _send(task_ids: list[str]) -> tuple[list, list[list[str]]]:
    calls: list[list[str]] = []
    batcher = Batcher(SimpleNamespace(snapshot="snapshot"), max_rows=100, score=_score(calls))
    batcher.start()
    try:  # queued before the scoring thread wakes: one micro-batch
        results = await asyncio.gather(*(batcher.score(pl.DataFrame({"task_id": [t]})) for t in task_ids),
                                       return_exceptions=True)  # fmt: skip
    finally:
        await batcher.stop()
    return results, calls


def _run(coro):
    """asyncio.run in a thread of its own: the browser tests' Playwright leaves an event loop running in
    the main thread, where asyncio.run refuses to start another (seen when the whole suite runs).
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def test_a_failing_request_fails_alone_and_the_rest_of_its_micro_batch_is_scored():
    results, calls = _run(_send(["a", "hostile", "b"]))
    assert calls[0] == ["a", "hostile", "b"]  # they were batched together, and the batch failed
    assert results[0] == ("snapshot", [{"task_id": "a"}], {})
    assert isinstance(results[1], OverflowError)
    assert results[2] == ("snapshot", [{"task_id": "b"}], {})


def test_a_healthy_micro_batch_is_scored_in_one_call():
    results, calls = _run(_send(["a", "b", "c"]))
    assert calls == [["a", "b", "c"]]
    assert [r[1][0]["task_id"] for r in results] == ["a", "b", "c"]
