"""Conformance suite ``stream_reset`` (LP-0202 cross-impl vector 3).

Each case is a fixed sequence of sender operations on PROBE streams
(open, write n bytes, FIN, flushed CancelWrite(code)) plus receiver
StopSending(code); the expected value is the receiver-observed event
sequence, computed by the reference model :func:`expected_observation`.
:func:`run_case` executes the ops over real QUIC on 127.0.0.1 -- once with
qh3 on both ends, once with aioquic on both ends -- and raises if the two
observations differ; it returns the (agreed) observation.
The format is pinned in ``docs/formats/vectors-stream-reset.md``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zapstack.conformance.envelope import Case, CaseRejected
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.transport.bindings import BINDINGS, run_bounded
from zapstack.transport.driver import Endpoint, OutStream, Peer
from zapstack.transport.events import End, HandlerAction, StreamEnded
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.streams import StreamType

__all__ = ["NAME", "SEED", "expected_observation", "generate", "pattern", "run_case"]

NAME = "stream_reset"
SEED = 0x5EED_0003
STACKS = ("aioquic", "qh3")
"""The QUIC stacks every case runs over; both must observe the same sequence."""
CASE_TIMEOUT = 20.0
"""Upper bound on one case over one stack, seconds."""

Op = list[Any]

_SENDER_END = {End.FIN: "fin", End.CANCELLED: "cancelled", End.STOPPED: "stopped"}
_RECEIVER_END = {End.FIN: "fin", End.RESET: "reset", End.REJECTED: "stopped"}


def pattern(stream: int, offset: int, n: int) -> bytes:
    """Payload bytes ``offset .. offset+n`` of stream index ``stream``."""
    return bytes((stream * 7 + i) & 0xFF for i in range(offset, offset + n))


# ------------------------------------------------------------ reference model


def expected_observation(ops: Sequence[Op]) -> dict[str, Any]:
    """The observation every conformant implementation must produce for ``ops``."""
    written: list[int] = []
    send: list[tuple[str, int | None]] = []
    recv: list[tuple[str, int | None, int]] = []
    refused: list[int] = []
    for op in ops:
        kind, s = op[0], op[1]
        if kind == "open":
            assert s == len(written), "streams are opened in index order"
            written.append(0)
            send.append(("open", None))
            recv.append(("open", None, 0))
            refused.append(0)
            continue
        open_ = send[s][0] == "open"
        if kind == "write":
            if open_:
                written[s] += op[2]
            else:
                refused[s] += 1
        elif open_ and kind == "fin":
            send[s], recv[s] = ("fin", None), ("fin", None, written[s])
        elif open_ and kind == "cancel":
            send[s], recv[s] = ("cancelled", op[2]), ("reset", op[2], written[s])
        elif open_ and kind == "stop":
            send[s], recv[s] = ("stopped", op[2]), ("stopped", op[2], written[s])
    events: list[str] = []
    receiver, sender = [], []
    for s, n in enumerate(written):
        end, code, got = recv[s]
        got = n if end == "open" else got
        events += [f"s{s} open", f"s{s} bytes {got}"]
        events += {
            "fin": [f"s{s} FIN"],
            "reset": [f"s{s} RESET_STREAM({code})"],
            "stopped": [f"s{s} STOP_SENDING({code})"],
            "open": [],
        }[end]
        receiver.append({"stream": s, "bytes": got, "end": end, "code": code})
        sender.append(
            {"stream": s, "end": send[s][0], "code": send[s][1], "refused_writes": refused[s]}
        )
    return {"events": events, "receiver": receiver, "sender": sender, "stacks": list(STACKS)}


# ------------------------------------------------------------------- cases


def _fixed_cases() -> list[tuple[str, list[Op]]]:
    c = WireCode
    return [
        ("fin-only", [["open", 0], ["write", 0, 1000], ["fin", 0]]),
        ("empty-fin", [["open", 0], ["fin", 0]]),
        ("reset-empty", [["open", 0], ["cancel", 0, c.CANCELLED]]),
        ("reset-after-data", [["open", 0], ["write", 0, 5000], ["cancel", 0, c.TIMEOUT]]),
        (
            "reset-after-large",
            [["open", 0], ["write", 0, 100_000], ["write", 0, 100_000], ["cancel", 0, 0x1A]],
        ),
        ("cancel-twice", [["open", 0], ["write", 0, 10], ["cancel", 0, 2], ["cancel", 0, 9]]),
        ("cancel-after-fin", [["open", 0], ["write", 0, 64], ["fin", 0], ["cancel", 0, 4]]),
        (
            "write-after-cancel",
            [["open", 0], ["write", 0, 300], ["cancel", 0, 0x10], ["write", 0, 300]],
        ),
        ("fin-after-cancel", [["open", 0], ["write", 0, 1], ["cancel", 0, 0x37], ["fin", 0]]),
        (
            "isolation",
            [
                ["open", 0], ["open", 1], ["open", 2],
                ["write", 0, 700], ["write", 1, 800], ["write", 2, 900],
                ["cancel", 1, c.STREAM_PROTOCOL_VIOLATION],
                ["write", 0, 70], ["write", 2, 90], ["fin", 0], ["fin", 2],
            ],
        ),
        ("stop-by-receiver", [["open", 0], ["write", 0, 2000], ["stop", 0, c.BAD_MAGIC]]),
        ("stop-then-write", [["open", 0], ["write", 0, 50], ["stop", 0, 0x21], ["write", 0, 5]]),
        ("left-open", [["open", 0], ["write", 0, 4321]]),
        ("large-code", [["open", 0], ["write", 0, 3], ["cancel", 0, (1 << 62) - 1]]),
    ]  # fmt: skip


def _random_case(rng: random.Random, streams: int, steps: int) -> list[Op]:
    ops: list[Op] = [["open", s] for s in range(streams)]
    codes = [int(code) for code in WireCode]
    for _ in range(steps):
        s = rng.randrange(streams)
        roll = rng.random()
        if roll < 0.6:
            ops.append(["write", s, rng.choice((1, 17, 512, 1200, 4096, 30_000))])
        elif roll < 0.75:
            ops.append(["cancel", s, rng.choice(codes)])
        elif roll < 0.9:
            ops.append(["fin", s])
        else:
            ops.append(["stop", s, rng.choice(codes)])
    return ops


def generate(seed: int) -> list[Case]:
    """Fixed edge cases plus seeded random interleavings; expected from the model."""
    rng = random.Random(seed)
    named = _fixed_cases()
    for i, (streams, steps) in enumerate(((4, 12), (8, 20), (16, 30), (3, 8), (64, 70))):
        named.append((f"random-{i}", _random_case(rng, streams, steps)))
    named.append(
        ("64-then-65th", [["open", s] for s in range(64)] + [["write", s, 10] for s in range(64)]
         + [["fin", 0], ["open", 64], ["write", 64, 99], ["fin", 64]]
         + [["cancel", s, s] for s in range(1, 64)]),
    )  # fmt: skip
    cases = [Case(NAME, case_id, {"ops": ops}, expected_observation(ops)) for case_id, ops in named]
    refused = {"ops": [["open", 0], ["write", 1, 5]]}  # stream 1 was never opened
    return [*cases, Case(NAME, "bad-input-unopened-stream", refused, {"error": "BAD_INPUT"})]


# ------------------------------------------------------------------ runner


class _Probe:
    """Receiver handler: counts bytes and checks them against :func:`pattern`."""

    def __init__(self, info: StreamInfo, index: dict[int, int], store: dict[int, _Probe]) -> None:
        self.index = index.setdefault(info.stream_id, len(index))
        self.received = 0
        store[info.stream_id] = self

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        if bytes(data) != pattern(self.index, self.received, len(data)):
            raise RemoteProtocolError("payload bytes corrupted", offset=self.received)
        self.received += len(data)
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        return None


async def _until(predicate: Any, what: str) -> None:
    for _ in range(int(CASE_TIMEOUT / 0.002)):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise TimeoutError(what)


@dataclass(slots=True)
class _Sender:
    """The dialer's side of one case on a live connection, op by op."""

    peer: Peer
    inbound: Peer
    """The listener's view of the same connection (it sends STOP_SENDING)."""
    probes: dict[int, _Probe]
    """Receiver handlers by stream id."""
    streams: list[OutStream] = field(default_factory=list)
    written: list[int] = field(default_factory=list)
    """Bytes written on each stream (writes the stream accepted)."""
    refused: list[int] = field(default_factory=list)
    """Writes refused on each stream (it had ended on the sender's side)."""
    ends: dict[int, StreamEnded] = field(default_factory=dict)
    """How the receiver saw each stream end, by stream id."""

    async def apply(self, op: Op) -> None:
        """Carry out one op of the case."""
        kind, s = op[0], op[1]
        if kind == "open":
            self.streams.append(await self.peer.open_stream(StreamType.PROBE))
            self.written.append(0)
            self.refused.append(0)
            return
        out = self.streams[s]
        try:
            if kind == "write":
                await out.write(pattern(s, self.written[s], op[2]))
                self.written[s] += op[2]
            elif kind == "fin":
                await out.finish()
        except LocalProtocolError:
            self.refused[s] += 1 if kind == "write" else 0
        if kind == "cancel":
            await out.cancel_write(op[2])
        elif kind == "stop" and out.end is None:
            await self._stop(out, self.written[s], op[2])

    async def _stop(self, out: OutStream, want: int, code: int) -> None:
        """The receiver stops reading once every written byte arrived."""
        sid, probes = out.stream_id, self.probes
        await _until(lambda: sid in probes and probes[sid].received == want, "delivery")
        self.inbound.stop_reading(sid, code)
        await _until(lambda: out.end is not None, "STOP_SENDING at the sender")

    def settled(self) -> bool:
        """Every byte written arrived and every ended stream's end reached the receiver."""
        for event in self.inbound.events:
            if isinstance(event, StreamEnded) and event.receiving:
                self.ends[event.stream_id] = event
        for s, out in enumerate(self.streams):
            sid = out.stream_id
            received = self.probes[sid].received if sid in self.probes else -1
            if out.end is None and received < self.written[s]:
                return False
            if out.end is not None and sid not in self.ends:
                return False
        return True


