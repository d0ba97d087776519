"""Membership / non-membership proofs and verifiable state chunks."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import LocalProtocolError
from zapstack.zapdb.proofs import Proof, StateChunk, make_chunk, prove, verify_chunk, verify_proof
from zapstack.zapdb.smt import DictNodeStore, apply_updates, reference_root

states = st.dictionaries(st.binary(min_size=1, max_size=3), st.binary(max_size=5), max_size=40)


def _tree(state: dict[bytes, bytes]) -> tuple[DictNodeStore, bytes]:
    store = DictNodeStore()
    root = apply_updates(store, list(state.items()))
    return store, root


@settings(max_examples=100, deadline=None)
@given(states, st.binary(min_size=1, max_size=3))
def test_membership_and_non_membership(state: dict[bytes, bytes], probe: bytes) -> None:
    store, root = _tree(state)
    assert root == reference_root(state)
    for key, value in state.items():
        proof = prove(store, key)
        assert verify_proof(root, key, value, proof)
        assert not verify_proof(root, key, value + b"!", proof)
        assert not verify_proof(root, key, None, proof)  # cannot claim absence
    proof = prove(store, probe)
    if probe in state:
        assert verify_proof(root, probe, state[probe], proof)
    else:
        assert verify_proof(root, probe, None, proof)
        assert not verify_proof(root, probe, b"anything", proof)


def test_tampered_proofs_fail() -> None:
    state = {bytes([i]): bytes([i]) * 3 for i in range(30)}
    store, root = _tree(state)
    proof = prove(store, b"\x05")
    assert verify_proof(root, b"\x05", b"\x05" * 3, proof)
    bad_sib = (bytes(32), *proof.siblings[1:])
    assert not verify_proof(root, b"\x05", b"\x05" * 3, Proof(bad_sib, proof.terminal))
    assert not verify_proof(root, b"\x05", b"\x05" * 3, Proof(proof.siblings[:-1], proof.terminal))
    # another key's leaf cannot prove absence of a key that is present
    other = prove(store, b"\x06")
    assert not verify_proof(root, b"\x05", None, other)
    assert not verify_proof(bytes(32), b"\x05", b"\x05" * 3, proof)


@pytest.mark.parametrize("depth", [0, 1, 3, 6])
def test_chunks_cover_state_exactly_once(depth: int) -> None:
    rng = random.Random(depth)
    state = {rng.randbytes(4): rng.randbytes(6) for _ in range(60)}
    store, root = _tree(state)
    seen: dict[bytes, bytes] = {}
    for index in range(1 << depth):
        chunk = make_chunk(store, state.get, depth, index)
        assert verify_chunk(root, chunk)
        for key, value in chunk.entries:
            assert key not in seen
            seen[key] = value
    assert seen == state


def test_tampered_chunks_fail() -> None:
    rng = random.Random(1)
    state = {rng.randbytes(4): rng.randbytes(6) for _ in range(40)}
    store, root = _tree(state)
    chunk = next(
        c for c in (make_chunk(store, state.get, 2, i) for i in range(4)) if len(c.entries) > 1
    )
    assert verify_chunk(root, chunk)
    k0, v0 = chunk.entries[0]

    def variant(**kw: object) -> StateChunk:
        fields = {f: getattr(chunk, f) for f in StateChunk.__slots__}
        fields.update(kw)
        return StateChunk(**fields)  # type: ignore[arg-type]

    assert not verify_chunk(root, variant(entries=chunk.entries[1:]))  # dropped entry
    assert not verify_chunk(root, variant(entries=((k0, v0 + b"x"), *chunk.entries[1:])))
    assert not verify_chunk(root, variant(entries=chunk.entries + chunk.entries[:1]))
    assert not verify_chunk(root, variant(index=(chunk.index + 1) % 4))
    assert not verify_chunk(root, variant(siblings=(bytes(32),) * len(chunk.siblings)))


def test_sparse_chunks_stop_early_and_still_verify() -> None:
    state = {b"only": b"one"}
    store, root = _tree(state)
    chunks = [make_chunk(store, state.get, 4, i) for i in range(16)]
    assert all(verify_chunk(root, c) for c in chunks)
    assert sum(len(c.entries) for c in chunks) == 1
    assert all(len(c.siblings) == 0 for c in chunks)  # the root itself is the leaf


def test_chunk_range_checked() -> None:
    store, _ = _tree({})
    with pytest.raises(LocalProtocolError):
        make_chunk(store, lambda k: None, 2, 4)
    with pytest.raises(LocalProtocolError):
        make_chunk(store, lambda k: None, 25, 0)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.lists(st.binary(min_size=32, max_size=32), max_size=40),
)
def test_c_fold_equals_the_python_fold(path: bytes, node: bytes, sibs: list[bytes]) -> None:
    from zapstack.zapdb.proofs import _fold, _fold_py

    want = _fold_py(path, node, tuple(sibs))
    assert _fold(path, node, tuple(sibs)) == want
    if sibs:  # one level by hand: the deepest sibling sits left or right by the path's bit
        d = len(sibs)
        left = (path[(d - 1) >> 3] >> (7 - ((d - 1) & 7))) & 1
        pair = sibs[-1] + node if left else node + sibs[-1]
        up = hashlib.sha256(b"\x01" + pair).digest()
        assert want == _fold_py(path, up, tuple(sibs[:-1]))


@settings(max_examples=100, deadline=None)
@given(states, st.integers(0, 8), st.integers(0, 255))
def test_c_walk_equals_the_python_walk(state: dict[bytes, bytes], depth: int, seed: int) -> None:
    """The chunk server's walk toward a prefix: C and the readable walk give the same
    siblings and stop (an empty subtree or a lone leaf above the depth, or none)."""
    from zapstack.zapdb import _smtfast
    from zapstack.zapdb.proofs import _walk

    store, _ = _tree(state)
    for index in {0, (1 << depth) - 1, seed % (1 << depth)}:
        pint = index << (256 - depth)
        want = _walk(store.get_node, depth, pint)
        assert _smtfast.walk(store.get_node, depth, pint.to_bytes(32, "big")) == want


def test_c_walk_refuses_what_it_cannot_read() -> None:
    from zapstack.zapdb import _smtfast

    with pytest.raises(ValueError):
        _smtfast.walk(lambda k: b"\x01" + bytes(10), 2, bytes(32))  # a short interior record
    with pytest.raises(TypeError):
        _smtfast.walk(lambda k: memoryview(bytes(65)), 1, bytes(32))
    with pytest.raises(ValueError):
        _smtfast.walk(lambda k: None, 1, bytes(31))
