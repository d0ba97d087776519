"""Shared zap test material: sample frames and a harness that feeds the ingress machine."""

import struct

import pytest

from zapstack.zap import (
    END,
    NEED_DATA,
    FrameAccepted,
    FrameRejected,
    IngressMachine,
    Signer,
    SigScheme,
    build_block,
    build_call,
    build_transfer,
)


@pytest.fixture(scope="session")
def ed_signer() -> Signer:
    return Signer(SigScheme.ED25519, bytes(range(32)))


@pytest.fixture(scope="session")
def pq_signer() -> Signer:
    return Signer(SigScheme.MLDSA65, bytes(range(1, 33)))


ED = Signer(SigScheme.ED25519, bytes(range(32)))
TX = build_transfer(ED, b"r" * 32, 5, 2, 1)
CALL = build_call(ED, b"t" * 32, b"payload", 3, 4)
BLOCK = build_block(
    ED, height=3, parent=bytes(32), timestamp_ms=9, state_root=bytes(32), txs=[TX, CALL]
)


def drain(m: IngressMachine) -> list[object]:
    out: list[object] = []
    while True:
        ev = m.next_event()
        if ev is NEED_DATA or ev is END:
            return out
        out.append(ev)


def summary(events: list[object]) -> list[tuple[object, ...]]:
    res: list[tuple[object, ...]] = []
    for ev in events:
        if isinstance(ev, FrameAccepted):
            res.append(("accepted", bytes(ev.view.buffer)))
        else:
            assert isinstance(ev, FrameRejected)
            res.append(("rejected", ev.stage, ev.code, ev.offset))
    return res


def feed(data: bytes, step: int | None, schemas=None, fin: bool = True) -> list[tuple[object, ...]]:
    m = IngressMachine(schemas) if schemas is not None else IngressMachine()
    if step is None:
        m.receive_data(data)
    else:
        for i in range(0, len(data), step):
            m.receive_data(data[i : i + step])
    if fin:
        m.end_of_stream()
    return summary(drain(m))


def mutate(data: bytes, pos: int, value: int) -> bytes:
    b = bytearray(data)
    b[pos] = value
    return bytes(b)


def u32_at(data: bytes, pos: int, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into("<I", b, pos, value)
    return bytes(b)
