"""Bounded-time fuzz campaign for the STATE_CHUNK record codec (``make fuzz``).

The chunk parser is C (``zapstack.zapdb._smtfast.parse_chunk``) fed by the network, so
this mutates valid chunk records (bit flips, byte sets, cuts, insertions, u16/u32
overwrites at the length fields) and checks on each: the C parser and the readable
Python parser (``ChunkReplyReader._body_py``) give the same chunk or the same error
(message, wire code, offset); the reader fed whole and one byte at a time agrees; and
nothing but RemoteProtocolError is ever raised.  Deterministic for a given ``--seed``;
stops after ``--seconds``.  Skips (exit 0) when the C extension is not built.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from zapstack.bootstrap.readers import ChunkReplyReader
from zapstack.bootstrap.wire import encode_chunk_py
from zapstack.errors import RemoteProtocolError
from zapstack.zapdb import StateChunk

try:
    from zapstack.zapdb import _smtfast
except ImportError:  # pragma: no cover - the extension is optional
    _smtfast = None  # type: ignore[assignment]

DEPTH, INDEX = 6, 9


def seed_record(rng: random.Random) -> bytearray:
    entries = tuple(
        (rng.randbytes(rng.randint(1, 20)), rng.randbytes(rng.randint(0, 40)))
        for _ in range(rng.randint(0, 6))
    )
    sibs = tuple(rng.randbytes(32) for _ in range(rng.randint(0, DEPTH)))
    term = rng.randbytes(64) if rng.random() < 0.3 else None
    return bytearray(encode_chunk_py(StateChunk(DEPTH, INDEX, entries, sibs, term)))


def mutate(rng: random.Random, rec: bytearray) -> bytes:
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(rec) + 1)
        op = rng.randrange(6)
        if op == 0 and at < len(rec):
            rec[at] ^= 1 << rng.randrange(8)
        elif op == 1 and at < len(rec):
            rec[at] = rng.choice((0, 1, 0x7F, 0x80, 0xFF))
        elif op == 2:
            del rec[at:]
        elif op == 3:
            rec[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and at + 2 <= len(rec):
            rec[at : at + 2] = rng.choice((0, 1, 511, 512, 0xFFFF)).to_bytes(2, "little")
        elif op == 5 and at + 4 <= len(rec):
            value = rng.choice((0, 1, 2**31, 2**32 - 1, len(rec)))
            rec[at : at + 4] = value.to_bytes(4, "little")
    return bytes(rec)


def outcome(data: bytes, pieces: list[int]) -> list[object]:
    reader = ChunkReplyReader(DEPTH, INDEX, 1)
    out: list[object] = []
    try:
        pos = 0
        for size in [*pieces, len(data)]:
            reader.receive_data(data[pos : pos + size])
            pos += size
            while (rec := reader.next_record()) is not None:
                out.append(rec)
        reader.end_of_stream()
    except RemoteProtocolError as exc:
        out.append((str(exc), exc.code, exc.offset))
    return out


def check_body(data: bytes) -> None:
    if len(data) < 12:
        return
    body = data[4:]
    reader = ChunkReplyReader(DEPTH, INDEX, 1)
    results = []
    for parse in (lambda b: reader._body(memoryview(b), 0), lambda b: reader._body_py(b, 0)):
        try:
            results.append(parse(body))
        except RemoteProtocolError as exc:
            results.append((str(exc), exc.code, exc.offset))
    if results[0] != results[1]:
        raise AssertionError(f"C and Python parsers differ on {body.hex()}: {results}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if _smtfast is None:
        print("no C extension: nothing to fuzz")
        return 0
    rng = random.Random(args.seed)
    stop = time.monotonic() + args.seconds
    cases = 0
    while time.monotonic() < stop:
        data = mutate(rng, seed_record(rng))
        check_body(data)
        whole = outcome(data, [])
        if outcome(data, [1] * len(data)) != whole:
            raise AssertionError(f"byte-at-a-time differs from whole on {data.hex()}")
        cases += 1
    print(f"chunk codec: {cases} cases, C == Python, whole == byte-at-a-time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
