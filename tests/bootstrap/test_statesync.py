"""The state download: batches, verify-before-write, commit with head metadata, discard."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from zapstack.bootstrap.events import StateProgress, StateSynced, TargetChosen
from zapstack.bootstrap.statesync import StateDownload
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META
from zapstack.zapdb import StateChunk, ZapDB

from .conftest import state_chunks


def _source(tmp: Path, depth: int) -> tuple[bytes, list[StateChunk]]:
    return state_chunks(tmp / "src", depth, keys=40, spread=5)


def test_batches_are_handed_out_in_order_and_a_failed_tail_comes_first(tmp_path: Path) -> None:
    root, _ = _source(tmp_path, 3)
    db = ZapDB.open(str(tmp_path / "dst"))
    dl = StateDownload(db, TargetChosen(5, b"b" * 32, root), depth=3, batch=3)
    assert dl.next_batch() == (0, 3)
    dl.give_back(1, 2)
    assert [dl.next_batch() for _ in range(3)] == [(1, 2), (3, 3), (6, 2)]
    assert not dl.pending
    dl.give_back(0, 8)  # a batch cut to ``most``: its rest stays first
    assert [dl.next_batch(3), dl.next_batch(1), dl.next_batch(9)] == [(0, 3), (3, 1), (4, 4)]
    assert not dl.pending
    dl.discard()
    dl.discard()  # idempotent
    db.close()


def test_every_chunk_is_verified_before_it_is_written_then_committed(tmp_path: Path) -> None:
    root, chunks = _source(tmp_path, 2)
    db = ZapDB.open(str(tmp_path / "dst"))
    target = TargetChosen(7, b"i" * 32, root)
    dl = StateDownload(db, target, depth=2, batch=4)
    bad = dataclasses.replace(chunks[0], entries=((b"k0", b"forged"),))
    with pytest.raises(RemoteProtocolError) as err:
        dl.write(bad)
    assert err.value.code is WireCode.BAD_CHUNK and dl.progress == StateProgress(0, 4, 0)
    assert [dl.write(c) for c in chunks[:2]] == [False, False]
    assert dl.progress == StateProgress(2, 4, len(chunks[0].entries) + len(chunks[1].entries))
    assert dl.write(chunks[0]) is False and dl.progress.chunks == 2  # a repeat counts once
    assert [dl.write(c) for c in chunks[2:]] == [False, True]
    synced = dl.commit()
    assert synced == StateSynced(7, root, 4, sum(len(c.entries) for c in chunks))
    assert db.meta_get(HEAD_HEIGHT_META) == (7).to_bytes(8, "little")
    assert db.meta_get(HEAD_ID_META) == b"i" * 32
    dl.discard()  # nothing to undo after a commit
    with db.read() as view:
        assert view.root() == root
    db.close()
