"""The state-root oracle: the doc's worked example by hand, and agreement with ZapDB."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.conformance.oracles import state_root as ref
from zapstack.zapdb import proofs, smt


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_worked_example_of_state_root_md() -> None:
    """{a: 1, b: 2}: kh(a) starts 0xca, kh(b) 0x3e; they split at depth 0."""
    assert _sha(b"a")[0] == 0xCA and _sha(b"b")[0] == 0x3E

    def leaf(k: bytes, v: bytes) -> bytes:
        return _sha(b"\x00" + _sha(k) + _sha(v))

    want = _sha(b"\x01" + leaf(b"b", b"2") + leaf(b"a", b"1"))
    assert ref.root({b"a": b"1", b"b": b"2"}) == want
    assert ref.root({}) == bytes(32)
    assert ref.root({b"a": b"1"}) == leaf(b"a", b"1")


def test_bit_numbering() -> None:
    path = bytes([0b1000_0001]) + bytes(31)
    assert [ref.bit(path, i) for i in range(8)] == [1, 0, 0, 0, 0, 0, 0, 1]


STATES = st.dictionaries(st.binary(min_size=1, max_size=6), st.binary(max_size=4), max_size=24)


@settings(max_examples=60, deadline=None)
@given(state=STATES, probe=st.binary(min_size=1, max_size=6))
def test_oracle_and_zapdb_agree_on_roots_and_proofs(
    state: dict[bytes, bytes], probe: bytes
) -> None:
    store = smt.DictNodeStore()
    smt.apply_updates(store, list(state.items()))
    root = ref.root(state)
    assert smt.root_of_store(store) == root == smt.reference_root(state)
    for key in [*list(state)[:3], probe]:
        sibs, term = ref.prove(state, key)
        proof = proofs.prove(store, key)
        assert (list(proof.siblings), proof.terminal) == (sibs, term)
        value = state.get(key)
        assert ref.verify_proof(root, key, value, sibs, term)
        assert not ref.verify_proof(root, key, b"?" if value is None else None, sibs, term)


@settings(max_examples=40, deadline=None)
@given(state=STATES, depth=st.integers(0, 4), data=st.data())
def test_oracle_and_zapdb_agree_on_chunks(
    state: dict[bytes, bytes], depth: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, 2**depth - 1))
    store = smt.DictNodeStore()
    smt.apply_updates(store, list(state.items()))
    entries, sibs, term = ref.chunk(state, depth, index)
    chunk = proofs.make_chunk(store, state.get, depth, index)
    assert (list(chunk.entries), list(chunk.siblings), chunk.terminal) == (entries, sibs, term)
    assert ref.verify_chunk(ref.root(state), depth, index, entries, sibs, term)
    union = [e for i in range(2**depth) for e in ref.chunk(state, depth, i)[0]]
    assert sorted(union) == sorted(state.items())
