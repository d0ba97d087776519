"""A small real chain for tests and benchmarks: genesis + filler state, signed blocks.

Blocks are real signed ZAP block frames of real transfers, executed by the
verify pipeline's :class:`~zapstack.verify.executor.BlockExecutor`, so their
``state_root`` is the true post-state root.  Certificates are QuasarCert
structs with **every leg empty** and :func:`cert_ok` is a *structural* check
(the cert names this chain, height and block id) -- a stand-in, named as
such, for the node's FinalityLedger; the bootstrap client takes the real
check as an injected :data:`~zapstack.bootstrap.follow.CertCheck`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from zapstack.consensus.cert import QuasarCert, decode
from zapstack.consensus.digest import CertContext
from zapstack.errors import InvalidCert
from zapstack.verify import BlockExecutor, account_id, apply_genesis
from zapstack.verify.executor import execute_candidates
from zapstack.zap import DEFAULT_CHAIN_ID, Signer, SigScheme, build_block, build_transfer, parse_tx
from zapstack.zap.views import BlockView
from zapstack.zapdb import ZapDB

USERS = [Signer(SigScheme.ED25519, hashlib.sha256(b"boot/user/%d" % i).digest()) for i in range(4)]
PROPOSER = Signer(SigScheme.ED25519, hashlib.sha256(b"boot/proposer").digest())
VSET_ROOT = hashlib.sha256(b"boot/vset").digest()


__all__ = ["PROPOSER", "USERS", "Chain", "cert_for", "cert_ok"]


def cert_for(block: bytes, height: int) -> bytes:
    """An all-legs-empty QuasarCert naming ``block`` at ``height``."""
    ctx = CertContext(DEFAULT_CHAIN_ID, height, 0, hashlib.sha256(block).digest(), VSET_ROOT)
    return QuasarCert.empty(ctx).encode()


def cert_ok(block: BlockView, cert: bytes) -> bool:
    """Structural stand-in for finality: ``cert`` decodes and names ``block``."""
    try:
        c = decode(cert)
    except InvalidCert:
        return False
    return (c.chain_id, c.height, c.block_id) == (DEFAULT_CHAIN_ID, block.height, block.block_id)


@dataclass
class Chain:
    """Finalized blocks (with certs) of one chain, replayable into any ZapDB."""

    fillers: int
    blocks: list[tuple[bytes, bytes]] = field(default_factory=list)
    nonces: list[int] = field(default_factory=lambda: [0] * len(USERS))

    def genesis(self, db: ZapDB) -> None:
        """Commit the genesis accounts and ``fillers`` filler keys into ``db``."""
        txn = db.begin()
        apply_genesis(txn, {account_id(u.public_key): 1_000_000 for u in USERS})
        for i in range(self.fillers):
            txn.set(b"fill/%06d" % i, hashlib.sha256(b"%d" % i).digest() * 3)
        txn.commit()

    def extend(self, db: ZapDB, executor: BlockExecutor, n: int) -> list[tuple[bytes, bytes]]:
        """Build ``n`` more blocks on ``db`` (which must be at the chain head)."""
        new = []
        for _ in range(n):
            height = len(self.blocks) + 1
            txs = []
            for k, u in enumerate(USERS):
                to = account_id(USERS[(k + 1) % len(USERS)].public_key)
                txs.append(parse_tx(build_transfer(u, to, 10 + height, 1, self.nonces[k])))
                self.nonces[k] += 1
            branch = db.snapshot()
            included, failed = execute_candidates(branch, txs, account_id(PROPOSER.public_key))
            assert not failed
            root = branch.root()
            branch.discard()
            parent = hashlib.sha256(self.blocks[-1][0]).digest() if self.blocks else bytes(32)
            block = build_block(
                PROPOSER,
                height=height,
                parent=parent,
                timestamp_ms=height * 1000,
                state_root=root,
                txs=included,
            )
            executor.finalize(executor.receive(block).receipt.block_id)
            self.blocks.append((block, cert_for(block, height)))
            new.append(self.blocks[-1])
        return new

    def replay(self, db: ZapDB, executor: BlockExecutor) -> None:
        """Apply every block of the chain through ``executor``."""
        for block, _ in self.blocks:
            executor.finalize(executor.receive(block).receipt.block_id)
