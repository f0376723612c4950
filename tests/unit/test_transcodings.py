"""JSON transcodings of the domain's value objects (application/transcodings.py), in memory only."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Mapper, UUIDAsHex
from hypothesis import given, settings
from hypothesis import strategies as st

from application.transcodings import register_domain_transcodings
from domain.goals import AgentGoals, AutoUpdate, Meta
from domain.objectives import GoalDefinition, Kpi, Objective, unique_ids


def transcoder() -> JSONTranscoder:
    """The transcoder the application uses: eventsourcing's defaults plus the domain's."""
    t = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        t.register(transcoding)
    register_domain_transcodings(t)
    return t


def round_trip(obj: object) -> Any:
    t = transcoder()
    return t.decode(t.encode(obj))


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
text = st.text(max_size=30)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(10**12), 10**12), finite, text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def kpis(draw: st.DrawFn) -> Kpi:
    baseline = draw(finite)
    span = draw(st.floats(min_value=0.5, max_value=1e6))
    if draw(st.booleans()):
        return Kpi(draw(text), target=baseline + span, baseline=baseline, unit=draw(text))
    return Kpi(draw(text), target=baseline - span, baseline=baseline, unit=draw(text), direction="decrease")


@st.composite
def definitions(draw: st.DrawFn) -> GoalDefinition:
    titles = draw(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=5))
    objectives = tuple(
        Objective(
            oid,
            title,
            weight=draw(st.floats(min_value=0.01, max_value=1000)),
            kpi=draw(st.one_of(st.none(), kpis())),
            milestones=tuple(
                sorted(draw(st.sets(st.floats(min_value=0.01, max_value=100), min_size=1, max_size=5)))
            ),
        )
        for oid, title in zip(unique_ids(titles), titles, strict=True)
    )
    return GoalDefinition(
        purpose_statement=draw(st.text(min_size=1, max_size=50).filter(lambda s: s.strip())),
        objectives=objectives,
        success_criteria=tuple(draw(st.lists(text, max_size=3))),
        kpis=tuple(
            draw(st.lists(st.one_of(text, st.dictionaries(st.text(max_size=8), json_value)), max_size=3))
        ),
        label=draw(st.one_of(st.none(), text)),
        target_date=draw(st.one_of(st.none(), st.dates().map(lambda d: d.isoformat()))),
    )


auto_updates = st.builds(
    AutoUpdate,
    enabled=st.booleans(),
    interval_s=st.integers(5, 86_400),
    health_url=st.one_of(st.none(), st.just("http://agent.local/health")),
    metrics_url=st.one_of(st.none(), st.just("http://agent.local/metrics")),
    kpi_metrics=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), st.text(min_size=1)),
)


def test_a_definition_round_trips_with_tuples_kept() -> None:
    definition = GoalDefinition(
        "Help users",
        (
            Objective("a", "A", 2.0, Kpi("p95", 100.0, 500.0, "ms", "decrease"), (10.0, 50.0)),
            Objective("b", "B"),
        ),
        success_criteria=("fast", "friendly"),
        kpis=("tickets/day", {"name": "csat", "targets": [4, 4.5]}),
        label="v2",
        target_date="2030-01-31",
    )
    decoded = round_trip(definition)
    assert decoded == definition
    assert isinstance(decoded, GoalDefinition)
    assert isinstance(decoded.objectives, tuple)
    assert all(isinstance(o, Objective) for o in decoded.objectives)
    assert isinstance(decoded.objectives[0].kpi, Kpi)
    assert isinstance(decoded.objectives[0].milestones, tuple)
    assert isinstance(decoded.success_criteria, tuple)
    assert isinstance(decoded.kpis, tuple)


def test_the_encoding_is_json_naming_the_types() -> None:
    encoded = transcoder().encode(GoalDefinition("p", (Objective("a", "A"),)))
    assert b'"_type_":"goal_definition"' in encoded
    assert b'"_type_":"objective"' in encoded


@settings(database=None)
@given(definitions())
def test_any_definition_round_trips(definition: GoalDefinition) -> None:
    decoded = round_trip(definition)
    assert decoded == definition
    assert type(decoded.objectives) is tuple
    assert all(type(o.milestones) is tuple for o in decoded.objectives)
    assert type(decoded.success_criteria) is tuple
    assert type(decoded.kpis) is tuple


@settings(database=None)
@given(auto_updates)
def test_any_auto_update_round_trips(config: AutoUpdate) -> None:
    decoded = round_trip(config)
    assert decoded == config
    assert isinstance(decoded, AutoUpdate)
    assert dict(decoded.kpi_metrics) == dict(config.kpi_metrics)


@settings(database=None)
@given(definitions(), auto_updates, st.integers(0, 100))
def test_events_through_the_mapper_replay_to_the_live_state(
    definition: GoalDefinition, config: AutoUpdate, pct: int
) -> None:
    goals = AgentGoals.start(
        "tenant", f"agent-{uuid.uuid4().hex[:8]}", definition, Meta("alice", "r-1", "k-1")
    )
    first = definition.objectives[0]
    goals.record_progress(Meta("bob", "r-2"), objective_progress={first.id: float(pct)})
    if first.kpi is not None:
        goals.record_progress(Meta("bob", "r-3"), kpi_values={first.id: first.kpi.target})
    ids = set(definition.objective_ids())
    goals.configure_auto_update(
        AutoUpdate(
            config.enabled,
            config.interval_s,
            config.health_url,
            config.metrics_url,
            {k: v for k, v in config.kpi_metrics.items() if k in ids},
        ),
        Meta("ops", "r-4"),
    )
    goals.change_status("paused", "lunch", Meta("ops", "r-5"))
    events = goals.collect_events()
    mapper: Mapper[uuid.UUID] = Mapper(transcoder=transcoder())
    decoded = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in events]
    assert decoded == events
    replayed = functools.reduce(lambda a, e: e.mutate(a), decoded, None)  # type: ignore[attr-defined]
    assert isinstance(replayed, AgentGoals)
    assert vars(replayed) == vars(goals)
