"""What every search backend shares, without I/O: the document a card gives, the words of a
text, the checks of a query, the scores' tiers, the trigram similarity and the cursor."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projections.search.index import (
    FUZZY_FACTOR,
    FUZZY_THRESHOLD,
    PUBLIC_SCOPE,
    InvalidCursor,
    InvalidSearch,
    Labels,
    SearchQuery,
    SortKey,
    VocabularyChanges,
    decode_cursor,
    document,
    encode_cursor,
    exact_score,
    fingerprint,
    prefix_score,
    scopes_seen_by,
    trigrams,
    trigrams_needed,
    vocabulary_scope,
    word_similarity,
    words,
)

V1_CARD: dict[str, Any] = {
    "name": "Route Planner",
    "description": "Plans delivery routes",
    "supportedInterfaces": [{"url": "https://a.example/a2a", "protocolBinding": "JSONRPC"}],
    "provider": {"organization": "Acme Mobility", "url": "https://acme.example"},
    "skills": [
        {
            "id": "route-planning",
            "name": "Route Planning",
            "description": "Shortest tours",
            "tags": ["Maps", "maps"],
        },
        {"id": "eta", "name": "ETA", "tags": ["Logistics"]},
    ],
}


def test_a_v1_card_gives_its_name_description_provider_and_skills() -> None:
    found = document(V1_CARD)
    assert (found.name, found.description, found.provider) == (
        "Route Planner",
        "Plans delivery routes",
        "Acme Mobility",
    )
    assert found.skill_keys == ("route-planning", "route planning", "eta")
    assert found.tags == ("maps", "logistics")
    assert found.field_words() == {
        "name": "route planner",
        "skills": "route planning route planning maps maps eta eta logistics",
        "description": "plans delivery routes shortest tours",
        "provider": "acme mobility",
    }
    assert found.labels() == words(
        "Route Planner route-planning Route Planning Maps maps eta ETA Logistics Acme Mobility"
    )


def test_a_v03_card_gives_the_same_fields() -> None:
    v03 = {k: v for k, v in V1_CARD.items() if k != "supportedInterfaces"} | {
        "url": "https://a.example/a2a",
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3.0",
    }
    assert document(v03) == document(V1_CARD)


def test_fields_of_the_wrong_type_count_as_absent() -> None:
    odd: dict[str, Any] = {
        "name": 7,
        "description": None,
        "provider": "Acme",
        "skills": [{"id": ["x"], "name": "Ok", "tags": "not-a-list"}, "a skill?", {"tags": [3, "Good", " "]}],
    }
    found = document(odd)
    assert (found.name, found.description, found.provider) == ("", "", "")
    assert found.skill_keys == ("ok",)
    assert found.tags == ("good",)
    assert document({"skills": {"id": "x"}}).skill_keys == ()


def test_words_are_letters_and_digits_without_case_or_accents() -> None:
    assert words("Café-Planner_v2 (K8S) naïve, ÉTÉ!") == ["cafe", "planner", "v2", "k8s", "naive", "ete"]
    assert words("x" * 65 + " ok") == ["ok"]


@given(st.text())
def test_the_words_of_words_are_the_same_words(text: str) -> None:
    # What the backends index is the words joined by spaces, which they split again.
    found = words(text)
    assert words(" ".join(found)) == found
    assert all(w == w.lower() and w.isalnum() for w in found)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"q": "!!!"}, "q"),
        ({"q": "x" * 257}, "q"),
        ({"q": " ".join(f"w{n}" for n in range(9))}, "q"),
        ({"skill": "  "}, "skill"),
        ({"tag": "t" * 201}, "tag"),
        ({"goal_status": "sleeping"}, "goal_status"),
        ({"min_progress": -1}, "min_progress"),
        ({"max_progress": float("nan")}, "max_progress"),
        ({"min_progress": 60, "max_progress": 40}, "min_progress"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"updated_since": "2026-01-01T00:00:00"}, "updated_since"),
        ({"cursor": ""}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
    ],
)
def test_a_query_names_the_parameter_it_refuses(query: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSearch) as refused:
        SearchQuery(**query)
    assert set(refused.value.errors) == {field}


def test_a_query_keeps_its_distinct_words_and_keys() -> None:
    query = SearchQuery(q="Route route PLANNER", skill=" Route-Planning ", tag="MAPS")
    assert query.terms == ("route", "planner")
    assert (query.skill_key, query.tag_key) == ("route-planning", "maps")
    assert SearchQuery(updated_since="2026-01-01T00:00:00Z").since is not None


def test_whole_words_rank_above_prefixes_above_near_misses_and_fields_by_weight() -> None:
    assert [exact_score(f) for f in ("name", "skills", "description", "provider")] == [2.5, 2.2, 2.1, 2.05]
    assert exact_score("provider") > prefix_score("name") > prefix_score("provider") > FUZZY_FACTOR * 1.0


@pytest.mark.parametrize(
    ("term", "word", "pg_trgm"),
    # word_similarity(term, word) as PostgreSQL 15's pg_trgm computes it
    [
        ("planer", "planner", 0.6666667),
        ("rout", "routing", 0.8),
        ("planer", "plane", 0.71428573),
        ("planer", "partner", 0.2857143),
    ],
)
def test_word_similarity_is_pg_trgms(term: str, word: str, pg_trgm: float) -> None:
    assert word_similarity(term, word) == pytest.approx(pg_trgm, abs=1e-6)
    assert (word_similarity(term, word) >= FUZZY_THRESHOLD) == (pg_trgm >= FUZZY_THRESHOLD)


@given(st.text("abcde", min_size=4, max_size=10), st.text("abcde", min_size=1, max_size=12))
def test_a_near_miss_holds_the_trigrams_a_candidate_must(term: str, word: str) -> None:
    # SQLite looks near-misses up among the words holding trigrams_needed of the term's.
    if word_similarity(term, word) >= FUZZY_THRESHOLD:
        assert len(set(trigrams(term)) & set(trigrams(word))) >= trigrams_needed(term)


def test_an_agents_words_count_in_the_public_scope_or_in_its_tenants() -> None:
    assert vocabulary_scope("acme", "public") == vocabulary_scope("", "public") == PUBLIC_SCOPE
    assert vocabulary_scope("acme", "private") == "acme"
    assert scopes_seen_by("globex") == (PUBLIC_SCOPE, "globex")
    private = Labels("acme", frozenset({"route", "planner"}))
    changes = VocabularyChanges()
    changes.replace(None, private)
    changes.replace(private, Labels(PUBLIC_SCOPE, private.words))  # made public: the words move
    assert changes.changed() == {(PUBLIC_SCOPE, "planner"): 1, (PUBLIC_SCOPE, "route"): 1}
    changes.replace(Labels(PUBLIC_SCOPE, private.words), None)  # deregistered
    assert changes.changed() == {}


def test_a_cursor_comes_back_to_the_search_that_made_it() -> None:
    query = SearchQuery(q="planner", tag="maps", limit=5)
    bound = fingerprint("acme", query)
    cursor = encode_cursor(bound, SortKey(2.5, "acme", "a/1"))
    assert decode_cursor(cursor, bound, relevance=True) == SortKey(2.5, "acme", "a/1")
    assert fingerprint("acme", SearchQuery(q="planner", tag="maps", limit=50, cursor=cursor)) == bound
    for other in (fingerprint("globex", query), fingerprint("acme", SearchQuery(q="planner"))):
        with pytest.raises(InvalidCursor):
            decode_cursor(cursor, other, relevance=True)
    recency = encode_cursor(bound, SortKey("2026-01-01T00:00:00+00:00", "acme", "a"))
    for garbage in ("%%%", "e30", cursor[:-3], recency):  # e30: "{}"; a recency key where a score is due
        with pytest.raises(InvalidCursor):
            decode_cursor(garbage, bound, relevance=True)
