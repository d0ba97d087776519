"""The state root: incremental tree == readable definition, order independence."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.zapdb import smt
from zapstack.zapdb.smt import DictNodeStore, apply_updates, reference_root

keys = st.binary(min_size=1, max_size=4)
values = st.binary(max_size=6)
ops = st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=60)


def test_empty_and_single_leaf_roots() -> None:
    assert reference_root({}) == smt.EMPTY == bytes(32)
    kh = hashlib.sha256(b"k").digest()
    vh = hashlib.sha256(b"v").digest()
    assert reference_root({b"k": b"v"}) == hashlib.sha256(b"\x00" + kh + vh).digest()


def test_two_leaves_split_on_first_differing_bit() -> None:
    # sha256(b"a")[0] = 0xca (bit0 = 1), sha256(b"b")[0] = 0x3e (bit0 = 0)
    la = smt.leaf_hash(smt.key_hash(b"a"), hashlib.sha256(b"1").digest())
    lb = smt.leaf_hash(smt.key_hash(b"b"), hashlib.sha256(b"2").digest())
    assert smt.bit(smt.key_hash(b"a"), 0) == 1 and smt.bit(smt.key_hash(b"b"), 0) == 0
    want = hashlib.sha256(b"\x01" + lb + la).digest()
    assert reference_root({b"a": b"1", b"b": b"2"}) == want


@settings(max_examples=150, deadline=None)
@given(ops)
def test_incremental_equals_reference_step_by_step(seq: list[tuple[bytes, bytes | None]]) -> None:
    store = DictNodeStore()
    model: dict[bytes, bytes] = {}
    for key, value in seq:
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
        assert apply_updates(store, [(key, value)]) == reference_root(model)


@settings(max_examples=100, deadline=None)
@given(ops, st.randoms(use_true_random=False))
def test_root_and_tree_independent_of_write_order(
    seq: list[tuple[bytes, bytes | None]], rnd: random.Random
) -> None:
    model: dict[bytes, bytes] = {}
    for key, value in seq:
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value
    one = DictNodeStore()
    apply_updates(one, seq)  # the history, in order, as one batch
    shuffled = list(model.items())
    rnd.shuffle(shuffled)
    other = DictNodeStore()
    for i in range(0, len(shuffled), 3):  # the final set, shuffled, in small batches
        apply_updates(other, shuffled[i : i + 3])
    assert smt.root_of_store(one) == smt.root_of_store(other) == reference_root(model)
    assert one.nodes == other.nodes  # the stored tree is canonical, too


def test_large_random_batches_match_reference() -> None:
    rng = random.Random(7)
    store = DictNodeStore()
    model: dict[bytes, bytes] = {}
    for _ in range(5):
        batch: list[tuple[bytes, bytes | None]] = []
        for _ in range(400):
            key = rng.randbytes(3)
            if model and rng.random() < 0.3:
                key = rng.choice(sorted(model))
                batch.append((key, None))
                model.pop(key)
            else:
                value = rng.randbytes(8)
                batch.append((key, value))
                model[key] = value
        assert apply_updates(store, batch) == reference_root(model)
    # depth stays logarithmic: no node deeper than ~2 log2(n) + slack
    assert max(p[32] for p in store.nodes) < 40


def test_deleting_everything_empties_the_store() -> None:
    store = DictNodeStore()
    items = [(bytes([i]), b"x") for i in range(50)]
    apply_updates(store, items)
    assert apply_updates(store, [(k, None) for k, _ in items]) == smt.EMPTY
    assert store.nodes == {}
