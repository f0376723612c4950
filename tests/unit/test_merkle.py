"""RFC 9162 section 2.1: tree hashes, inclusion and consistency proofs, and their checks."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.merkle import (
    EMPTY_ROOT,
    Node,
    ProofInvalid,
    leaf_hash,
    node_hash,
    prove_consistency,
    prove_inclusion,
    root,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"event {i}".encode()) for i in range(n)]


def nodes_of(hashes: Sequence[bytes]):  # type: ignore[no-untyped-def]
    """Complete subtree hashes of an in-memory tree, as a store of (level, index) rows gives them."""

    def read(wanted: Sequence[Node]) -> list[bytes]:
        return [root(hashes[i << level : (i + 1) << level]) for level, i in wanted]

    return read


def test_the_empty_tree_hashes_as_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == sha(b"")
    assert root_of(0, nodes_of([])) == sha(b"")


def test_small_trees_hash_as_computed_by_hand() -> None:
    a, b, c = (sha(b"\x00" + d) for d in (b"a", b"b", b"c"))
    assert leaf_hash(b"a") == a
    assert root([a]) == a
    assert root([a, b]) == sha(b"\x01" + a + b)
    # three leaves split at two: ((a b) c)
    assert root([a, b, c]) == sha(b"\x01" + sha(b"\x01" + a + b) + c)
    assert node_hash(a, b) != node_hash(b, a)


def test_a_proof_of_the_third_leaf_of_five_is_what_the_rfc_draws() -> None:
    h = leaves(5)
    proof = prove_inclusion(2, 5, nodes_of(h))
    assert proof == [h[3], node_hash(h[0], h[1]), h[4]]


@pytest.mark.parametrize("size", range(1, 65))
def test_every_inclusion_proof_verifies(size: int) -> None:
    h = leaves(size)
    nodes = nodes_of(h)
    top = root(h)
    assert root_of(size, nodes) == top
    for index in range(size):
        verify_inclusion(index, size, h[index], prove_inclusion(index, size, nodes), top)


@pytest.mark.parametrize("second", range(1, 65))
def test_every_consistency_proof_verifies(second: int) -> None:
    h = leaves(second)
    nodes = nodes_of(h)
    for first in range(1, second + 1):
        proof = prove_consistency(first, second, nodes)
        verify_consistency(first, second, proof, root(h[:first]), root(h))


@given(st.integers(2, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.data())))
def test_a_changed_leaf_or_proof_element_fails(case: tuple[int, int, st.DataObject]) -> None:
    size, index, data = case
    h = leaves(size)
    proof = prove_inclusion(index, size, nodes_of(h))
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, size, leaf_hash(b"forged"), proof, root(h))
    at = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof[:at], sha(proof[at]), *proof[at + 1 :]]
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, size, h[index], bad, root(h))
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, size, h[index], proof[:-1], root(h))


@given(st.integers(3, 64).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1), st.data())))
def test_a_changed_consistency_proof_or_history_fails(case: tuple[int, int, st.DataObject]) -> None:
    second, first, data = case
    h = leaves(second)
    proof = prove_consistency(first, second, nodes_of(h))
    at = data.draw(st.integers(0, len(proof) - 1))
    bad = [*proof[:at], sha(proof[at]), *proof[at + 1 :]]
    with pytest.raises(ProofInvalid):
        verify_consistency(first, second, bad, root(h[:first]), root(h))
    rewritten = [leaf_hash(b"rewritten"), *h[1:]]
    with pytest.raises(ProofInvalid):
        verify_consistency(first, second, proof, root(rewritten[:first]), root(h))
