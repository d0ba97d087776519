"""Row "State backup stream": both backups hold the whole state; tiny run is sane."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from zapstack.benchmarks import backup
from zapstack.benchmarks.backupstream import BackupReader
from zapstack.verify.state import Account


def test_both_backups_hold_the_state(tmp_path: Path) -> None:
    db = backup.build_state(tmp_path / "db", 300)
    try:
        with db.read() as view:
            state = dict(view.iterate())
            n1 = backup.direct_backup(view, tmp_path / "direct")
            n2 = backup.codec_backup(view, tmp_path / "snap", tmp_path / "codec")
            root = view.root()
    finally:
        db.close()
    assert len(state) == 300 and n1 == n2 == sum(len(k) + len(v) for k, v in state.items())
    r = BackupReader()
    assert dict(r.receive_data((tmp_path / "direct").read_bytes())) == state and r.root == root
    # the codec copy decodes back to the same accounts, and was written twice
    data = (tmp_path / "codec").read_bytes()
    assert data == (tmp_path / "snap").read_bytes()
    dec = msgspec.msgpack.Decoder(list[backup.AccountRecord])
    got, pos = {}, 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "little")
        for rec in dec.decode(data[pos + 4 : pos + 4 + size]):
            got[rec.key] = Account(rec.balance, rec.nonce).encode()
        pos += 4 + size
    assert got == state


def test_row(check_row: Callable[..., None]) -> None:
    row = backup.run(800, repeat=1)
    check_row(row, "state_backup", "MB/s")
    assert row.extras["verifiable_chunks_MBps"] > 0
