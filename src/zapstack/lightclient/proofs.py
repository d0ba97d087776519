"""Check an account answer from any node: cert -> block -> state root -> proof.

Contract
--------
The trust root is a genesis the *client* holds (validator set + CertPolicy):
a cert is only meaningful against a validator set the client trusts, so a
genesis fetched from the same node that answers proves nothing beyond "this
node's chain is self-consistent" (the CLI says which one it used).

:func:`verify_account` takes the JSON of ``GET /v1/accounts/{id}``
(``docs/api.md`` §4) and checks, in order, raising
:class:`~zapstack.errors.InvalidCert` at the first failure:

1. the cert decodes, names this chain and the answer's height, every present
   leg verifies against the genesis set *and the block bytes* (so the block
   is the one the validators certified: ``sha256(block) == cert.block_id``),
   and the legs meet the policy (``accepted_tier`` is not None);
2. the block parses at that height on this chain, and its header's
   ``state_root`` is the answer's ``state_root``;
3. the proof authenticates the answer's state value (or its absence) under
   ``account_key(id)`` against that root (:func:`~zapstack.zapdb.verify_proof`),
   and the balance and nonce claimed are that value's.

Height 0 (no block finalized yet) has no cert: it is refused, there is
nothing to verify against.  Pure functions, no IO.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zapstack.consensus import accepted_tier, decode, observed_tier, verify_cert
from zapstack.errors import InvalidCert, ZapError
from zapstack.node.genesis import Genesis
from zapstack.node.http.api_views import proof_from_json
from zapstack.verify import Account, account_key
from zapstack.zap.frames import parse_block
from zapstack.zapdb import verify_proof

__all__ = ["VerifiedAccount", "check_certified_block", "verify_account"]


@dataclass(frozen=True, slots=True)
class VerifiedAccount:
    """An account state the client checked against its own genesis."""

    account: bytes
    """The account id (sha256 of its public key)."""
    balance: int
    nonce: int
    height: int
    """The certified height whose post-state holds these values."""
    block_id: bytes
    """The certified block's id."""
    state_root: bytes
    """That block's post-state root, which the proof is against."""
    tier: str
    """The tier the cert's legs reach (``observed_tier``)."""


def check_certified_block(g: Genesis, height: int, cert_bytes: bytes, block: bytes) -> str:
    """Steps 1 and 2's block half: the block is certified at ``height``; its observed tier."""
    cert = decode(cert_bytes)
    if cert.height != height or cert.chain_id != g.chain_id:
        raise InvalidCert(f"cert names height {cert.height} of chain {cert.chain_id}")
    verdict = verify_cert(cert, g.vset, block_bytes=block)
    if accepted_tier(g.policy, verdict.present) is None:
        raise InvalidCert("cert legs do not satisfy the genesis policy")
    view = parse_block(block, chain_id=g.chain_id)
    if view.height != height:
        raise InvalidCert(f"block holds height {view.height}, cert says {height}")
    tier = observed_tier(g.policy.variant, verdict.present)
    return tier.value if tier else "none"


def _hex(doc: Mapping[str, Any], name: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise InvalidCert(f"answer has no {name}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise InvalidCert(f"answer's {name} is not hex") from None


def verify_account(g: Genesis, doc: Mapping[str, Any]) -> VerifiedAccount:
    """Verify an account answer against ``g`` (see the module contract)."""
    height = doc.get("height")
    if not isinstance(height, int) or height < 1:
        raise InvalidCert("no finalized block yet: nothing certifies this state")
    account = _hex(doc, "account")
    block, cert_bytes = _hex(doc, "block"), _hex(doc, "cert")
    try:
        tier = check_certified_block(g, height, cert_bytes, block)
        root = parse_block(block, chain_id=g.chain_id).state_root
    except InvalidCert:
        raise
    except ZapError as exc:
        raise InvalidCert(f"certified block: {exc}") from None
    if _hex(doc, "state_root") != root:
        raise InvalidCert("the answer's state root is not the certified block's")
    value = None if doc.get("value") is None else _hex(doc, "value")
    try:
        proof = proof_from_json(doc.get("proof"))
    except (ValueError, TypeError, KeyError):
        raise InvalidCert("malformed proof") from None
    if not verify_proof(root, account_key(account), value, proof):
        raise InvalidCert("the proof does not verify against the certified state root")
    state = Account.decode(value)
    if (state.balance, state.nonce) != (doc.get("balance"), doc.get("nonce")):
        raise InvalidCert("balance or nonce differs from the proven state value")
    return VerifiedAccount(
        account, state.balance, state.nonce, height, decode(cert_bytes).block_id, root, tier
    )
