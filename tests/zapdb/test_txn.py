"""Txn / Branch: overlay semantics, per-tx rollback, unwind contract, stateful model test."""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from zapstack.errors import ConflictError, LocalProtocolError, StoreError
from zapstack.testing.unwind import check_unwind_contract
from zapstack.zapdb import Txn, ZapDB, reference_root

from .conftest import apply_ops


def _contents(db: ZapDB) -> dict[bytes, bytes]:
    with db.read() as view:
        return dict(view.iterate())


def _seed(db: ZapDB, state: dict[bytes, bytes]) -> None:
    with db.begin() as txn:
        for k, v in state.items():
            txn.set(k, v)
        txn.commit()


def test_overlay_reads_writes_and_iterate(db: ZapDB) -> None:
    _seed(db, {b"a/1": b"x", b"a/2": b"y", b"b/1": b"z"})
    txn = db.begin()
    txn.set(b"a/3", b"new")
    txn.delete(b"a/1")
    txn.set(b"a/\xff", memoryview(b"view"))
    assert txn.get(b"a/1") is None and txn.get(b"a/3") == b"new"
    assert txn.get(b"a/\xff") == b"view"
    assert list(txn.iterate(b"a/")) == [(b"a/2", b"y"), (b"a/3", b"new"), (b"a/\xff", b"view")]
    assert list(txn.iterate(start=b"a/3", end=b"b/2")) == [
        (b"a/3", b"new"),
        (b"a/\xff", b"view"),
        (b"b/1", b"z"),
    ]
    with pytest.raises(StoreError):
        txn.iterate(b"a", start=b"a")
    assert _contents(db) == {b"a/1": b"x", b"a/2": b"y", b"b/1": b"z"}  # not visible yet
    root = txn.commit()
    assert root == db.root() == reference_root(_contents(db))


def test_key_limits(db: ZapDB) -> None:
    txn = db.begin()
    txn.set(b"k" * 511, b"")
    for bad in (b"", b"k" * 512):
        with pytest.raises(LocalProtocolError):
            txn.set(bad, b"v")
    txn.discard()


def test_conflict_exactly_one_branch_of_a_height_commits(db: ZapDB) -> None:
    _seed(db, {b"n": b"0"})
    branches = [db.snapshot() for _ in range(3)]
    for i, br in enumerate(branches):
        br.set(b"n", str(i + 1).encode())
    branches[1].commit()
    for br in (branches[0], branches[2]):
        with pytest.raises(ConflictError):
            br.commit()
        assert br.state == "discarded"
        with pytest.raises(StoreError):
            br.get(b"n")
    assert _contents(db) == {b"n": b"2"}
    with pytest.raises(StoreError):
        branches[1].commit()  # already committed: not a second commit
    assert db.snapshot_refs() == 0


def test_rollback_is_a_savepoint(db: ZapDB) -> None:
    _seed(db, {b"a": b"1", b"b": b"2"})
    txn = db.begin()
    root0 = txn.root()
    with txn.tx() as s1:
        txn.set(b"a", b"10")
        txn.delete(b"b")
    with txn.tx() as s2:
        txn.set(b"c", b"3")
        txn.set(b"a", b"11")
    assert s1.diff is not None and s2.diff is not None
    assert s1.diff.keys == (b"a", b"b") and s2.diff.keys == (b"c", b"a")
    root2 = txn.root()
    assert txn.rollback(s2.diff)
    assert dict(txn.iterate()) == {b"a": b"10"}
    assert txn.rollback(s2.diff) is False  # already undone
    with txn.tx() as s3:
        txn.set(b"c", b"3")
        txn.set(b"a", b"11")
    assert txn.root() == root2
    assert txn.rollback(s1.diff)  # undoes s1 and the later s3
    assert dict(txn.iterate()) == {b"a": b"1", b"b": b"2"}
    assert txn.root() == root0
    assert s3.diff is not None and txn.rollback(s3.diff) is False
    other = db.begin()
    with pytest.raises(LocalProtocolError):
        other.rollback(s1.diff)
    other.discard()
    txn.discard()
    assert txn.rollback(s1.diff) is False


