"""Block production throughput: the overlapping Select/Build/Sign pipeline vs no overlap.

Each run is a proposer that is also its own validator: a fresh ZapDB with a
genesis, a real Mempool filled with signed Ed25519 transfers, a BuildChain, and
two Sign stages: (1) ValidatorCertifier (parallel verify + serial phase + root
check + commit, i.e. the proposer's own node applying the block) plus 4 local
ML-DSA-65 cert signatures -- everything on this box's CPU; (2) the 4 ML-DSA-65
signatures plus a 15 ms sleep standing for the *simulated* network fan-in of
remote cert legs (the spec's PQ-fast timeline), labelled as such.  depth=1 (no
overlap) and depth=3 run the same work; ratio = time(depth 1) / time(depth 3).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable

from zapstack.mempool import Mempool
from zapstack.producer import BuildChain, LocalCertifier, Producer, ValidatorCertifier
from zapstack.verify import (
    Account,
    BlockExecutor,
    ThreadVerifier,
    account_id,
    account_key,
    apply_genesis,
)
from zapstack.zap import BlockView, Signer, SigScheme, build_transfer, parse_tx
from zapstack.zapdb import ZapDB

BLOCKS = 6
PER_BLOCK = 250
USERS = 250


def keys() -> list[Signer]:
    return [Signer(SigScheme.ED25519, hashlib.sha256(b"pb/%d" % i).digest()) for i in range(USERS)]


def make_txs(users: list[Signer]) -> list[bytes]:
    per_user = BLOCKS * PER_BLOCK // USERS
    return [
        build_transfer(u, account_id(users[(i + 1) % USERS].public_key), 1, 1 + i % 7, n)
        for n in range(per_user)
        for i, u in enumerate(users)
    ]


def run(
    depth: int, txs: list[bytes], users: list[Signer], leg_delay: float, validate: bool
) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        db = ZapDB.open(os.path.join(tmp, "db"))
        txn = db.begin()
        apply_genesis(txn, {account_id(u.public_key): 10**9 for u in users})
        txn.commit()

        def floor(sender: bytes) -> int:
            with db.read() as view:
                return Account.decode(view.get(account_key(sender))).nonce

        def pool_floor(sender: bytes) -> int:  # the cert is remote: nothing commits here
            held = pool.sender_nonces(sender)
            return held[0] if held else 0

        pool = Mempool(nonce_floor=floor if validate else pool_floor)
        for raw in txs:
            pool.insert(parse_tx(raw))
        verifier = ThreadVerifier(os.cpu_count() or 1)
        executor = BlockExecutor(db, verifier)
        legs = [Signer(SigScheme.MLDSA65, bytes([i]) * 32) for i in range(4)]
        validator = ValidatorCertifier(executor, legs) if validate else LocalCertifier(legs)

        def certify(block: BlockView) -> object:
            cert = validator(block)
            if leg_delay:
                time.sleep(leg_delay)  # simulated network fan-in of the cert legs
            return cert

        chain = BuildChain(db, Signer(SigScheme.ED25519, bytes(32)))
        producer = Producer(pool, chain, certify, depth=depth, block_txs=PER_BLOCK)
        t = time.perf_counter()
        finals = producer.run(BLOCKS)
        secs = time.perf_counter() - t
        n = sum(f.block.tx_count for f in finals)
        assert n == len(txs)
        assert not validate or db.root() == finals[-1].block.state_root
        chain.close()
        verifier.close()
        db.close()
        return secs, n


def report(label: str, fn: Callable[[int], tuple[float, int]]) -> None:
    base_s, n = fn(1)
    pipe_s, _ = fn(3)
    print(f"\n[{label}] {BLOCKS} blocks x {PER_BLOCK} txs")
    print(
        f"  no overlap (depth 1) {base_s:6.2f} s  {BLOCKS / base_s:6.2f} blocks/s  {n / base_s:7.0f} tx/s"
    )
    print(
        f"  pipelined  (depth 3) {pipe_s:6.2f} s  {BLOCKS / pipe_s:6.2f} blocks/s  {n / pipe_s:7.0f} tx/s"
    )
    print(f"  ratio {base_s / pipe_s:4.2f}x")


def main() -> None:
    users = keys()
    txs = make_txs(users)
    print(f"producer bench: {os.cpu_count()} cores")
    report(
        "Sign = own validator apply + 4 ML-DSA-65 sigs (all CPU, this process)",
        lambda d: run(d, txs, users, 0, True),
    )
    report(
        "Sign = 4 ML-DSA-65 sigs + simulated 15 ms remote cert-leg fan-in",
        lambda d: run(d, txs, users, 0.015, False),
    )


if __name__ == "__main__":
    main()
