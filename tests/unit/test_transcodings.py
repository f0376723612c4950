"""The orjson transcoder writes what eventsourcing's own JSON transcoder writes, decodes what
it decodes, and refuses what a read model could not write."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder
from hypothesis import assume, given
from hypothesis import strategies as st

from application.json_encoding import UnstorableValue
from application.transcodings import FastJSONTranscoder, register_domain_transcodings
from domain.goals import AutoUpdate
from domain.objectives import GoalDefinition, Kpi, Objective


def _registered(transcoder: JSONTranscoder) -> JSONTranscoder:
    Application.register_transcodings(None, transcoder)  # type: ignore[arg-type]
    register_domain_transcodings(transcoder)
    return transcoder


LIBRARY = _registered(JSONTranscoder())
FAST = _registered(FastJSONTranscoder())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(values)
def test_decodes_what_the_library_decodes(value: Any) -> None:
    encoded = LIBRARY.encode(value)
    assert FAST.decode(encoded) == LIBRARY.decode(encoded)


def test_decodes_domain_value_objects_and_look_alike_objects() -> None:
    definition = GoalDefinition(
        "Answer tickets",
        (Objective("o1", "Resolve", kpi=Kpi("tickets", "n", 0.0, 100.0, "increase")),),
        target_date="2026-12-31",
    )
    state = {
        "definition": definition,
        "config": AutoUpdate(True, 60, None, "http://agent.example/metrics", {"o1": "tickets"}),
        "at": datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
        "id": uuid.uuid4(),
        # Only objects of exactly these two keys are transcoded values.
        "plain": {"_type_": "not a value", "other": 1},
    }
    encoded = LIBRARY.encode(state)
    assert FAST.decode(encoded) == LIBRARY.decode(encoded) == state


def test_what_orjson_refuses_is_decoded_by_the_library() -> None:
    encoded = LIBRARY.encode({"x": float("nan"), "big": 2**70})
    decoded = FAST.decode(encoded)
    assert math.isnan(decoded["x"]) and decoded["big"] == 2**70


@given(values)
def test_encodes_what_the_library_encodes(value: Any) -> None:
    """What is written comes back as what the library's own encoder would have brought back:
    UUIDs as UUIDs (orjson would write them as text), tuples as lists, datetimes as datetimes."""
    assume(b"\\u0000" not in LIBRARY.encode(value))  # NUL is refused: see below
    assert FAST.decode(FAST.encode(value)) == LIBRARY.decode(LIBRARY.encode(value))


def test_an_event_is_written_byte_for_byte_as_the_library_writes_it() -> None:
    state = {
        "timestamp": datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC),
        "definition": GoalDefinition("Answer tickets", (Objective("o1", "Résolve ✓", kpi=Kpi("n", 100.0)),)),
        "config": AutoUpdate(True, 60, None, "http://agent.example/metrics", {"o1": "tickets"}),
        "ids": [uuid.uuid4(), {"peer": uuid.uuid4()}, (1, 2.5, None)],
        "progress": {"o1": 12.5},
    }
    assert FAST.encode(state) == LIBRARY.encode(state)


@pytest.mark.parametrize(
    "value", [{"text": "a\x00b"}, {"text": "a\ud800"}, {"n": 2**64}, {"k": {1: "non-text key"}}]
)
def test_what_a_read_model_could_not_write_is_refused_before_it_is_stored(value: dict[str, Any]) -> None:
    with pytest.raises(UnstorableValue):
        FAST.encode(value)
