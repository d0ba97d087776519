"""Conformance suite ``dht_refetch`` (LP-0202 cross-impl vector 4).

A synthetic block (``docs/formats/chunks.md`` §Synthetic blocks) is cut in
64 KiB chunks committed by its chunk root; an adversarial arrival schedule
(out of order, duplicates, bogus chunks from named peers, partial streams,
disconnects, lying headers) is fed to a *passive* :class:`ChunkPull`.  The
expected output is whether the block completed, the sha256 of the reassembled
bytes (equal to the block id), the sorted blamed peers, the missing chunk
indices and the duplicate count.  ``docs/formats/vectors-dht.md`` defines
every field and schedule op.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from zapstack.conformance.envelope import Case
from zapstack.dht.blocks import ServedBlock, synthetic_block, synthetic_layout
from zapstack.dht.chunks import ChunkPull
from zapstack.dht.messages import ChunkMsg, HeaderMsg
from zapstack.dht.wire import encode
from zapstack.errors import ConfigError
from zapstack.zap.merkle import CHUNK_SIZE

__all__ = ["NAME", "SEED", "build_message", "generate", "run_case"]

NAME = "dht_refetch"
SEED = 0x0202_0004
CASES = 30

_BAD_VERSION = bytes([0x02, 0x88, 0, 0, 0, 0])
"""A CHUNK message header with version 2: a parse error at byte 0."""


def _flip(b: bytes, at: int) -> bytes:
    out = bytearray(b)
    out[at] ^= 0x01
    return bytes(out)


def build_message(served: ServedBlock, op: dict[str, Any]) -> HeaderMsg | ChunkMsg:
    """The (possibly tampered) HEADER or CHUNK message a schedule op describes."""
    tamper = op.get("tamper", "none")
    if op["op"] == "header":
        h = served.header_msg()
        header = {"none": h.header, "filler": _flip(h.header, 48), "root": _flip(h.header, 16)}
        return HeaderMsg(h.block_id, header[tamper], h.trailer)
    m = served.chunk_msg(op["index"])
    n = served.chunk_count
    table: dict[str, ChunkMsg] = {
        "none": m,
        "data": ChunkMsg(m.block_id, m.index, _flip(m.data, len(m.data) - 1), m.proof),
        "proof": ChunkMsg(m.block_id, m.index, m.data, (_flip(m.proof[0], 0), *m.proof[1:]))
        if m.proof
        else m,
        "short": ChunkMsg(m.block_id, m.index, m.data[:-1], m.proof),
        "wrong_index": ChunkMsg(m.block_id, (m.index + 1) % n, m.data, m.proof),
        "block_id": ChunkMsg(_flip(m.block_id, 0), m.index, m.data, m.proof),
    }
    if tamper not in table:
        raise ConfigError(f"unknown chunk tamper {tamper!r}")
    return table[tamper]


def run_case(case: Case) -> dict[str, Any]:
    """Replay the schedule through a passive ChunkPull; report the outcome."""
    inp = case.input
    seed = bytes.fromhex(inp["block_seed"])
    block = synthetic_block(seed, inp["header_len"], inp["payload_len"])
    layout = synthetic_layout(block[: inp["header_len"]])
    served = ServedBlock(block, layout)
    if served.block_id.hex() != inp["block_id"] or layout.chunk_root.hex() != inp["chunk_root"]:
        raise ConfigError("block_seed does not reproduce block_id / chunk_root")
    header = block[: inp["header_len"]] if inp["trusted_header"] else None
    pull = ChunkPull(
        served.block_id,
        inp["providers"],
        layout=synthetic_layout,
        now=0.0,
        header=header,
        schedule=False,
    )
    for op in inp["schedule"]:
        kind, peer = op["op"], op["peer"]
        if kind in ("header", "chunk"):
            pull.deliver(peer, build_message(served, op), 0.0)
        elif kind == "bytes":
            data = encode(served.chunk_msg(op["index"]))[: op["len"]]
            pull.receive_data(peer, op["index"], data, 0.0)
        elif kind == "garbage":
            pull.receive_data(peer, op["index"], _BAD_VERSION, 0.0)
        elif kind == "end":
            pull.stream_ended(peer, op["index"], 0.0)
        elif kind == "disconnect":
            pull.peer_disconnected(peer, 0.0)
        else:
            raise ConfigError(f"unknown schedule op {kind!r}")
    out = pull.result
    return {
        "complete": out is not None,
        "block_sha256": hashlib.sha256(out).hexdigest() if out is not None else "",
        "blamed": sorted(pull.blamed),
        "missing": list(pull.missing) if pull.layout is not None else [],
        "duplicates": pull.duplicates,
    }


# ---------------------------------------------------------------- generator

_CHUNK_TAMPERS = ("data", "proof", "short", "wrong_index", "block_id")


def _schedule(rng: random.Random, n: int, trusted: bool, case_no: int) -> dict[str, Any]:
    """Providers and an adversarial schedule for a block of ``n`` chunks."""
    honest = [f"p{i}" for i in range(rng.randint(1, 4))]
    bad = [f"x{i}" for i in range(rng.randint(0, 3))]
    providers = honest + bad
    rng.shuffle(providers)
    ops: list[dict[str, Any]] = []
    lying = not trusted and case_no % 3 == 0 and bool(bad)
    if lying:  # a header whose filler lies: every chunk verifies, the block id does not
        ops.append({"op": "header", "peer": rng.choice(bad), "tamper": "filler"})
    elif not trusted:
        ops.append({"op": "header", "peer": rng.choice(honest), "tamper": "none"})
    order = list(range(n))
    rng.shuffle(order)
    for i in order:
        for x in bad:  # adversaries race the honest copy
            if rng.random() < 0.5:
                ops.append(
                    {"op": "chunk", "peer": x, "index": i, "tamper": rng.choice(_CHUNK_TAMPERS)}
                )
        if rng.random() < 0.25:  # a provider that disconnects mid-stream
            quitter = rng.choice(providers)
            ops.append({"op": "bytes", "peer": quitter, "index": i, "len": rng.randint(1, 2000)})
            ops.append({"op": "disconnect", "peer": quitter})
        if rng.random() < 0.1 and bad:
            ops.append({"op": "garbage", "peer": rng.choice(bad), "index": i})
        alive = [p for p in honest if {"op": "disconnect", "peer": p} not in ops]
        if case_no % 10 == 7 and i == order[-1]:
            continue  # this chunk never arrives honestly: the block stays incomplete
        if alive:
            ops.append({"op": "chunk", "peer": rng.choice(alive), "index": i, "tamper": "none"})
        if rng.random() < 0.3 and alive:  # a duplicate, possibly from another peer
            ops.append({"op": "chunk", "peer": rng.choice(alive), "index": i, "tamper": "none"})
    if lying:  # after the liar is caught, an honest header completes the block
        ops.append({"op": "header", "peer": honest[0], "tamper": "none"})
    return {"providers": providers, "schedule": ops}


def generate(seed: int) -> list[Case]:
    """``CASES`` seeded cases; the expected output is what :func:`run_case` yields."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for case_no in range(CASES):
        n = rng.randint(1, 6)
        payload_len = (n - 1) * CHUNK_SIZE + rng.randint(1, CHUNK_SIZE)
        if case_no % 5 == 1:
            payload_len = n * CHUNK_SIZE  # an exact multiple: no short last chunk
        header_len = rng.randint(49, 300)
        block_seed = rng.randbytes(32)
        block = synthetic_block(block_seed, header_len, payload_len)
        layout = synthetic_layout(block[:header_len])
        trusted = case_no % 2 == 0
        inp: dict[str, Any] = {
            "block_seed": block_seed.hex(),
            "header_len": header_len,
            "payload_len": payload_len,
            "block_id": hashlib.sha256(block).hexdigest(),
            "chunk_root": layout.chunk_root.hex(),
            "chunk_count": n,
            "trusted_header": trusted,
            **_schedule(rng, n, trusted, case_no),
        }
        case = Case(NAME, f"refetch-{case_no:02d}", inp, {})
        cases.append(Case(NAME, case.id, inp, run_case(case)))
    return cases
