"""lib/long_lived: survivors of full collections are frozen while a run executes, and handed back after."""

import gc

from mlops_assets.lib import long_lived


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_survivors_are_frozen_during_a_run_and_collectable_after_it():
    before = gc.get_freeze_count()
    with long_lived.frozen_survivors():
        kept = [_Cycle() for _ in range(100)]
        gc.collect()  # a full collection: everything alive now is moved to the permanent generation
        assert gc.get_freeze_count() > before
        del kept  # cycles that die while frozen wait for the end of the run
        assert gc.collect() == 0
    assert gc.get_freeze_count() == 0  # unfrozen: nothing leaks in a long-lived process
    assert gc.collect() >= 100  # and the cycles that died meanwhile are collected now


def test_nested_runs_unfreeze_once_the_last_ends():
    long_lived.start()
    long_lived.start()
    gc.collect()
    long_lived.stop()
    assert gc.get_freeze_count() > 0
    long_lived.stop()
    assert gc.get_freeze_count() == 0
    assert long_lived._freeze_survivors not in gc.callbacks  # noqa: SLF001
    long_lived.stop()  # an extra stop is harmless
