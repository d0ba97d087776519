from pathlib import Path

from zapstack.node.blockstore import BlockStore


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
