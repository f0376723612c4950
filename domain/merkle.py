"""The Merkle tree of the event log, exactly as RFC 9162 section 2.1 defines it.

Leaves hash as SHA-256(0x00 || data), interior nodes as SHA-256(0x01 || left || right), and
the tree of n leaves splits at the largest power of two smaller than n. Proofs are lists of
subtree hashes; which subtrees they hold depends only on the leaf index and the tree sizes
(`inclusion_ranges`, `consistency_ranges`), so a store that keeps every complete subtree's
hash, `(level, index)`, assembles any root or proof from O(log n) of them (`range_hash`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Range = tuple[int, int]  # leaves [start, end)
Node = tuple[int, int]  # (level, index): the complete subtree of leaves [index * 2**level, (index + 1) * 2**level)
NodeHashes = Callable[[Sequence[Node]], Sequence[bytes]]  # their hashes, in the order asked


class ProofInvalid(Exception):
    """A proof that does not hold: the named check failed."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over leaves given by their hashes (the whole tree in memory)."""
    if not leaf_hashes:
        return EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = split(len(leaf_hashes))
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes make PATH(index, D[size]) (RFC 9162 2.1.3.1), leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index - start < k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(first: int, second: int) -> list[Range]:
    """The subtrees whose hashes make PROOF(first, D[second]) (RFC 9162 2.1.4.1), in order."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    proof: list[Range] = []
    m, start, end, whole = first, 0, second, True
    while m != end:
        k = split(end - start)
        if m - start <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            start += k
            whole = False
    if not whole:
        proof.append((start, end))
    proof.reverse()
    return proof


def pieces(start: int, end: int) -> list[Node]:
    """The complete subtrees that make the range [start, end), left to right. Every range a
    proof or a root asks for starts at a multiple of the largest of them."""
    nodes: list[Node] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start % (1 << level):
            raise ValueError(f"[{start}, {end}) is not a subtree of the log's tree")
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def range_hashes(ranges: Sequence[Range], nodes: NodeHashes) -> list[bytes]:
    """MTH of each range, from the complete subtrees' hashes, read in one call of `nodes`."""
    split_ranges = [pieces(start, end) for start, end in ranges]
    wanted = sorted({node for parts in split_ranges for node in parts})
    known = dict(zip(wanted, nodes(wanted), strict=True))
    hashes = []
    for parts in split_ranges:
        acc = known[parts[-1]]
        for node in reversed(parts[:-1]):  # the left piece is always the complete one
            acc = node_hash(known[node], acc)
        hashes.append(acc)
    return hashes


def root_of(size: int, nodes: NodeHashes) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hashes([(0, size)], nodes)[0]


def prove_inclusion(index: int, size: int, nodes: NodeHashes) -> list[bytes]:
    return range_hashes(inclusion_ranges(index, size), nodes)


def prove_consistency(first: int, second: int, nodes: NodeHashes) -> list[bytes]:
    if first == second:
        return []
    return range_hashes(consistency_ranges(first, second), nodes)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> None:
    """RFC 9162 2.1.3.2; ProofInvalid if the proof does not lead from `leaf` to `expected_root`."""
    if index >= size:
        raise ProofInvalid("leaf index beyond the tree size")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofInvalid("proof longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid("proof shorter than the tree is deep")
    if r != expected_root:
        raise ProofInvalid("root differs")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 2.1.4.2; ProofInvalid unless the tree of `first` is a prefix of the tree of `second`."""
    if first > second:
        raise ProofInvalid("first size beyond the second")
    if first == second:
        if proof or first_root != second_root:
            raise ProofInvalid("equal sizes need an empty proof and equal roots")
        return
    if first == 0:
        if proof:
            raise ProofInvalid("from the empty tree the proof is empty")
        return
    if not proof:
        raise ProofInvalid("empty proof")
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a subtree of the second
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofInvalid("proof longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofInvalid("proof shorter than the trees are deep")
    if fr != first_root:
        raise ProofInvalid("first root differs")
    if sr != second_root:
        raise ProofInvalid("second root differs")
