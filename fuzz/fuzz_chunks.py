"""Bounded-time fuzz campaign for the STATE_CHUNK record codec (``make fuzz``).

The chunk parser is C (``zapstack.zapdb._smtfast.parse_chunk``) fed by the network, so
this mutates valid chunk records (bit flips, byte sets, cuts, insertions, u16/u32
overwrites at the length fields) and checks on each: the C parser and the readable
Python parser (``ChunkReplyReader._body_py``) give the same chunk or the same error
(message, wire code, offset); the reader fed whole and one byte at a time agrees; and
nothing but RemoteProtocolError is ever raised.  A second leg mutates valid chunks of a
small real state (entries, siblings, terminal) and feeds them, shuffled with the good
ones, to the C state-sync loader (``_smtfast.SyncLoader``): it must take exactly the
chunks ``verify_chunk`` accepts and end with the reference tree's records -- one chunk
at a time (``add``), and again in random batches (``add_many``, two threads).
Deterministic for a given ``--seed``; stops after ``--seconds`` (shared by the two
legs).  Skips (exit 0) when the C extension is not built.
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
from zapstack.zapdb.proofs import make_chunk, verify_chunk
from zapstack.zapdb.smt import DictNodeStore, apply_updates_py

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


def broken(rng: random.Random, chunk: StateChunk) -> StateChunk:
    """``chunk`` with one field changed (possibly still valid: ``verify_chunk`` judges)."""
    entries, sibs, term = list(chunk.entries), list(chunk.siblings), chunk.terminal
    op = rng.randrange(6)
    if op == 0 and entries:
        i = rng.randrange(len(entries))
        key, value = entries[i]
        entries[i] = (
            (key, bytes(rng.randbytes(1)) + value[1:])
            if rng.random() < 0.5
            else (key[:-1] + bytes([key[-1] ^ 1]), value)
        )
    elif op == 1 and entries:
        del entries[rng.randrange(len(entries))]
    elif op == 2 and entries:
        entries.insert(rng.randrange(len(entries) + 1), rng.choice(entries))
    elif op == 3 and sibs:
        i = rng.randrange(len(sibs))
        sibs[i] = rng.choice((bytes(32), rng.randbytes(32), sibs[i][:31]))
    elif op == 4:
        term = rng.choice((None, bytes(64), rng.randbytes(64)))
    elif op == 5 and len(entries) > 1:
        rng.shuffle(entries)
    return StateChunk(chunk.depth, chunk.index, tuple(entries), tuple(sibs), term)


def check_loader(rng: random.Random) -> None:
    """One state: the C loader's verdicts == verify_chunk's; its records == the tree's,
    those handed out by ``settle()`` between adds (each once, ascending across calls) and
    those ``finish()`` orders together; its entries == the state's, each once, those
    handed out by ``spill()`` between adds and the rest."""
    state = {
        rng.randbytes(rng.randint(1, 12)): rng.randbytes(rng.randint(0, 30))
        for _ in range(rng.randint(0, 40))
    }
    store = DictNodeStore()
    root = apply_updates_py(store, state.items())
    depth = rng.randint(0, 5)
    good = [make_chunk(store, state.get, depth, i) for i in range(1 << depth)]
    feed = good + [broken(rng, rng.choice(good)) for _ in range(rng.randint(1, 6))]
    rng.shuffle(feed)
    loader, done = _smtfast.SyncLoader(root, depth), set()
    settled: list[tuple[bytes, bytes]] = []
    spilled: list[tuple[bytes, bytes]] = []
    for chunk in feed:
        want = verify_chunk(root, chunk)
        if chunk.index in done:
            continue
        if len(chunk.siblings) == depth and chunk.terminal is None:
            got = loader.add(chunk.index, chunk.entries, chunk.siblings)
        else:  # a terminal chunk: the loader takes what verify_chunk checked
            got = want
            if want:
                loader.add_top(chunk.index, chunk.entries, *_top(chunk))
        if got != want:
            raise AssertionError(f"loader says {got}, verify_chunk {want}: {chunk}")
        if got:
            done.add(chunk.index)
        if rng.random() < 0.5:
            loader.settle()
            settled += [(bytes(k), bytes(v)) for k, v in loader.records(2)]
        if rng.random() < 0.3:
            loader.spill()
            spilled += [(bytes(k), bytes(v)) for k, v in loader.records(3)]
    if [k for k, _ in settled] != sorted({k for k, _ in settled}):
        raise AssertionError("settled records repeat or go out of order")
    if loader.finish() != root:
        raise AssertionError(f"loader does not join to the root for {state}")
    rest = dict(loader.records(1))
    if set(rest) & {k for k, _ in settled}:
        raise AssertionError(f"finish() repeats a settled record for {state}")
    if rest | dict(settled) != store.nodes:
        raise AssertionError(f"loader records differ from the tree's for {state}")
    entries = spilled + list(loader.records(0))
    if len(entries) != len(state) or dict(entries) != state:
        raise AssertionError("loader entries (spilled, then the rest) differ from the state")
    check_add_many(rng, root, depth, feed, rest | dict(settled))


def check_add_many(
    rng: random.Random, root: bytes, depth: int, feed: list[StateChunk], one: dict[bytes, bytes]
) -> None:
    """The same feed in random batches for add_many (two threads): add's verdicts, the
    same records (``one``: those of the loader fed one chunk at a time), in key order."""
    many, done = _smtfast.SyncLoader(root, depth), set()
    full = [c for c in feed if len(c.siblings) == depth and c.terminal is None]
    while full:
        cut = rng.randint(1, len(full))
        picked: dict[int, StateChunk] = {}
        later: list[StateChunk] = []  # a repeat of an index waits for the next batch
        for c in full[:cut]:
            if c.index in picked:
                later.append(c)
            else:
                picked[c.index] = c
        items = [(c.index, c.entries, c.siblings) for c in picked.values()]
        for chunk, got in zip(picked.values(), many.add_many(items), strict=True):
            if got != verify_chunk(root, chunk):
                raise AssertionError(f"add_many says {got} for {chunk}")
            if got:
                done.add(chunk.index)
        full = [c for c in later + full[cut:] if c.index not in done]
    for chunk in feed:  # what only add_top takes
        if len(chunk.siblings) == depth and chunk.terminal is None:
            continue
        if chunk.index not in done and verify_chunk(root, chunk):
            many.add_top(chunk.index, chunk.entries, *_top(chunk))
            done.add(chunk.index)
    if many.finish() != root or list(many.records(1)) != sorted(one.items()):
        raise AssertionError("add_many's records differ from add's")


def _top(chunk: StateChunk) -> tuple[bytes, bytes | None]:
    from zapstack.zapdb import smt

    if not chunk.entries:
        return smt.EMPTY, None
    key, value = chunk.entries[0]
    kh, vh = smt.key_hash(key), _smtfast.sha256(value)
    return smt.leaf_hash(kh, vh), smt.leaf_record(kh, vh, key)


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
    cases = states = 0
    while time.monotonic() < stop:
        data = mutate(rng, seed_record(rng))
        check_body(data)
        whole = outcome(data, [])
        if outcome(data, [1] * len(data)) != whole:
            raise AssertionError(f"byte-at-a-time differs from whole on {data.hex()}")
        cases += 1
        if cases % 8 == 0:
            check_loader(rng)
            states += 1
    print(f"chunk codec: {cases} cases, C == Python, whole == byte-at-a-time")
    print(
        f"chunk loader: {states} states, C verdicts == verify_chunk, records == the tree's, "
        "entries (spilled and kept) == the state's"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
