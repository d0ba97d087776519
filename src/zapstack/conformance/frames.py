"""The ``frames`` conformance suite: valid and invalid frames and their verdicts.

Line schema (``docs/formats/vectors-frames.md``)::

    input:    {"stream": "tx" | "block", "frame": hex, "chain_id": int | null,
               "split": int}          # feed in pieces of this many bytes (0 = whole)
    expected: {"verdict": "accepted", "kind": int, "id": hex, "fields": {...}}
            | {"verdict": "rejected", "stage": str, "code": int, "offset": int}

``id`` is the tx id (transcript digest) or the block id (sha256 of the bytes).
``fields`` holds every typed field: ints as ints, byte fields as hex.
Frames are Ed25519-signed (deterministic signatures) so regeneration is
byte-identical.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from zapstack.conformance.envelope import Case
from zapstack.zap.events import END, NEED_DATA, FrameAccepted, FrameRejected
from zapstack.zap.frames import build_block, build_call, build_transfer
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.schema import BLOCK_SCHEMAS, TX_SCHEMAS, FieldType
from zapstack.zap.sigschemes import Signer, SigScheme
from zapstack.zap.views import BlockView, FrameView

NAME = "frames"
SEED = 0x2A9

_STREAMS = {"tx": TX_SCHEMAS, "block": BLOCK_SCHEMAS}


def describe(view: FrameView) -> dict[str, Any]:
    """The accepted-frame expectation: kind, id and every typed field."""
    fields: dict[str, Any] = {}
    for spec in view.schema.fields:
        if spec.type in (FieldType.U32, FieldType.U64):
            fields[spec.name] = (
                view.u32(spec.name) if spec.type is FieldType.U32 else view.u64(spec.name)
            )
        else:
            fields[spec.name] = bytes(view.field(spec.name)).hex()
    ident = view.block_id if isinstance(view, BlockView) else view.digest
    return {"verdict": "accepted", "kind": view.kind, "id": ident.hex(), "fields": fields}


def run_case(case: Case) -> dict[str, Any]:
    """Feed the frame through a fresh ingress machine; return the first verdict."""
    inp = case.input
    data = bytes.fromhex(inp["frame"])
    machine = IngressMachine(_STREAMS[inp["stream"]], chain_id=inp.get("chain_id"))
    split = int(inp.get("split", 0)) or len(data) or 1
    for i in range(0, len(data), split):
        machine.receive_data(data[i : i + split])
    machine.end_of_stream()
    ev = machine.next_event()
    assert ev is not NEED_DATA and ev is not END
    if isinstance(ev, FrameAccepted):
        return describe(ev.view)
    assert isinstance(ev, FrameRejected)
    return {
        "verdict": "rejected",
        "stage": ev.stage.name,
        "code": int(ev.code),
        "offset": ev.offset,
    }


def _mutations(frame: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    def at(pos: int, value: int) -> bytes:
        b = bytearray(frame)
        b[pos] = value
        return bytes(b)

    def u32(pos: int, value: int) -> bytes:
        b = bytearray(frame)
        struct.pack_into("<I", b, pos, value)
        return bytes(b)

    flip = rng.randrange(21, len(frame))
    return [
        ("bad-magic", at(rng.randrange(4), 0x00)),
        ("unknown-kind", at(4, 0x7E)),
        ("bad-version", at(5, 9)),
        ("bad-flags", at(6, 0x80 | 1)),
        ("unsigned", at(6, 0)),
        ("bad-scheme", at(7, 7)),
        ("bad-length", u32(8, 25)),
        ("bad-field-count", at(16, 1)),
        ("bad-sig-length", at(18, 1)),
        ("bad-reserved", at(20, 5)),
        ("offset-overrun", u32(21, 0xFFFF)),
        ("truncated", frame[: rng.randrange(1, len(frame))]),
        ("trailing", frame + b"\x00"),
        (f"flip-{flip}", at(flip, frame[flip] ^ (1 << rng.randrange(8)))),
    ]


def generate(seed: int) -> list[Case]:
    """Seeded cases: valid transfers, calls and blocks, then mutations of each."""
    rng = random.Random(seed)
    signers = [Signer(SigScheme.ED25519, rng.randbytes(32)) for _ in range(3)]
    cases: list[Case] = []

    def add(name: str, stream: str, frame: bytes, chain: int | None = None) -> None:
        split = rng.choice([0, 1, 3, 64])
        inp = {"stream": stream, "frame": frame.hex(), "chain_id": chain, "split": split}
        draft = Case(NAME, name, inp, {})
        cases.append(Case(NAME, name, inp, run_case(draft)))

    txs: list[bytes] = []
    for i in range(4):
        s = signers[i % 3]
        txs.append(
            build_transfer(s, rng.randbytes(32), rng.randrange(2**40), rng.randrange(1, 10**6), i)
        )
        data = rng.randbytes(rng.choice([0, 1, 100, 1000]))
        txs.append(build_call(s, rng.randbytes(32), data, rng.randrange(1, 10**6), i + 100))
    for i, tx in enumerate(txs):
        add(f"tx-valid-{i}", "tx", tx)
    add("tx-chain-mismatch", "tx", txs[0], chain=7)
    block = build_block(
        signers[0],
        height=42,
        parent=rng.randbytes(32),
        timestamp_ms=1_766_708_400_000,
        state_root=rng.randbytes(32),
        txs=txs,
    )
    add("block-valid", "block", block)
    add(
        "block-empty",
        "block",
        build_block(
            signers[1], height=0, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=[]
        ),
    )
    add("block-on-tx-stream", "tx", block)
    for i, frame in enumerate((txs[0], txs[1])):
        for name, bad in _mutations(frame, rng):
            add(f"tx{i}-{name}", "tx", bad)
    for name, bad in _mutations(block, rng):
        add(f"block-{name}", "block", bad)
    return cases
