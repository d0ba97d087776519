"""Bounded-time fuzz campaign for the ZAP ingress machine (``make fuzz``).

Mutates valid tx and block frames (bit flips, byte sets, splices, truncation,
extension, u32 overwrites at offset-table positions) and random byte strings,
and checks the ingress invariant on each: fed whole, one byte at a time and in
random pieces, the machine yields the same event sequence, and never raises
anything.  Deterministic for a given ``--seed``; stops after ``--seconds``.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time

from zapstack.zap import (
    BLOCK_SCHEMAS,
    END,
    NEED_DATA,
    TX_SCHEMAS,
    FrameAccepted,
    FrameRejected,
    IngressMachine,
    Signer,
    SigScheme,
    build_block,
    build_call,
    build_transfer,
)


def verdicts(data: bytes, schemas: dict, pieces: list[int]) -> list[tuple[object, ...]]:
    m = IngressMachine(schemas)
    pos = 0
    for size in pieces:
        m.receive_data(data[pos : pos + size])
        pos += size
    m.receive_data(data[pos:])
    m.end_of_stream()
    out: list[tuple[object, ...]] = []
    while (ev := m.next_event()) is not NEED_DATA and ev is not END:
        if isinstance(ev, FrameAccepted):
            out.append(("ok", bytes(ev.view.buffer)))
        else:
            assert isinstance(ev, FrameRejected)
            out.append((ev.stage, ev.code, ev.offset))
    return out


def mutate(rng: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    op = rng.randrange(6)
    if op == 0:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 2:
        return bytes(b[: rng.randrange(len(b))])
    elif op == 3:
        return bytes(b) + rng.randbytes(rng.randrange(1, 40))
    elif op == 4 and len(b) >= 29:
        pos = 21 + 4 * rng.randrange(min(9, (len(b) - 25) // 4))
        struct.pack_into(
            "<I", b, pos, rng.randrange(2**32) if rng.random() < 0.3 else rng.randrange(len(b) + 8)
        )
    else:
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        b[i:j] = rng.randbytes(j - i)
    return bytes(b)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ed = Signer(SigScheme.ED25519, bytes(range(32)))
    txs = [build_transfer(ed, rng.randbytes(32), i, i + 1, i) for i in range(4)]
    txs += [build_call(ed, rng.randbytes(32), rng.randbytes(rng.randrange(200)), 3, 9)]
    block = build_block(
        ed, height=1, parent=bytes(32), timestamp_ms=1, state_root=bytes(32), txs=txs
    )
    corpus: list[tuple[bytes, dict]] = [(t, TX_SCHEMAS) for t in txs] + [(block, BLOCK_SCHEMAS)]
    deadline = time.monotonic() + args.seconds
    runs = accepted = 0
    while time.monotonic() < deadline:
        seed_frame, schemas = rng.choice(corpus)
        data = mutate(rng, seed_frame) if rng.random() < 0.9 else rng.randbytes(rng.randrange(64))
        for _ in range(rng.randrange(3)):
            data = mutate(rng, data) if data else data
        whole = verdicts(data, schemas, [])
        ones = verdicts(data, schemas, [1] * len(data))
        cuts = verdicts(data, schemas, [rng.randrange(1, 50) for _ in range(rng.randrange(8))])
        if not (whole == ones == cuts) or not whole:
            print(
                f"INVARIANT BROKEN for input {data.hex()}\n whole={whole}\n ones={ones}\n cuts={cuts}"
            )
            return 1
        accepted += whole[0][0] == "ok" and whole[0][1] != seed_frame
        runs += 1
    print(
        f"fuzz_ingress: {runs} inputs in {args.seconds:.0f}s, invariant held; "
        f"{accepted} mutated inputs accepted as different valid frames (expected 0 for signed frames)"
    )
    return 0 if accepted == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
