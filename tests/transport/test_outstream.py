"""OutStream: a thin handle whose every call is carried out by its peer, in order."""

from __future__ import annotations

from typing import Any

from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import OutStream as DriverOutStream
from zapstack.transport.outstream import OutStream
from zapstack.transport.peer import OutStream as PeerOutStream
from zapstack.transport.streams import StreamType


class FakePeer:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def _write(self, stream_id: int, data: bytes, fin: bool) -> None:
        self.calls.append(("write", stream_id, data, fin))

    async def _cancel(self, stream_id: int, code: int, flush: bool) -> None:
        self.calls.append(("cancel", stream_id, code, flush))


def test_every_call_goes_to_the_peer_with_the_streams_id() -> None:
    peer = FakePeer()
    out = OutStream(peer, 6, StreamType.TX_SUBMIT)  # type: ignore[arg-type]
    assert out.end is None and (out.stream_id, out.stream_type) == (6, StreamType.TX_SUBMIT)

    async def main() -> None:
        await out.write(b"ab")
        await out.write(b"cd", fin=True)
        await out.finish()
        await out.cancel_write(0x03)
        await out.cancel_write(0x02, flush=False)

    run_bounded(main(), 5)
    assert peer.calls == [
        ("write", 6, b"ab", False),
        ("write", 6, b"cd", True),
        ("write", 6, b"", True),
        ("cancel", 6, 0x03, True),
        ("cancel", 6, 0x02, False),
    ]


def test_the_peer_and_driver_modules_export_the_same_class() -> None:
    assert PeerOutStream is OutStream and DriverOutStream is OutStream