async def _observe(stack: str, ops: Sequence[Op]) -> dict[str, Any]:
    """Run ``ops`` over ``stack`` on 127.0.0.1; the receiver-observed outcome."""
    binding = BINDINGS[stack]()
    index: dict[int, int] = {}
    probes: dict[int, _Probe] = {}
    listener = Endpoint(
        binding,
        NodeIdentity.generate(2),
        {StreamType.PROBE: lambda info: _Probe(info, index, probes)},
    )
    port = await listener.listen()
    dialer = Endpoint(binding, NodeIdentity.generate(1), {})
    try:
        peer = await dialer.dial("127.0.0.1", port, listener.identity.node_id)
        sender = _Sender(peer, await listener.accept(), probes)
        for op in ops:
            await sender.apply(op)
        await _until(sender.settled, "receiver to settle")
        return _canonical(sender.streams, sender.ends, probes, sender.refused)
    finally:
        await dialer.close()
        await listener.close()


def _canonical(
    streams: Sequence[Any],
    ends: dict[int, StreamEnded],
    probes: dict[int, _Probe],
    refused: list[int],
) -> dict[str, Any]:
    events: list[str] = []
    receiver, sender = [], []
    for s, out in enumerate(streams):
        sid = out.stream_id
        event = ends.get(sid)
        if event is None:
            end, code, got = "open", None, probes[sid].received
        else:
            end, code, got = _RECEIVER_END[event.end], event.code, event.bytes_received
        events += [f"s{s} open", f"s{s} bytes {got}"]
        if end == "fin":
            events.append(f"s{s} FIN")
        elif end == "reset":
            events.append(f"s{s} RESET_STREAM({code})")
        elif end == "stopped":
            events.append(f"s{s} STOP_SENDING({code})")
        receiver.append({"stream": s, "bytes": got, "end": end, "code": code})
        send_end, send_code = out.end if out.end is not None else (None, None)
        sender.append(
            {
                "stream": s,
                "end": _SENDER_END.get(send_end, "open") if send_end else "open",
                "code": send_code,
                "refused_writes": refused[s],
            }
        )
    return {"events": events, "receiver": receiver, "sender": sender, "stacks": list(STACKS)}


