"""The state backup stream: round trip, any split, malformed input, restore root check."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.benchmarks.backupstream import MAGIC, MAX_BATCH, BackupReader, restore, write_stream
from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.zapdb import ZapDB

STATE = {b"acct/%03d" % i: bytes([i]) * (i % 7) for i in range(50)} | {b"k": b"v" * 300}


def _stream(tmp: Path, state: dict[bytes, bytes], batch: int = 16) -> tuple[bytes, bytes]:
    db = ZapDB.open(tmp / "src", map_size=1 << 24)
    try:
        txn = db.begin()
        for k, v in state.items():
            txn.set(k, v)
        root = txn.commit()
        out = io.BytesIO()
        with db.read() as view:
            n, payload = write_stream(view, out, batch=batch)
        assert n == len(state)
        assert payload == sum(len(k) + len(v) for k, v in state.items())
        return out.getvalue(), root
    finally:
        db.close()


def _parse(data: bytes, step: int) -> tuple[BackupReader, list[tuple[bytes, bytes]]]:
    r = BackupReader()
    got: list[tuple[bytes, bytes]] = []
    for i in range(0, len(data), step):
        got += r.receive_data(data[i : i + step])
    r.end_of_stream()
    return r, got


@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_whole_and_byte_at_a_time(tmp_path: Path, step: int) -> None:
    data, root = _stream(tmp_path, STATE)
    r, got = _parse(data, step)
    assert r.root == root and r.version == 1 and r.count == len(STATE)
    assert got == sorted(STATE.items())  # snapshot key order, bytes untouched


def test_restore_reproduces_the_root(tmp_path: Path) -> None:
    data, root = _stream(tmp_path, STATE)
    db = ZapDB.open(tmp_path / "dst", map_size=1 << 24)
    try:
        assert restore([data[i : i + 100] for i in range(0, len(data), 100)], db) == root
        with db.read() as view:
            assert dict(view.iterate()) == STATE
    finally:
        db.close()


def test_restore_refuses_a_root_mismatch(tmp_path: Path) -> None:
    data, _ = _stream(tmp_path, STATE)
    forged = data[:12] + bytes(32) + data[44:]  # header root zeroed
    db = ZapDB.open(tmp_path / "dst", map_size=1 << 24)
    try:
        with pytest.raises(RemoteProtocolError) as e:
            restore([forged], db)
        assert e.value.code is WireCode.BAD_STATE_ROOT
        with db.read() as view:
            assert list(view.iterate()) == []  # nothing committed
    finally:
        db.close()


def test_empty_state(tmp_path: Path) -> None:
    data, root = _stream(tmp_path, {})
    r, got = _parse(data, 1)
    assert got == [] and r.root == root and r.done


def _bad(data: bytes) -> RemoteProtocolError:
    r = BackupReader()
    with pytest.raises(RemoteProtocolError) as e:
        r.receive_data(data)
        r.end_of_stream()
    return e.value


def test_malformed_streams(tmp_path: Path) -> None:
    data, _ = _stream(tmp_path, STATE)
    head = data[:44]
    assert "magic" in str(_bad(b"XXXX" + data[4:]))
    assert "truncated" in str(_bad(data[:-1]))
    assert "truncated" in str(_bad(data[:30]))
    assert "after the trailer" in str(_bad(data + b"\x00"))
    assert "trailer says" in str(_bad(head + struct.pack("<IQ", 0, 3)))
    assert "batch of" in str(_bad(head + struct.pack("<I", MAX_BATCH + 1)))
    zero_key = head + struct.pack("<IHI", 1, 0, 1) + b"v"
    err = _bad(zero_key)
    assert "key length 0" in str(err) and err.code is WireCode.BAD_FIELD
    assert err.offset == 48
    huge = head + struct.pack("<IHI", 1, 1, 1 << 30)
    assert "value length" in str(_bad(huge))
    assert data[:4] == MAGIC


def test_bytes_after_done_raise_even_when_split(tmp_path: Path) -> None:
    data, _ = _stream(tmp_path, STATE)
    r = BackupReader()
    r.receive_data(data)
    assert r.done and r.receive_data(b"") == []
    with pytest.raises(RemoteProtocolError):
        r.receive_data(b"\x00")


@settings(max_examples=25, deadline=None)
@given(
    state=st.dictionaries(st.binary(min_size=1, max_size=40), st.binary(max_size=60), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
    batch=st.integers(min_value=1, max_value=9),
)
def test_any_state_any_split(
    tmp_path_factory: pytest.TempPathFactory, state: dict[bytes, bytes], cuts: list[int], batch: int
) -> None:
    data, root = _stream(tmp_path_factory.mktemp("s"), state, batch)
    r, got = BackupReader(), []
    last = 0
    for c in sorted({min(c, len(data)) for c in cuts}):
        got += r.receive_data(data[last:c])
        last = c
    got += r.receive_data(data[last:])
    r.end_of_stream()
    assert dict(got) == state and r.root == root
