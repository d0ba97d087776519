"""The fast path (zapdb.batch and its C extension) equals the readable definitions: SHA-256 == hashlib, merge == the
pure-Python tree (same root as ``reference_root``, the very same node records)."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import StoreError
from zapstack.zapdb import ZapDB, batch, smt
from zapstack.zapdb.smt import DictNodeStore, apply_updates_py, reference_root

from .conftest import apply_ops

fast = pytest.importorskip("zapstack.zapdb._smtfast")

keys = st.binary(min_size=1, max_size=4)
values = st.binary(max_size=6)
ops_batch = st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=40)


@pytest.fixture(params=["portable", "native"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name = fast.select(request.param == "portable")
    if request.param == "native" and name == "portable":
        fast.select(False)
        pytest.skip("no SHA extensions on this CPU")
    try:
        yield name
    finally:
        fast.select(False)


def test_sha256_equals_hashlib_at_every_length(backend: str) -> None:
    rng = random.Random(7)
    for n in range(0, 300):
        data = rng.randbytes(n)
        assert fast.sha256(data) == hashlib.sha256(data).digest(), (backend, n)
    big = rng.randbytes(100_003)
    assert fast.sha256(memoryview(big)[3:]) == hashlib.sha256(big[3:]).digest()
    items = [rng.randbytes(rng.randrange(200)) for _ in range(50)]
    assert fast.sha256_many(items) == b"".join(hashlib.sha256(x).digest() for x in items)


def test_node_hash_is_the_tagged_hash(backend: str) -> None:
    a, b = bytes(range(32)), bytes(range(32, 64))
    assert fast.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    with pytest.raises(ValueError):
        fast.node_hash(a, b[:31])


def _python_tree(state: dict[bytes, bytes]) -> dict[bytes, bytes | None]:
    store = DictNodeStore()
    apply_updates_py(store, state.items())
    return store.nodes


@settings(max_examples=150, deadline=None)
@given(st.lists(ops_batch, max_size=5))
def test_merge_equals_python_tree_batch_after_batch(
    batches: list[list[tuple[bytes, bytes | None]]],
) -> None:
    store = DictNodeStore()
    model: dict[bytes, bytes] = {}
    for ops in batches:
        for key, value in ops:
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        root, record, writes = fast.merge(store.get_node, [k for k, _ in ops], [v for _, v in ops])
        assert [w[0] for w in writes] == sorted({w[0] for w in writes})  # sorted, each once
        for path, rec in [*writes, (smt.ROOT_PATH, record)]:
            store.put_node(path, rec)
        assert root == reference_root(model)
        assert store.nodes == _python_tree(model)  # byte-identical records


@settings(max_examples=60, deadline=None)
@given(ops_batch, ops_batch)
def test_into_and_memo_layers_give_the_same_tree(
    first: list[tuple[bytes, bytes | None]], second: list[tuple[bytes, bytes | None]]
) -> None:
    base = DictNodeStore()
    apply_updates_py(base, first)
    plain = DictNodeStore()
    plain.nodes = dict(base.nodes)
    want = apply_updates_py(plain, second)
    writes: dict[bytes, bytes | None] = {smt.ROOT_PATH: base.get_node(smt.ROOT_PATH)}
    upper, lower = fast.NodeTable(), fast.NodeTable()
    root, record, count = fast.merge(
        base.get_node,
        [k for k, _ in second],
        [v for _, v in second],
        into=writes,
        upper=upper,
        lower=lower,
        split=2,
    )
    writes[smt.ROOT_PATH] = record
    assert root == want and count == len(writes) - 1
    merged = {**base.nodes, **writes}
    assert {k: v for k, v in merged.items() if v is not None} == plain.nodes
    for memo in (upper, lower):  # memoised reads are the base's records
        assert all(base.get_node(k) == v for k, v in memo.items())
    assert all(k[32] < 2 for k, _ in upper.items()) and all(k[32] >= 2 for k, _ in lower.items())


def test_strict_build_rejects_what_verify_chunk_rejects() -> None:
    ks = sorted((b"k%d" % i for i in range(20)), key=smt.key_hash)
    vs: list[bytes | memoryview | None] = [b"v"] * len(ks)
    ok = fast.merge(None, ks, vs, 0, bytes(32), True)
    assert ok is not None and ok[0] == reference_root(dict.fromkeys(ks, b"v"))
    assert fast.merge(None, ks[::-1], vs, 0, bytes(32), True) is None  # unsorted
    assert fast.merge(None, ks + ks[-1:], [*vs, b"v"], 0, bytes(32), True) is None  # repeat
    assert fast.merge(None, ks, [*vs[:-1], None], 0, bytes(32), True) is None  # a delete
    inside = [k for k in ks if smt.bit(smt.key_hash(k), 0) == 1]
    prefix = bytes([0x80]) + bytes(31)
    built = fast.merge(None, inside, [b"v"] * len(inside), 1, prefix, True)
    assert built is not None
    assert built[0] == smt.subtree_hash([(smt.key_hash(k), smt.key_hash(b"v")) for k in inside], 1)
    assert fast.merge(None, ks, vs, 1, prefix, True) is None  # outside the prefix


def test_malformed_input_and_corrupt_records_raise() -> None:
    with pytest.raises(ValueError):
        fast.merge(None, [b"a"], [b"1", b"2"])
    with pytest.raises(ValueError):
        fast.merge(None, [b""], [b"1"])
    with pytest.raises(ValueError):
        fast.merge(None, [b"a"], [b"1"], 1, bytes([0x40]) + bytes(31))  # bits past depth
    with pytest.raises(ValueError):
        fast.merge(lambda _p: b"\x07garbage", [b"a"], [b"1"])


def test_later_duplicate_wins_like_sequential_updates() -> None:
    store = DictNodeStore()
    ops: list[tuple[bytes, bytes | None]] = [(b"a", b"1"), (b"b", b"2"), (b"a", None), (b"b", b"3")]
    assert batch.apply_batch(store, ops) == reference_root({b"b": b"3"})


def test_sorted_items_sorts_like_python() -> None:
    rng = random.Random(5)
    d: dict[bytes, bytes | None] = {
        rng.randbytes(rng.randrange(1, 6)): rng.choice([None, b"v"]) for _ in range(500)
    }
    d[b"ab"], d[b"a"], d[b"abc"] = b"1", b"2", None  # prefixes sort first
    got = fast.sorted_items(d)
    assert list(got.items()) == sorted(d.items(), key=lambda kv: kv[0])
    assert batch.sort_writes(d) == got and list(batch.sort_writes(d)) == list(got)
    with pytest.raises(TypeError):
        fast.sorted_items({"text": b"x"})


def test_scan_reports_deletes_and_order() -> None:
    assert fast.scan({b"a": b"1", b"b": b"2"}) == (False, True)
    assert fast.scan({b"b": b"1", b"a": b"2"}) == (False, False)
    assert fast.scan({b"a": None, b"ab": b"2"}) == (True, True)
    assert batch.scan_writes({b"b": b"1", b"a": None}) == fast.scan({b"b": b"1", b"a": None})
    pairs = [(b"a", None), (b"ab", b"2"), (b"b", b"3")]  # a commit's tree records: a list
    assert fast.scan(pairs) == (True, True) and fast.scan(pairs[::-1]) == (True, False)
    with pytest.MonkeyPatch.context() as mp:  # the pure-Python fallback says the same
        mp.setattr(batch, "_smtfast", None)
        assert batch.scan_writes(pairs[::-1]) == (True, False)
        assert batch.scan_writes(pairs[1:]) == (False, True)


def test_txn_roots_equal_with_and_without_the_extension(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(3)
    blocks = [
        {
            b"k%d" % rng.randrange(300): (None if rng.random() < 0.2 else rng.randbytes(5))
            for _ in range(120)
        }
        for _ in range(4)
    ]
    roots = []
    for use_fast in (True, False):
        monkeypatch.setattr(smt, "FAST", use_fast)
        monkeypatch.setattr(batch, "FAST", use_fast)
        db = ZapDB.open(f"{tmp_path}/db{use_fast}", map_size=1 << 24)
        model: dict[bytes, bytes] = {}
        for block in blocks:
            txn = db.begin()
            apply_ops(txn, model, block.items())
            assert txn.commit() == reference_root(model)
        with db.read() as view:
            assert view.tree_root() == db.root()
            roots.append(db.root())
        db.close()
    assert roots[0] == roots[1]


# ------------------------------------------------------------ byte helpers vs sorted()

_prefixed = st.lists(
    st.tuples(
        st.sampled_from([b"", b"acct/", b"acct/0000000", b"\x05"]), st.binary(max_size=12)
    ).map(lambda t: t[0] + t[1]),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_prefixed)
def test_sorted_items_and_sorted_entries_equal_sorted(raw: list[bytes]) -> None:
    d = {k: len(k) for k in raw}
    assert list(fast.sorted_items(d).items()) == sorted(d.items())
    distinct = list(d.items())
    half = len(distinct) // 2
    groups = [tuple(distinct[:half]), tuple(distinct[half:])]
    for fast_path in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            if not fast_path:
                mp.setattr(batch, "_smtfast", None)
            got = batch.sorted_entries(groups)
            assert list(got.items()) == sorted(distinct)
            if distinct:
                with pytest.raises(StoreError):
                    batch.sorted_entries([*groups, (distinct[0],)])


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=1, max_size=12), st.binary(max_size=8), max_size=60),
    st.integers(0, 6),
    st.integers(-1, 120),
    st.integers(0, 7),
)
def test_subtree_keys_equal_the_key_range_scan(
    state: dict[bytes, bytes], depth: int, budget: int, per_leaf: int
) -> None:
    """subtree_keys (a pre-order count over record values) == the leaves of the subtree's
    key range (the readable scan), for every subtree at ``depth`` of a real tree.  With a
    budget (``-1``: none) it says True and gives them all exactly when their
    ``per_leaf + len(key)`` add up to at most the budget; otherwise False, having given the
    longest prefix of them that fits and read no record past the leaf that did not."""
    store = DictNodeStore()
    apply_updates_py(store, state.items())
    records = sorted((k, r) for k, r in store.nodes.items() if r is not None)
    for index in range(1 << depth):
        pint = index << (256 - depth)
        lo, end = smt.subtree_range(depth, pint)
        expected = [r[65:] for k, r in records if lo <= k < end and r[0] == 0]
        start = next((i for i, (k, _) in enumerate(records) if k == lo), None)
        keys: list[bytes] = []
        whole = True
        run = iter([r for _, r in records[start:]] if start is not None else [])
        if start is not None:
            whole = fast.subtree_keys(run, depth, pint.to_bytes(32, "big"), keys, budget, per_leaf)
        costs = list(itertools.accumulate(per_leaf + len(k) for k in expected))
        fits = len(expected) if budget < 0 else sum(1 for c in costs if c <= budget)
        assert whole is (fits == len(expected))
        assert keys == expected[:fits]
        if not whole:  # it stopped at the leaf that passed: the next record is the one after
            stop = next(i for i, (_, r) in enumerate(records[start:]) if r[65:] == expected[fits])
            assert next(run, None) == (
                records[start + stop + 1][1] if start + stop + 1 < len(records) else None
            )


def test_subtree_keys_refuses_a_corrupt_run() -> None:
    h = b"\x11" * 32
    node, zero = b"\x01" + h + h, bytes(32)
    leaf_left = b"\x00" + bytes(32) + h + b"k"  # key hash 00..: inside prefix 0 at depth 1
    leaf_right = b"\x00" + b"\x80" + bytes(31) + h + b"k"
    path0 = bytes(32)
    for run in (
        [node, leaf_left],  # the second child is missing: the run ends early
        [b"\x02" + h + h],  # no such tag
        [b"\x01" + h],  # an interior record cut short
        [b"\x00" + h + h],  # a leaf without a key
        [leaf_right],  # a leaf outside the subtree's prefix
        ["not bytes"],
    ):
        with pytest.raises(ValueError):
            fast.subtree_keys(iter(run), 1, path0, [])
    out: list[bytes] = []
    fast.subtree_keys(iter([b"\x01" + zero + h, leaf_left, leaf_right]), 1, path0, out)
    assert out == [b"k"]  # one child due: the run stops before the next subtree's leaf
    with pytest.raises(ValueError):
        fast.subtree_keys(iter([]), 0, b"short", [])


# ------------------------------------------------------------ NodeTable vs a dict

_paths = st.builds(
    lambda p, d: bytes(p) + bytes([d]), st.binary(min_size=32, max_size=32), st.integers(0, 255)
)
_path_pool = st.lists(_paths, min_size=1, max_size=12, unique=True)
_records = st.one_of(
    st.none(),
    st.binary(min_size=64, max_size=64).map(lambda b: b"\x01" + b),  # interior
    st.binary(min_size=65, max_size=80).map(lambda b: b"\x00" + b),  # leaf
)
_table_op = st.tuples(
    st.sampled_from(["set", "get", "copy", "absorb", "absorb_list"]),
    st.integers(0, 11),
    _records,
    st.integers(0, 256),
)


@settings(max_examples=200, deadline=None)
@given(_path_pool, st.lists(_table_op, max_size=60))
def test_node_table_behaves_like_a_dict(
    pool: list[bytes], ops: list[tuple[str, int, bytes | None, int]]
) -> None:
    table, model = fast.NodeTable(), {}
    copies: list[tuple[object, dict[bytes, bytes | None]]] = []
    for op, i, rec, split in ops:
        key = pool[i % len(pool)]
        if op == "set":
            table[key] = rec
            model[key] = rec
        elif op == "get":
            assert (key in table) == (key in model)
            assert table.get(key, b"?") == model.get(key, b"?")
        elif op == "copy":  # a copy is independent of later writes on either side
            copies.append((table.copy(), dict(model)))
        else:
            nodes = {k: rec for k in pool[: i % len(pool) + 1]}
            table.absorb(nodes if op == "absorb" else list(nodes.items()), split)
            model.update((k, v) for k, v in nodes.items() if k[32] < split)
        assert len(table) == len(model)
    assert dict(table.items()) == model and [k for k, _ in table.items()] == list(model)
    for got, want in copies:
        assert dict(got.items()) == want  # type: ignore[attr-defined]
    installed = {pool[0]: b"\x00" + bytes(70), b"\x00" * 33: None}
    assert table.merged(installed) == sorted({**installed, **model}.items())
    assert table.merged({}) == sorted(model.items())


def test_node_table_rejects_bad_keys_records_and_deletes() -> None:
    table = fast.NodeTable()
    with pytest.raises(TypeError):
        table[b"short"] = None
    with pytest.raises(ValueError):
        table[bytes(33)] = b"\x02" + bytes(64)  # neither an interior nor a leaf record
    with pytest.raises(TypeError):
        del table[bytes(33)]
    with pytest.raises(KeyError):
        table[bytes(33)]
    assert table.nbytes() > 0 and len(table) == 0


def test_big_batches_take_the_linear_sorts_and_equal_python() -> None:
    rng = random.Random(11)  # >= 4096 leaves and >= 2048 keys: the bucket and radix sorts
    keys = [b"acct/%07d" % rng.randrange(10**6) for _ in range(6000)]
    keys += [b"acct/" + b"x" * 9 + b"%d" % i for i in range(300)]  # ties on 8 bytes
    values: list[bytes | None] = [rng.randbytes(8) for _ in keys]
    model: dict[bytes, bytes] = {}
    for key, value in zip(keys, values, strict=True):
        model[key] = value  # type: ignore[assignment]
    root, record, writes = fast.merge(None, keys, values)
    assert root == reference_root(model)
    assert {**dict(writes), smt.ROOT_PATH: record} == _python_tree(model)
    d = {k: None for k in keys}
    assert list(fast.sorted_items(d)) == sorted(d)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.tuples(keys, st.one_of(st.none(), values)), max_size=25), max_size=6))
def test_txn_tree_tables_over_commits_roots_and_forks_equal_python(
    tmp_path_factory: pytest.TempPathFactory, steps: list[list[tuple[bytes, bytes | None]]]
) -> None:
    with ZapDB.open(tmp_path_factory.mktemp("db") / "db", map_size=1 << 24) as db:
        model: dict[bytes, bytes] = {}
        for i, ops in enumerate(steps):
            txn = db.snapshot()
            mine = dict(model)
            half = len(ops) // 2
            apply_ops(txn, mine, ops[:half])
            assert txn.root() == reference_root(mine)  # a first merge into a fresh table
            other = txn.fork()  # the fork copies the table
            theirs = dict(mine)
            apply_ops(txn, mine, ops[half:])
            apply_ops(other, theirs, ops[:half:-1])
            assert txn.root() == reference_root(mine)  # a second merge over the table
            assert other.root() == reference_root(theirs)
            won, state = (txn, mine) if i % 2 else (other, theirs)
            lost = other if won is txn else txn
            lost.discard()
            assert won.commit() == reference_root(state)
            model = state
            with db._env.begin() as raw:
                stored = dict(raw.cursor(db=db._dbs[1]).iternext())
            assert stored == _python_tree(model)  # the very same records, none left over


def test_a_merge_reads_its_table_then_the_nodes_dict_then_the_base() -> None:
    rng = random.Random(5)
    state = {b"k%d" % i: rng.randbytes(6) for i in range(400)}
    installed: dict[bytes, bytes | None] = {smt.ROOT_PATH: None}
    _, installed[smt.ROOT_PATH] = batch.build(list(state), list(state.values()), installed)
    tree = fast.NodeTable()
    for step in range(2):  # a first merge into the fresh table, then one over it
        ops = [(b"k%d" % rng.randrange(500), None if i % 3 else b"v%d" % step) for i in range(60)]
        apply_ops(_NoTxn(), state, ops)
        root, _, _ = fast.merge(
            lambda path: None, [k for k, _ in ops], [v for _, v in ops], into=tree, nodes=installed
        )  # the base holds nothing: every record read comes from the two layers
        assert root == reference_root(state)
        merged = tree.merged(installed)
        assert merged == sorted({**installed, **dict(tree.items())}.items())
        assert {k: v for k, v in merged if v is not None} == _python_tree(state)


class _NoTxn:
    """apply_ops' txn side, for a test that only keeps the model."""

    def set(self, key: bytes, value: bytes) -> None:
        pass

    def delete(self, key: bytes) -> None:
        pass


