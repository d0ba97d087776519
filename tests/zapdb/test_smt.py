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


def _preorder(store: DictNodeStore, depth: int, prefix: int, out: list[tuple[int, int]]) -> None:
    """Positions (depth, prefix) of the stored records: the node, its left subtree, its
    right subtree -- the tree's shape only, no key encoding."""
    rec = store.nodes.get(smt.path_key(prefix, depth))
    if rec is None:
        return
    out.append((depth, prefix))
    if rec[0] == smt.NODE_TAG:
        _preorder(store, depth + 1, prefix, out)
        _preorder(store, depth + 1, prefix | (1 << (255 - depth)), out)


@settings(max_examples=60, deadline=None)
@given(st.sets(st.binary(min_size=1, max_size=6), max_size=120))
def test_node_keys_sort_in_preorder_and_subtrees_are_key_ranges(ks: set[bytes]) -> None:
    store = DictNodeStore()
    apply_updates(store, [(k, b"v") for k in ks])
    order: list[tuple[int, int]] = []
    _preorder(store, 0, 0, order)
    assert len(order) == len(store.nodes)
    assert [smt.path_key(p, d) for d, p in order] == sorted(store.nodes)
    for d, p in order:  # the records under (d, p): exactly its key range
        lo, hi = smt.subtree_range(d, p)
        inside = {k for k in store.nodes if lo <= k < hi}
        below = {
            smt.path_key(q, e)
            for e, q in order
            if e >= d and (d == 0 or q >> (256 - d) == p >> (256 - d))
        }
        assert inside == below


def test_node_key_encoding_is_path_then_depth() -> None:
    kint = int.from_bytes(bytes([0b10110000]) + bytes(31), "big")
    assert smt.path_key(kint, 0) == bytes(33)
    assert smt.path_key(kint, 3) == bytes([0b10100000]) + bytes(31) + b"\x03"
    assert bytes(33) == smt.ROOT_PATH
    assert smt.subtree_range(1, 1 << 255) == (b"\x80" + bytes(31) + b"\x01", b"\xff" * 34)
    assert smt.subtree_range(1, 0) == (bytes(32) + b"\x01", b"\x80" + bytes(32))
