"""domain.legacy: what earlier versions stored, made storable as it is read."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from application.json_encoding import encode_json
from domain.legacy import MAX_DEPTH, TOO_DEEP, storable_json, storable_text


def test_texts_lose_nul_and_lone_surrogates_but_keep_pairs() -> None:
    assert storable_text("a\x00b") == "ab"
    assert storable_text("a\ud800b") == "a\ufffdb"
    assert storable_text("a\U0001f600b") == "a\U0001f600b"


def test_integers_beyond_64_bits_become_numbers_and_nesting_is_cut() -> None:
    assert storable_json({"n": 2**70, "m": -(2**63)}) == {"n": float(2**70), "m": -(2**63)}
    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    cut = storable_json(deep)
    for _ in range(MAX_DEPTH):
        cut = cut[0]
    assert cut == TOO_DEEP


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=40,
)


@given(json_values)
def test_whatever_was_stored_becomes_what_the_read_models_can_write(value: Any) -> None:
    encode_json(storable_json(value))
