"""The block store: checksummed files (docs/formats/blockfiles.md) and the start check."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from zapstack.errors import FatalStoreError
from zapstack.node.blockstore import BlockStore


def reference_file(payload: bytes) -> bytes:
    """The format doc's layout, written out by hand: magic, u64 LE length, sha256, payload."""
    return b"ZBF1" + len(payload).to_bytes(8, "little") + hashlib.sha256(payload).digest() + payload


def path(store: BlockStore, height: int, ext: str) -> Path:
    return store.root / f"{height:012d}.{ext}"


def test_put_read_upgrade(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "b")
    assert store.block(1) is None and store.cert(1) is None
    store.put(1, b"block", b"cert")
    assert store.block(1) == b"block" and store.cert(1) == b"cert"
    store.upgrade_cert(1, b"better")
    assert store.cert(1) == b"better"
    store.upgrade_cert(2, b"nothing")  # unknown height: no file appears
    assert store.cert(2) is None
    assert not list((tmp_path / "b").glob("*.tmp"))
    again = BlockStore(tmp_path / "b")
    assert again.block(1) == b"block"


def test_files_have_the_documented_layout(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "b")
    store.put(7, b"\x00block bytes", b"")
    assert path(store, 7, "blk").read_bytes() == reference_file(b"\x00block bytes")
    assert path(store, 7, "qc").read_bytes() == reference_file(b"")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda b: b[:-1],  # truncated payload
        lambda b: b[:20],  # truncated header
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # one bit of the payload
        lambda b: b"ZBF2" + b[4:],  # unknown magic
        lambda b: b + b"x",  # trailing byte
        lambda b: b"",
    ],
)
def test_a_damaged_file_reads_as_missing(tmp_path: Path, spoil) -> None:  # type: ignore[no-untyped-def]
    store = BlockStore(tmp_path / "b")
    store.put(1, b"block", b"cert")
    p = path(store, 1, "blk")
    p.write_bytes(spoil(p.read_bytes()))
    assert store.block(1) is None and store.cert(1) == b"cert"


def filled(tmp_path: Path, heights: range) -> tuple[BlockStore, bytes]:
    store = BlockStore(tmp_path / "b")
    for h in heights:
        store.put(h, f"block {h}".encode(), f"cert {h}".encode())
    return store, hashlib.sha256(f"block {heights[-1]}".encode()).digest()


def test_check_passes_a_sound_store_and_a_state_synced_one(tmp_path: Path) -> None:
    store, head = filled(tmp_path / "a", range(1, 6))
    store.check(5, head)
    store.put(6, b"above the head", b"c")  # written before a crash, before the commit
    store.check(5, head)
    synced, head = filled(tmp_path / "s", range(40, 43))  # state-synced at 40
    synced.check(42, head)
    BlockStore(tmp_path / "e").check(0, bytes(32))  # genesis: nothing to hold


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: path(s, 3, "blk").unlink(), "000000000003.blk is missing"),
        (lambda s: path(s, 5, "qc").unlink(), "000000000005.qc is missing"),
        (lambda s: path(s, 4, "qc").write_bytes(b"junk"), "000000000004.qc is corrupt"),
        (
            lambda s: path(s, 5, "blk").write_bytes(reference_file(b"another block")),
            "not the head block",
        ),
        (lambda s: [p.unlink() for p in s.root.iterdir()], "000000000005.blk is missing"),
    ],
)
def test_check_refuses_missing_corrupt_or_foreign_files(
    tmp_path: Path, damage, message: str
) -> None:  # type: ignore[no-untyped-def]
    store, head = filled(tmp_path, range(1, 6))
    damage(store)
    with pytest.raises(FatalStoreError, match=message):
        store.check(5, head)


def test_block_id_reads_the_file_header_only(tmp_path: Path) -> None:
    store = BlockStore(tmp_path / "b")
    store.put(3, b"three", b"cert")
    assert store.block_id(3) == hashlib.sha256(b"three").digest()
    assert store.block_id(4) is None
    path(store, 5, "blk").write_bytes(b"ZBF1" + bytes(10))  # short header
    path(store, 6, "blk").write_bytes(b"XXXX" + reference_file(b"six")[4:])  # wrong magic
    assert store.block_id(5) is None and store.block_id(6) is None
    # the header is trusted as an index: a changed payload still reads by the recorded id
    path(store, 7, "blk").write_bytes(reference_file(b"seven")[:-1] + b"X")
    assert store.block_id(7) == hashlib.sha256(b"seven").digest() and store.block(7) is None