def test_tx_context_rolls_back_on_error(db: ZapDB) -> None:
    _seed(db, {b"bal": b"5"})
    txn = db.begin()
    with pytest.raises(ValueError), txn.tx():
        txn.set(b"bal", b"-1")
        raise ValueError("insufficient balance")
    assert txn.get(b"bal") == b"5"
    txn.begin_tx()
    with pytest.raises(LocalProtocolError):
        txn.begin_tx()
    txn.set(b"x", b"1")
    assert txn.abort_tx() and not txn.abort_tx()
    with pytest.raises(LocalProtocolError):
        txn.end_tx()
    assert txn.get(b"x") is None
    txn.discard()


# ---------------------------------------------------------------- unwind contract


def _observe_db(db: ZapDB) -> tuple[Any, ...]:
    return (_contents(db), db.root(), db.snapshot_refs())


def _discard_states(db: ZapDB, make: str) -> dict[str, Any]:
    """Subjects in every state a txn/branch can be in, with the db view expected after."""

    def open_txn() -> Txn:
        return db.begin() if make == "txn" else db.snapshot()

    def fresh() -> tuple[Txn, Any]:
        want = _observe_db(db)
        return open_txn(), want

    def dirty() -> tuple[Txn, Any]:
        want = _observe_db(db)
        t = open_txn()
        for i in range(50):
            t.set(b"k%d" % i, b"v")
        t.delete(b"seed")
        t.root()
        return t, want

    def mid_tx() -> tuple[Txn, Any]:
        want = _observe_db(db)
        t = open_txn()
        t.begin_tx()
        t.set(b"seed", b"changed")
        return t, want

    def rolled_back() -> tuple[Txn, Any]:
        want = _observe_db(db)
        t = open_txn()
        with t.tx() as s:
            t.set(b"a", b"b")
        assert s.diff is not None
        t.rollback(s.diff)
        return t, want

    def committed() -> tuple[Txn, Any]:
        t = open_txn()
        t.set(b"seed", b"%d" % random.randrange(1 << 30))
        t.commit()
        return t, _observe_db(db)

    def conflicted() -> tuple[Txn, Any]:
        t = open_txn()
        t.set(b"lost", b"1")
        winner = db.begin()
        winner.set(b"won", b"%d" % random.randrange(1 << 30))
        winner.commit()
        with pytest.raises(ConflictError):
            t.commit()
        return t, _observe_db(db)

    def discarded() -> tuple[Txn, Any]:
        want = _observe_db(db)
        t = open_txn()
        t.set(b"x", b"y")
        t.discard()
        return t, want

    return {
        "fresh": fresh,
        "dirty": dirty,
        "mid-tx": mid_tx,
        "rolled-back": rolled_back,
        "committed": committed,
        "conflicted": conflicted,
        "discarded": discarded,
    }


@pytest.mark.parametrize("make", ["txn", "branch"])
def test_unwind_contract_discard(db: ZapDB, make: str) -> None:
    _seed(db, {b"seed": b"0"})
    n = check_unwind_contract(_discard_states(db, make), Txn.discard, lambda t: _observe_db(db))
    assert n == 7
    assert db.snapshot_refs() == 0


def test_unwind_contract_discard_after_close(tmp_path: Any) -> None:
    def closed_db() -> tuple[Txn, Any]:
        store = ZapDB.open(tmp_path / f"c{random.randrange(1 << 30)}", map_size=1 << 22)
        t = store.begin()
        t.set(b"a", b"b")
        store.close()
        return t, "discarded"

    check_unwind_contract({"db-closed": closed_db}, Txn.discard, lambda t: t.state)


