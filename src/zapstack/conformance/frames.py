"""The ``frames`` conformance suite: valid and invalid frames and their verdicts.

Line schema (``docs/formats/vectors-frames.md``)::

    input:    {"stream": "tx" | "block", "frame": hex, "chain_id": int | null,
               "split": int}          # feed in pieces of this many bytes (0 = whole)
    expected: {"verdict": "accepted", "kind": int, "id": hex, "fields": {...}}
            | {"verdict": "rejected", "stage": str, "code": int, "offset": int}
            | {"error": "BAD_INPUT"}

``id`` is the tx id (transcript digest) or the block id (sha256 of the bytes).
``fields`` holds every typed field: ints as ints, byte fields as hex.
Expected values come from the independent model
:mod:`zapstack.conformance.oracles.frames` (zap.md alone), never from ingress.
Frames are Ed25519-signed (deterministic signatures) so regeneration is
byte-identical.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from zapstack.conformance.envelope import Case, CaseRejected
from zapstack.conformance.oracles import frames as oracle
from zapstack.errors import ZapError
from zapstack.zap import merkle
from zapstack.zap.events import END, NEED_DATA, FrameAccepted, FrameRejected
from zapstack.zap.frames import (
    DEFAULT_CHAIN_ID,
    build_block,
    build_call,
    build_frame,
    build_transfer,
    parse_tx,
)
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.schema import BLOCK_SCHEMAS, TX_SCHEMAS, FieldType, FrameKind
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


def _check_input(inp: dict[str, Any]) -> bytes:
    """The frame bytes, or ``CaseRejected("BAD_INPUT")`` if ``inp`` is not the documented shape."""
    chain, split, frame = inp.get("chain_id", 0), inp.get("split", 0), inp.get("frame")
    ok = (
        set(inp) <= {"stream", "frame", "chain_id", "split"}
        and inp.get("stream") in _STREAMS
        and (chain is None or (type(chain) is int and 0 <= chain < 1 << 32))
        and type(split) is int
        and split >= 0
        and isinstance(frame, str)
    )
    try:
        data = bytes.fromhex(frame) if ok and isinstance(frame, str) else None
    except ValueError:
        data = None
    if data is None:
        raise CaseRejected("BAD_INPUT", "input: stream tx|block, frame hex, chain_id, split")
    return data


def run_case(case: Case) -> dict[str, Any]:
    """Feed the frame through a fresh ingress machine; return the stream's verdict.

    The verdict is the first rejection the machine reports, else its acceptance:
    a frame followed by more bytes is accepted and then rejected with
    ``TRAILING_DATA``, and the stream is reset, so its verdict is the rejection.
    """
    inp = case.input
    data = _check_input(inp)
    machine = IngressMachine(_STREAMS[inp["stream"]], chain_id=inp.get("chain_id"))
    split = int(inp.get("split", 0)) or len(data) or 1
    for i in range(0, len(data), split):
        machine.receive_data(data[i : i + split])
    machine.end_of_stream()
    accepted: FrameAccepted | None = None
    while (ev := machine.next_event()) is not END:
        assert ev is not NEED_DATA  # after FIN the machine has finished
        if isinstance(ev, FrameRejected):
            return {
                "verdict": "rejected",
                "stage": ev.stage.name,
                "code": int(ev.code),
                "offset": ev.offset,
            }
        assert isinstance(ev, FrameAccepted)
        accepted = ev
    assert accepted is not None
    return describe(accepted.view)


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
        cases.append(Case(NAME, name, inp, oracle.verdict(frame, stream, chain)))

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
    for name, bad in payload_edges(signers[0], txs):
        add(f"block-payload-{name}", "block", bad)
    refused = {"stream": "quic", "frame": txs[0].hex(), "chain_id": None, "split": 0}
    cases.append(Case(NAME, "bad-input-unknown-stream", refused, {"error": "BAD_INPUT"}))
    return cases


def edge_block(signer: Signer, payload: bytes, **override: Any) -> bytes:
    """A signed block over ``payload`` with consistent fields unless ``override`` says."""
    leaves: list[bytes] = []
    p = 0
    while p + 12 <= len(payload):  # the valid frames at the front (for consistent roots)
        size = struct.unpack_from("<I", payload, p + 8)[0]
        try:
            view = parse_tx(payload[p : p + size], verify_signatures=False)
        except ZapError:
            break
        leaves.append(merkle.leaf_hash(view.tx_id))
        p += size
    values: dict[str, Any] = {
        "height": 7, "parent": bytes(32), "timestamp_ms": 1_766_708_400_000,
        "state_root": bytes(32), "tx_root": merkle.root_of_leaf_hashes(leaves),
        "chunk_root": merkle.chunk_root(payload), "tx_count": len(leaves), "payload": payload,
    }  # fmt: skip
    values.update(override)
    return build_frame(BLOCK_SCHEMAS[FrameKind.BLOCK], values, signer, DEFAULT_CHAIN_ID)


def payload_edges(signer: Signer, txs: list[bytes]) -> list[tuple[str, bytes]]:
    """Blocks whose payload breaks zap.md §6 in each documented way."""

    def patched(frame: bytes, at: int, value: bytes) -> bytes:
        return frame[:at] + value + frame[at + len(value) :]

    other_chain = build_transfer(signer, bytes(32), 1, 1, 0, chain_id=DEFAULT_CHAIN_ID + 1)
    two, three = txs[0] + txs[1], txs[0] + txs[1] + txs[2]
    return [
        ("empty-count-1", edge_block(signer, b"", tx_count=1)),
        ("more-frames-than-count", edge_block(signer, three, tx_count=2)),
        ("fewer-frames-than-count", edge_block(signer, two, tx_count=3)),
        ("frame-overruns", edge_block(signer, txs[0] + txs[1][:-10])),
        ("tail-under-12-bytes", edge_block(signer, txs[0] + txs[1][:5])),
        ("declared-length-5", edge_block(signer, patched(txs[0], 8, b"\x05\0\0\0") + txs[1])),
        ("declared-length-0", edge_block(signer, patched(txs[0], 8, bytes(4)) + txs[1])),
        ("second-frame-bad-version", edge_block(signer, txs[0] + patched(txs[1], 5, b"\x02"))),
        ("frame-of-another-chain", edge_block(signer, txs[0] + other_chain)),
        ("tx-root-mismatch", edge_block(signer, two, tx_root=bytes(32))),
        ("chunk-root-mismatch", edge_block(signer, two, chunk_root=bytes(32))),
        ("consistent", edge_block(signer, three)),
    ]
