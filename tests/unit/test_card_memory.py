"""The in-process card cache is bounded by bytes as well as entries, and counts them right."""

from __future__ import annotations

from infrastructure.card_cache import (
    ENTRY_OVERHEAD,
    NOT_OWN,
    CachedCard,
    Due,
    InProcessCardCache,
    own_key,
    public_key,
)


def card(size: int) -> CachedCard:
    return CachedCard(b"x" * size, '"e"', "Sat, 05 Dec 2026 02:00:00 GMT")


def weight(size: int) -> int:
    return size + len('"e"') + len("Sat, 05 Dec 2026 02:00:00 GMT") + ENTRY_OVERHEAD


def test_the_oldest_answers_go_first_once_the_bytes_are_spent() -> None:
    cache = InProcessCardCache(size=1_000, max_bytes=3 * weight(4_000))
    keys = [own_key("acme", f"a{i}", "1.0", False) for i in range(5)]
    for i, key in enumerate(keys):
        cache.put(key, card(4_000), ("acme", f"a{i}"), 1)
    assert [cache.get(key) is not None for key in keys] == [False, False, True, True, True]


def test_storing_a_key_again_or_evicting_it_gives_its_bytes_back() -> None:
    cache = InProcessCardCache(size=1_000, max_bytes=2 * weight(4_000))
    first, second = own_key("acme", "a", "1.0", False), own_key("acme", "b", "1.0", False)
    for _ in range(10):  # the same answer stored again does not count twice
        cache.put(first, card(4_000), ("acme", "a"), 1)
    cache.put(second, card(4_000), ("acme", "b"), 1)
    assert cache.get(first) is not None and cache.get(second) is not None
    cache.evict({("acme", "a"): 2})
    third = own_key("acme", "c", "1.0", False)
    cache.put(third, card(4_000), ("acme", "c"), 1)  # fits in what the eviction gave back
    assert cache.get(second) is not None and cache.get(third) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_card_hit_in_its_last_seconds_is_due_once_and_a_cold_or_absent_one_never() -> None:
    clock = Clock()
    cache = InProcessCardCache(ttl_s=60, refresh_ahead_s=10, clock=clock)
    hot, cold, marker = (own_key("acme", name, "0.3", True) for name in ("hot", "cold", "other"))
    cache.put(hot, card(10), ("acme", "hot"), 3)
    cache.put(cold, card(10), ("acme", "cold"), 3)
    cache.put(marker, NOT_OWN, ("acme", "other"), 0)
    clock.now += 45
    assert cache.get(hot) is not None and cache.due(10) == []  # not near its expiry yet
    clock.now += 10
    assert cache.get(hot) is not None and cache.get(hot) is not None
    assert cache.get(marker) is NOT_OWN  # "not own" is not read again: it expires
    assert cache.due(10) == [Due(hot, ("acme", "hot"), "0.3", True, public=False)]
    assert cache.due(10) == []  # taken once
    cache.put(hot, card(10), ("acme", "hot"), 3)  # read again
    clock.now += 30  # past the first answer's expiry, within the second's
    assert cache.get(hot) is not None and cache.get(cold) is None


def test_a_public_key_is_due_with_the_agent_it_serves() -> None:
    clock = Clock()
    cache = InProcessCardCache(ttl_s=60, refresh_ahead_s=10, clock=clock)
    key = public_key("0" * 32, "1.0", False)
    cache.put(key, card(10), ("acme", "a:b"), 3)
    clock.now += 55
    cache.get(key)
    assert cache.due(10) == [Due(key, ("acme", "a:b"), "1.0", False, public=True)]