def test_unwind_contract_rollback(db: ZapDB) -> None:
    _seed(db, {b"a": b"1"})

    def view(t: Txn) -> Any:
        return dict(t.iterate()) if t.state == "open" else t.state

    def with_diff(after: str) -> tuple[tuple[Txn, Any], Any]:
        t = db.begin()
        t.set(b"pre", b"p")
        before = dict(t.iterate())
        with t.tx() as s:
            t.set(b"a", b"2")
            t.delete(b"pre")
        if after == "later-tx":
            with t.tx():
                t.set(b"b", b"3")
        elif after == "open-tx":
            t.begin_tx()
            t.set(b"c", b"4")
        elif after == "undone":
            assert s.diff is not None
            t.rollback(s.diff)
        elif after == "discarded":
            t.discard()
            before = "discarded"
        assert s.diff is not None
        return (t, s.diff), before

    def state(after: str) -> Any:
        return lambda: with_diff(after)

    check_unwind_contract(
        {a: state(a) for a in ("latest", "later-tx", "open-tx", "undone", "discarded")},
        lambda td: td[0].rollback(td[1]),
        lambda td: view(td[0]),
    )
    # 4 states x 2 builds (sequential + race) keep an open txn; "discarded" released its own
    assert db.snapshot_refs() == 8


def test_unwind_contract_read_view_close(db: ZapDB) -> None:
    _seed(db, {b"a": b"1"})

    def fresh() -> Any:
        return db.read(), 0

    def closed() -> Any:
        v = db.read()
        v.close()
        return v, 0

    check_unwind_contract(
        {"fresh": fresh, "closed": closed}, lambda v: v.close(), lambda v: db.snapshot_refs()
    )


# ---------------------------------------------------------------- stateful model test

KEYS = st.sampled_from([b"a", b"b", b"c", b"d", b"acct/1", b"acct/2", b"\x00", b"\xff\xff"])
VALS = st.one_of(st.none(), st.binary(max_size=4))


