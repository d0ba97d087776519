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

from zapstack.conformance.envelope import Case, CaseRejected
from zapstack.conformance.oracles import dht_refetch as oracle
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
    """Replay the schedule through a passive ChunkPull; report the outcome.

    An input without the documented shape is refused with ``BAD_INPUT``; the
    shape check (keys, op rows, the seed reproducing ``block_id``) is the
    vector format's and is shared with the oracle, the behaviour is not.
    """
    inp = case.input
    try:
        oracle.check_input(inp)
    except (oracle.BadInput, ValueError) as exc:
        raise CaseRejected("BAD_INPUT", str(exc)) from exc
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
    """``CASES`` seeded cases, then hand-picked edges; expected values come from the oracle."""
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
        cases.append(Case(NAME, f"refetch-{case_no:02d}", inp, oracle.expected_or_error(inp)))
    for name, (trusted, schedule) in _edges().items():
        cases.append(_edge_case(f"edge-{name}", trusted, schedule))
    bad = _edge_case("bad-input-unknown-op", True, [{"op": "shout", "peer": "p0"}])
    cases.append(bad)
    return cases


_EDGE_SEED, _EDGE_HEADER, _EDGE_PAYLOAD = bytes(range(32)), 60, 2 * CHUNK_SIZE + 5


def _edge_case(case_id: str, trusted: bool, schedule: list[dict[str, Any]]) -> Case:
    block = synthetic_block(_EDGE_SEED, _EDGE_HEADER, _EDGE_PAYLOAD)
    inp: dict[str, Any] = {
        "block_seed": _EDGE_SEED.hex(),
        "header_len": _EDGE_HEADER,
        "payload_len": _EDGE_PAYLOAD,
        "block_id": hashlib.sha256(block).hexdigest(),
        "chunk_root": synthetic_layout(block[:_EDGE_HEADER]).chunk_root.hex(),
        "chunk_count": 3,
        "trusted_header": trusted,
        "providers": sorted({op["peer"] for op in schedule}),
        "schedule": schedule,
    }
    return Case(NAME, case_id, inp, oracle.expected_or_error(inp))


def _chunks(peer: str, indices: range = range(3)) -> list[dict[str, Any]]:
    return [{"op": "chunk", "peer": peer, "index": i, "tamper": "none"} for i in indices]


def _edges() -> dict[str, tuple[bool, list[dict[str, Any]]]]:
    """Hand-picked schedules for the rules of vectors-dht.md §"Rules"."""
    honest = {"op": "header", "peer": "p0", "tamper": "none"}
    return {
        "end-mid-message": (
            True,
            [{"op": "bytes", "peer": "x0", "index": 0, "len": 10},
             {"op": "end", "peer": "x0", "index": 0}, *_chunks("p0")],
        ),
        "end-with-nothing-buffered": (True, [{"op": "end", "peer": "x0", "index": 1}]),
        "lying-root-header": (
            False, [{"op": "header", "peer": "x0", "tamper": "root"}, *_chunks("p0")]
        ),
        "chunk-before-header": (False, [*_chunks("p0", range(1)), honest, *_chunks("p1")]),
        "second-header-ignored": (
            False, [honest, {"op": "header", "peer": "x0", "tamper": "filler"}, *_chunks("p0")]
        ),
        "liar-not-caught-before-honest-header": (
            False,
            [{"op": "header", "peer": "x0", "tamper": "filler"}, *_chunks("p0", range(2)),
             honest, *_chunks("p1", range(2))],
        ),
        "ops-after-complete-ignored": (
            True,
            [*_chunks("p0"), {"op": "garbage", "peer": "x0", "index": 0},
             {"op": "chunk", "peer": "x1", "index": 0, "tamper": "block_id"}, *_chunks("p1")],
        ),
        "liar-chunk-still-counts": (
            True,
            [{"op": "garbage", "peer": "x0", "index": 0}, *_chunks("x0"), *_chunks("p0", range(1))],
        ),
    }  # fmt: skip
