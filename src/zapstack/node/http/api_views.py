"""JSON renderings of blocks, txs and account proofs (pure functions, no IO).

Contract
--------
* Bytes are lower-case hex; amounts, nonces and heights are JSON integers.
* :func:`block_json` reads a finalized block and its cert as the node stored
  them (both verified before they were stored); the tiers come from the legs
  the cert carries (a non-empty leg field), judged by the genesis policy:
  ``accepted`` is the tier the policy accepts (the block is final at it),
  ``observed`` the strongest tier those legs reach.  A client that trusts
  nothing re-verifies the cert itself (:mod:`zapstack.lightclient.proofs`).
* :func:`account_json` renders a balance, a nonce and the
  :class:`~zapstack.zapdb.proofs.Proof` of its state value against the
  post-state root of the certified block at ``height`` (block and cert bytes
  included, so cert -> block id -> state root -> proof checks with no second
  request).  :func:`proof_from_json` is its inverse for the proof.
"""

from __future__ import annotations

from typing import Any

from zapstack.consensus import LegId, accepted_tier, decode, observed_tier
from zapstack.consensus.policy import CertPolicy
from zapstack.errors import ZapError
from zapstack.verify import Account, account_id
from zapstack.zap.frames import parse_block
from zapstack.zap.schema import FrameKind
from zapstack.zap.views import TxView
from zapstack.zapdb.proofs import Proof

__all__ = ["account_json", "block_json", "proof_from_json", "proof_json", "tier_json", "tx_json"]

_KINDS = {FrameKind.TRANSFER: "transfer", FrameKind.CALL: "call"}


def tx_json(tx: TxView) -> dict[str, Any]:
    """One tx's fields."""
    return {
        "tx_id": tx.tx_id.hex(),
        "kind": _KINDS.get(FrameKind(tx.kind), "unknown"),
        "sender": tx.sender.hex(),
        "recipient": tx.recipient.hex(),
        "amount": tx.amount,
        "fee": tx.fee,
        "nonce": tx.nonce,
        "size": len(tx),
    }


def tier_json(policy: CertPolicy, cert: bytes) -> dict[str, Any]:
    """The legs a stored cert carries and the tiers they reach under ``policy``."""
    qc = decode(cert)
    present = [leg for leg in LegId if qc.field(leg)]
    accepted = accepted_tier(policy, present)
    observed = observed_tier(policy.variant, present)
    return {
        "legs": [leg.label for leg in present],
        "accepted": accepted.value if accepted else None,
        "observed": observed.value if observed else None,
    }


def block_json(
    policy: CertPolicy, block: bytes, cert: bytes | None, *, with_bytes: bool = False
) -> dict[str, Any]:
    """A finalized block, its txs, its cert (hex) and tiers."""
    view = parse_block(block, verify_signatures=False)
    out: dict[str, Any] = {
        "height": view.height,
        "block_id": view.block_id.hex(),
        "parent": view.parent.hex(),
        "state_root": view.state_root.hex(),
        "tx_root": view.tx_root.hex(),
        "timestamp_ms": view.timestamp_ms,
        "proposer": account_id(view.pubkey).hex(),
        "size": len(block),
        "tx_count": view.tx_count,
        "txs": [tx_json(tx) for tx in view.txs()],
        "cert": cert.hex() if cert is not None else None,
    }
    if cert is not None:
        try:
            out["round"] = decode(cert).round
            out["tier"] = tier_json(policy, cert)
        except ZapError:
            out["tier"] = None
    if with_bytes:
        out["bytes"] = block.hex()
    return out


def proof_json(proof: Proof) -> dict[str, Any]:
    """A proof as hex strings."""
    return {
        "siblings": [s.hex() for s in proof.siblings],
        "terminal": None if proof.terminal is None else proof.terminal.hex(),
    }


def proof_from_json(doc: Any) -> Proof:
    """Inverse of :func:`proof_json`; ``ValueError``/``TypeError``/``KeyError`` on bad input."""
    siblings = tuple(bytes.fromhex(s) for s in doc["siblings"])
    terminal = doc["terminal"]
    if any(len(s) != 32 for s in siblings) or not isinstance(terminal, str | None):
        raise ValueError("a sibling is not 32 bytes, or the terminal is not hex")
    return Proof(siblings, None if terminal is None else bytes.fromhex(terminal))


def account_json(
    account: bytes,
    key: bytes,
    value: bytes | None,
    proof: Proof,
    *,
    height: int,
    state_root: bytes,
    block: bytes | None,
    cert: bytes | None,
) -> dict[str, Any]:
    """An account at ``height`` with its proof against ``state_root`` (see the contract)."""
    acct = Account.decode(value)
    return {
        "account": account.hex(),
        "balance": acct.balance,
        "nonce": acct.nonce,
        "height": height,
        "state_root": state_root.hex(),
        "key": key.hex(),
        "value": None if value is None else value.hex(),
        "proof": proof_json(proof),
        "cert": None if cert is None else cert.hex(),
        "block": None if block is None else block.hex(),
    }
