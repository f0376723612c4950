"""The in-process card cache is bounded by bytes as well as entries, and counts them right."""

from __future__ import annotations

from infrastructure.card_cache import ENTRY_OVERHEAD, CachedCard, InProcessCardCache, own_key


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
