"""settle_heap: what a long-running process does to its garbage collector once started."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from interfaces.bootstrap import FULL_COLLECTION_EVERY, settle_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A pair of objects that refer to each other and to nothing else: only a cyclic
    collection frees them. Returns a weak reference to one of them."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_garbage_from_start_up_is_freed_and_what_lives_is_frozen(restored: None) -> None:
    dead = cycle()
    alive = Node()
    alive.other = alive
    settle_heap()
    assert dead() is None, "start-up's cyclic garbage must not be frozen forever"
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(alive)
    # frozen: in no generation, so no collection walks it again
    assert not any(o is alive for o in gc.get_objects())


def test_full_collections_are_rare_but_young_cycles_are_still_collected(restored: None) -> None:
    young, middle, _ = gc.get_threshold()
    settle_heap()
    assert gc.isenabled()
    assert gc.get_threshold() == (young, middle, FULL_COLLECTION_EVERY)
    dead = cycle()
    # enough tracked objects kept alive to run the young generation's automatic collection
    kept = [[None] for _ in range(young * 3)]
    assert dead() is None
    del kept