def test_node_table_grows_and_indexes_a_fresh_merge_like_a_dict() -> None:
    rng = random.Random(9)
    table, model = fast.NodeTable(), {}
    for i in range(5000):  # past several index and entry-array growths
        key = rng.randbytes(32) + bytes([i % 256])
        model[key] = table[key] = None if i % 7 == 0 else b"\x01" + rng.randbytes(64)
    twin = table.copy()
    for key in list(model)[::3]:
        table[key] = b"\x00" + bytes(70)  # replaced in place: twin keeps the old value
    assert len(twin) == len(table) == 5000 and dict(twin.items()) == model
    assert all(
        table[k] == (b"\x00" + bytes(70) if j % 3 == 0 else model[k]) for j, k in enumerate(model)
    )
    # a fresh txn table filled by one merge (appended unindexed), then read by key
    keys = [b"k%d" % i for i in range(3000)]
    tree = fast.NodeTable()
    root, _, count = fast.merge(None, keys, [b"v"] * len(keys), into=tree)
    assert root == reference_root(dict.fromkeys(keys, b"v")) and len(tree) == count + 1
    want = {**_python_tree(dict.fromkeys(keys, b"v"))}
    assert all(tree[k] == v for k, v in want.items()) and dict(tree.items()) == want


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=1, max_size=4), st.binary(max_size=4), max_size=20),
    st.sets(st.binary(min_size=1, max_size=4), max_size=20),
    st.booleans(),
)
def test_pending_lists_pairs_each_pending_key_with_its_value(
    writes: dict[bytes, bytes], extra: set[bytes], shuffled: bool
) -> None:
    """Each pending key once, with its write, or the base's value where none is left
    (rolled back); a shuffle only reorders (from the sorted keys)."""
    pending = set(writes) | extra
    base = {k: b"base:" + k for k in extra}
    seen: list[list[bytes]] = []
    shuffle = (lambda ks: (seen.append(list(ks)), ks.reverse())) if shuffled else None
    keys, values = batch.pending_lists(pending, writes, base.get, shuffle)
    assert sorted(keys) == sorted(pending) and len(keys) == len(pending)
    assert dict(zip(keys, values, strict=True)) == {
        k: writes[k] if k in writes else base[k] for k in pending
    }
    if shuffled:
        assert seen == [sorted(pending)] and keys == sorted(pending)[::-1]