class ZapDBMachine(RuleBasedStateMachine):
    """Model: a dict for the head, a dict + diff stack per branch."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="zapdb-sm-")
        self.seed: int | None = None
        self.db = ZapDB.open(self.dir, map_size=1 << 24, sync=False)
        self.head: dict[bytes, bytes] = {}
        self.version = 0
        # each branch: [txn, model state, base version, [(diff, state before)], open?]
        self.branches: list[list[Any]] = []

    @initialize(seed=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
    def pick_write_order(self, seed: int | None) -> None:
        self.db.close()
        self.seed = seed
        self.db = ZapDB.open(self.dir, map_size=1 << 24, sync=False, write_order_seed=seed)

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(writes=st.lists(st.tuples(KEYS, VALS), min_size=1, max_size=4))
    def commit_block(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        with self.db.begin() as txn:
            for k, v in writes:
                txn.delete(k) if v is None else txn.set(k, v)
                self.head.pop(k, None) if v is None else self.head.__setitem__(k, v)
            txn.commit()
        self.version += 1

    @rule()
    def open_branch(self) -> None:
        self.branches.append([self.db.snapshot(), dict(self.head), self.version, [], True])

    @precondition(lambda self: self.branches)
    @rule(data=st.data(), writes=st.lists(st.tuples(KEYS, VALS), min_size=1, max_size=3))
    def branch_tx(self, data: st.DataObject, writes: list[tuple[bytes, bytes | None]]) -> None:
        br = data.draw(st.sampled_from(self.branches))
        txn, state, _, diffs, live = br
        if not live:
            with pytest.raises(StoreError):
                txn.set(b"a", b"b")
            return
        before = dict(state)
        with txn.tx() as scope:
            for k, v in writes:
                txn.delete(k) if v is None else txn.set(k, v)
                state.pop(k, None) if v is None else state.__setitem__(k, v)
        diffs.append((scope.diff, before))

    @precondition(lambda self: any(b[3] for b in self.branches))
    @rule(data=st.data())
    def branch_rollback(self, data: st.DataObject) -> None:
        br = data.draw(st.sampled_from([b for b in self.branches if b[3]]))
        txn, _, _, diffs, live = br
        i = data.draw(st.integers(0, len(diffs) - 1))
        diff, before = diffs[i]
        undone = txn.rollback(diff)
        assert undone == live
        if live:
            br[1] = before
            del diffs[i:]

    @precondition(lambda self: self.branches)
    @rule(data=st.data())
    def branch_root(self, data: st.DataObject) -> None:
        txn, state, _, _, live = data.draw(st.sampled_from(self.branches))
        if live:
            assert dict(txn.iterate()) == state
            assert txn.root() == reference_root(state)

    @precondition(lambda self: self.branches)
    @rule(data=st.data(), twice=st.booleans())
    def branch_discard(self, data: st.DataObject, twice: bool) -> None:
        br = data.draw(st.sampled_from(self.branches))
        br[0].discard()
        if twice:
            br[0].discard()
        br[4] = False

    @precondition(lambda self: self.branches)
    @rule(data=st.data())
    def branch_commit(self, data: st.DataObject) -> None:
        br = data.draw(st.sampled_from(self.branches))
        txn, state, base, _, live = br
        if not live:
            with pytest.raises(StoreError):
                txn.commit()
        elif base != self.version:
            with pytest.raises(ConflictError):
                txn.commit()
        else:
            assert txn.commit() == reference_root(state)
            self.head = dict(state)
            self.version += 1
        br[4] = False

    @precondition(lambda self: self.version % 3 == 2)  # now and then, not every other step
    @rule()
    def reopen(self) -> None:
        for br in self.branches:
            br[0].discard()
        self.branches.clear()
        self.db.close()
        self.db = ZapDB.open(self.dir, map_size=1 << 24, sync=False, write_order_seed=self.seed)

    @invariant()
    def contents_and_root_match_model(self) -> None:
        assert _contents(self.db) == self.head
        assert self.db.root() == reference_root(self.head)
        assert self.db.version == self.version
        with self.db.read() as view:
            assert view.tree_root() == view.root()
        live = [b for b in self.branches if b[4]]
        assert self.db.snapshot_refs() == len(live)
        for txn, state, _, _, _ in live:  # every live branch, at every step
            assert dict(txn.iterate()) == state
            assert txn.root() == reference_root(state)


def test_stateful_model() -> None:
    run_state_machine_as_test(
        ZapDBMachine,
        settings=settings(max_examples=100, stateful_step_count=30, deadline=None),
    )


# --------------------------------------------------------------------------- fork
_KEYS = st.sampled_from([b"k/%d" % i for i in range(6)])
_OPS = st.lists(st.tuples(_KEYS, st.one_of(st.none(), st.binary(min_size=1, max_size=4))))


@settings(max_examples=40, deadline=None)
@given(seed=st.dictionaries(_KEYS, st.binary(min_size=1, max_size=4)), a=_OPS, b=_OPS, c=_OPS)
def test_fork_sees_the_parent_and_never_touches_it(
    seed: dict[bytes, bytes], a: list[Any], b: list[Any], c: list[Any]
) -> None:
    path = tempfile.mkdtemp()
    db = ZapDB.open(path, map_size=1 << 24)
    try:
        _seed(db, seed)
        parent, parent_model = db.snapshot(), dict(seed)
        apply_ops(parent, parent_model, a)
        if a and a[0][1] is not None:
            parent.root()  # forks with and without keys queued for the root
        child = parent.fork()
        child_model = dict(parent_model)
        assert child.root() == reference_root(child_model)
        apply_ops(child, child_model, b)
        apply_ops(parent, parent_model, c)
        for key in {k for k, _ in a + b + c} | set(seed):
            assert child.get(key) == child_model.get(key)
            assert parent.get(key) == parent_model.get(key)
        assert dict(child.iterate()) == child_model
        assert child.root() == reference_root(child_model)
        assert parent.root() == reference_root(parent_model)
        child.discard()
        assert parent.get(b"k/0") == parent_model.get(b"k/0")
        assert parent.commit() == reference_root(parent_model)
        assert _contents(db) == parent_model
        assert db.snapshot_refs() == 0
    finally:
        db.close()
        shutil.rmtree(path, ignore_errors=True)


def test_fork_outlives_its_parent_and_discard_releases_the_snapshot(db: ZapDB) -> None:
    _seed(db, {b"a": b"1"})
    parent = db.snapshot()
    parent.set(b"b", b"2")
    child = parent.fork()
    assert db.snapshot_refs() == 2
    parent.commit()  # the head moves on; the fork still reads its snapshot + copy
    assert db.snapshot_refs() == 1
    child.set(b"c", b"3")
    assert (child.get(b"a"), child.get(b"b"), child.get(b"c")) == (b"1", b"2", b"3")
    assert child.root() == reference_root({b"a": b"1", b"b": b"2", b"c": b"3"})
    with pytest.raises(ConflictError):  # built on a version that is no longer the head
        child.commit()
    assert db.snapshot_refs() == 0
    assert _contents(db) == {b"a": b"1", b"b": b"2"}
    grand = db.snapshot()
    grand.discard()
    with pytest.raises(StoreError):
        grand.fork()  # a closed branch cannot fork
    other = db.snapshot()
    other.begin_tx()
    with pytest.raises(LocalProtocolError):
        other.fork()  # a tx bracket is open
    other.discard()
    fork = db.snapshot()
    twice = fork.fork()
    twice.discard()
    twice.discard()  # idempotent
    fork.discard()
    assert db.snapshot_refs() == 0


def test_fork_racing_the_parents_commit_or_discard_is_all_or_nothing(db: ZapDB) -> None:
    """A fork from another thread while the parent commits or is discarded either gets a
    full copy of the parent's writes or StoreError -- never half a state, never a leak."""
    _seed(db, {b"a": b"0"})
    for i in range(60):
        parent = db.snapshot()
        for k in range(50):
            parent.set(b"k/%d" % k, b"%d" % i)
        parent.root()
        forks: list[Any] = []
        errors: list[Exception] = []

        def fork(
            parent: Any = parent, forks: list[Any] = forks, errors: list[Exception] = errors
        ) -> None:
            try:
                forks.append(parent.fork())
            except StoreError as exc:
                errors.append(exc)

        t = threading.Thread(target=fork)
        t.start()
        if i % 2:
            parent.commit()
        else:
            parent.discard()
        t.join()
        assert len(forks) + len(errors) == 1
        for f in forks:
            assert all(f.get(b"k/%d" % k) == b"%d" % i for k in range(50))
            f.discard()
        assert db.snapshot_refs() == 0


def _model_tree_records(keys: list[bytes]) -> int:
    """Records of the canonical tree of ``keys`` (docs/formats/state-root.md): one per
    leaf, one per interior node, i.e. per path prefix that two or more keys share."""
    paths = [int.from_bytes(hashlib.sha256(k).digest(), "big") for k in keys]
    interior = sum(
        1
        for d in range(257)
        for count in Counter(p >> (256 - d) for p in paths).values()
        if count >= 2
    )
    return len(keys) + interior


@settings(max_examples=25, deadline=None)
@given(st.sets(st.binary(min_size=1, max_size=8), min_size=1, max_size=60))
def test_tree_writes_counts_the_records_a_fresh_root_rewrites(keys: set[bytes]) -> None:
    path = tempfile.mkdtemp()
    try:
        db = ZapDB.open(path)
        txn = db.begin()
        assert txn.tree_writes() == 0
        for k in keys:
            txn.set(k, b"v")
        txn.root()
        assert txn.tree_writes() == _model_tree_records(sorted(keys))
        txn.discard()
        db.close()
    finally:
        shutil.rmtree(path, ignore_errors=True)
