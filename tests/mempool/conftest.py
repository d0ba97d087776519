"""Shared tx factories for the mempool tests (signing is cached: a tx is built once)."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from zapstack.zap import Signer, SigScheme, TxView, build_call, build_transfer, parse_tx

RECIPIENT = bytes(32)


@lru_cache(maxsize=64)
def signer(i: int) -> Signer:
    """A deterministic Ed25519 signer number ``i``."""
    return Signer(SigScheme.ED25519, hashlib.sha256(b"mempool-test-signer-%d" % i).digest())


def sender_id(i: int) -> bytes:
    """Account id of signer ``i`` (sha256 of its public key)."""
    return hashlib.sha256(signer(i).public_key).digest()


@lru_cache(maxsize=8192)
def tx_bytes(sender: int, nonce: int, fee: int, data_len: int = -1) -> bytes:
    """A signed tx: a transfer (``data_len < 0``) or a call with ``data_len`` bytes of data."""
    if data_len < 0:
        return build_transfer(signer(sender), RECIPIENT, 1, fee, nonce)
    return build_call(signer(sender), RECIPIENT, bytes(data_len), fee, nonce)


def tx_view(sender: int, nonce: int, fee: int, data_len: int = -1) -> TxView:
    """The parsed view of :func:`tx_bytes` (signature checked)."""
    return parse_tx(tx_bytes(sender, nonce, fee, data_len))
