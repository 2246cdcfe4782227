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


def test_settle_frees_what_was_replaced_and_keeps_what_is_served_out_of_full_collections():
    # The scoring service settles after each load: its champions and history (~830,000 objects at 1M
    # tasks) stop costing every full collection ~100 ms, and a replaced snapshot is still freed.
    served = [_Cycle() for _ in range(1000)]
    try:
        long_lived.settle()
        frozen = gc.get_freeze_count()
        assert frozen >= 1000
        assert gc.collect() == 0 and gc.get_freeze_count() == frozen  # nothing new to walk or free
        served = [_Cycle() for _ in range(1000)]  # a reload: the old cycles die while frozen
        long_lived.settle()
        assert gc.get_freeze_count() < frozen + 1000  # the old ones were freed, not frozen again
        assert any(obj is served[0] for obj in gc.get_referents(served))  # the new ones kept
    finally:
        gc.unfreeze()  # hand everything back to this test session's collector