_ARITY = {"open": 2, "write": 3, "fin": 2, "cancel": 3, "stop": 3}
"""op name -> its list length (vectors-stream-reset.md §input)."""


def check_ops(inp: dict[str, Any]) -> list[list[Any]]:
    """The ops of a well-formed input; ``CaseRejected("BAD_INPUT")`` otherwise.

    Well formed: ``{"ops": [...]}`` only; each op a list ``[name, s, ...]`` of its
    row's length with integer arguments; ``open`` names the next index (0, 1,
    ...), every other op an opened index; ``write`` counts are 0..2^20 and
    codes are 0..2^62-1 (QUIC varints).
    """
    ops, opened = inp.get("ops"), 0
    if set(inp) != {"ops"} or not isinstance(ops, list):
        raise CaseRejected("BAD_INPUT", 'input must be {"ops": [...]}')
    for op in ops:
        ok = (
            isinstance(op, list)
            and bool(op)
            and _ARITY.get(op[0]) == len(op)
            and all(type(a) is int and a >= 0 for a in op[1:])
        )
        if ok and op[0] == "open":
            ok, opened = op[1] == opened, opened + (op[1] == opened)
        elif ok:
            limit = 1 << 20 if op[0] == "write" else 1 << 62
            ok = op[1] < opened and (len(op) == 2 or op[2] < limit)
        if not ok:
            raise CaseRejected("BAD_INPUT", f"malformed op {op!r}")
    return ops


def run_case(case: Case) -> dict[str, Any]:
    """Run ``case`` over every stack in :data:`STACKS`; they must agree."""
    ops = check_ops(case.input)
    observed = {stack: run_bounded(_observe(stack, ops), CASE_TIMEOUT) for stack in STACKS}
    first, *others = (observed[stack] for stack in STACKS)
    for stack, other in zip(STACKS[1:], others, strict=True):
        if other != first:
            raise AssertionError(f"{STACKS[0]} and {stack} disagree: {first!r} != {other!r}")
    return first
