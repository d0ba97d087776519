"""Subprocess writer for the SIGKILL tests (run as a script, not collected).

``crash_writer.py blocks DIR``: commits deterministic blocks forever (see
:func:`block_writes`), each with its height in metadata.
``crash_writer.py bank DIR SEED``: transfers between accounts forever through
two competing branches per round (one commits, one conflicts or is discarded).
Prints ``ready`` once the store is open, so the parent kills mid-work.
"""

from __future__ import annotations

import random
import sys

from zapstack.errors import ConflictError
from zapstack.zapdb import ZapDB

ACCOUNTS = 16
START_BALANCE = 1000


def block_writes(height: int) -> list[tuple[bytes, bytes | None]]:
    """The writes of block ``height`` (>= 1): 150 puts, and a delete every 3rd block."""
    writes: list[tuple[bytes, bytes | None]] = [
        (b"k%04d" % ((height * 7 + i * 13) % 997), b"%d:%d:" % (height, i) + b"x" * 64)
        for i in range(150)
    ]
    if height % 3 == 0:
        writes.append((b"k%04d" % ((height * 11) % 997), None))
    return writes


def account(i: int) -> bytes:
    return b"acct/%02d" % i


def transfer(txn: object, rng: random.Random) -> None:
    """Move a random amount between two random accounts inside ``txn``."""
    src, dst = rng.sample(range(ACCOUNTS), 2)
    get, set_ = txn.get, txn.set  # type: ignore[attr-defined]
    a, b = int(get(account(src))), int(get(account(dst)))
    amount = rng.randrange(0, a + 1)
    set_(account(src), b"%d" % (a - amount))
    set_(account(dst), b"%d" % (b + amount))


def run_blocks(path: str) -> None:
    db = ZapDB.open(path, map_size=1 << 28)
    print("ready", flush=True)
    height = db.version
    while True:
        height += 1
        with db.begin() as txn:
            for key, value in block_writes(height):
                txn.delete(key) if value is None else txn.set(key, value)
            txn.meta_set(b"height", b"%d" % height)
            txn.commit()


def run_bank(path: str, seed: int) -> None:
    db = ZapDB.open(path, map_size=1 << 28)
    rng = random.Random(seed)
    print("ready", flush=True)
    while True:
        a, b = db.snapshot(), db.snapshot()
        try:
            for _ in range(5):
                transfer(a, rng)
                transfer(b, rng)
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            first.commit()
            try:
                second.commit()
                raise AssertionError("two branches of one height committed")
            except ConflictError:
                pass
        finally:
            a.discard()
            b.discard()


if __name__ == "__main__":
    if sys.argv[1] == "blocks":
        run_blocks(sys.argv[2])
    else:
        run_bank(sys.argv[2], int(sys.argv[3]))
