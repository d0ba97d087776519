"""HotValues: a read answered from the memo equals the store's value at the reader's version."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.zapdb import ZapDB
from zapstack.zapdb.hot import MISS, HotValues

from .conftest import apply_ops

KEYS = [bytes([i]) * 4 for i in range(6)]
VALUES = st.one_of(st.none(), st.binary(min_size=1, max_size=3))

# one step: commit some writes, or a reader at some version reads (and fills) a key
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("commit"), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)),
        st.tuples(st.just("read"), st.tuples(st.integers(0, 30), st.sampled_from(KEYS))),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(STEPS, st.integers(1, 4))
def test_memo_answers_equal_the_history(steps: list[tuple[str, object]], cap: int) -> None:
    """A model of the store keeps every version's state; the memo, fed as the store feeds
    it (fills by readers at any version, advances on commits), either says MISS or gives
    exactly the model's value at the asked version -- also for readers older than the
    entries, and across its cap."""
    history: list[dict[bytes, bytes]] = [{}]
    memo = HotValues(0, cap=cap)
    for kind, arg in steps:
        if kind == "commit":
            writes = dict(arg)  # type: ignore[call-overload]
            state = dict(history[-1])
            for key, value in writes.items():
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
            history.append(state)
            memo.advance(len(history) - 2, len(history) - 1, writes)
        else:
            version, key = arg  # type: ignore[misc]
            version = min(version, len(history) - 1)
            got = memo.get(key, version)
            if got is MISS:
                memo.fill(key, history[version].get(key), version)  # the reader read LMDB
            else:
                assert got == history[version].get(key)
        assert len(memo) <= cap
        for version, state in enumerate(history):
            for key in KEYS:
                got = memo.get(key, version)
                assert got is MISS or got == state.get(key)


def test_a_missed_version_forgets_everything() -> None:
    memo = HotValues(5)
    memo.fill(b"k", b"v", 5)
    assert memo.get(b"k", 5) == b"v"
    memo.advance(7, 8, {})  # the memo never saw 6 or 7: k may have changed
    assert memo.get(b"k", 8) is MISS
    memo.fill(b"k", b"w", 7)  # a reader at an old version fills nothing
    assert memo.get(b"k", 8) is MISS
    memo.advance(8, 9, {b"k": memoryview(b"x")})  # a write of an unread key is not kept
    assert memo.get(b"k", 9) is MISS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4), max_size=8))
def test_store_reads_at_every_held_version_equal_the_history(
    commits: list[dict[bytes, bytes | None]],
) -> None:
    """A real store: a read view opened at each version and kept open reads that version's
    values before and after the later commits (its memo hits included)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = ZapDB.open(Path(tmp) / "db", map_size=1 << 24)
        try:
            history: list[dict[bytes, bytes]] = [{}]
            views = [db.read()]
            for writes in commits:
                txn = db.begin()
                state = dict(history[-1])
                apply_ops(txn, state, writes.items())
                for key in KEYS:  # readers at the head fill the memo
                    assert views[-1].get(key) == history[-1].get(key)
                txn.commit()
                history.append(state)
                views.append(db.read())
                for view, expect in zip(views, history, strict=True):
                    for key in KEYS:
                        assert view.get(key) == expect.get(key)
            for view in views:
                view.close()
        finally:
            db.close()
