"""At READY, start-up's garbage is freed and what survives is frozen out of the collector's passes."""

from __future__ import annotations

import gc
import weakref

from warmgate.server.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_startup_garbage_is_freed_and_survivors_are_frozen() -> None:
    gc.disable()  # no automatic collection between the steps below
    try:
        garbage = _Node()
        gone = weakref.ref(garbage)
        del garbage
        survivor = _Node()
        assert gone() is not None  # cyclic garbage waits for a collection
        frozen = freeze_startup_heap()
        assert gone() is None  # collected before the freeze, not kept forever
        assert frozen == gc.get_freeze_count() > 0
        assert all(obj is not survivor for obj in gc.get_objects())  # out of every generation
        after = _Node()
        assert any(obj is after for obj in gc.get_objects())  # traffic's objects are still collected
    finally:
        gc.unfreeze()
        gc.enable()
    assert any(obj is survivor for obj in gc.get_objects())
