"""Genesis and node key files: what a chain launches from and what a node holds.

Contract
--------
* ``genesis.json`` (``docs/formats/genesis.md``) is public: chain id, block
  interval, the validator set (weights, addresses, transport node ids, leg keys
  with BLS proofs of possession, the epoch's Corona group key), allocations and
  ``quasar.cert_policy``.  :func:`load_genesis` admits it or raises
  :class:`~zapstack.errors.ConfigError` naming the first problem: the validator
  set is admitted by :meth:`ValidatorSet.create` (PoP checks) and the policy by
  the four launch rules of ``certpolicy.md``.
* ``node.json`` is private to one node: its validator index and secret keys
  (transport identity seed, proposer Ed25519 seed, BLS / ML-DSA-65 / SLH-DSA
  secret keys, its Corona key share and nonce seed).
* :func:`make_devnet` deals a whole devnet deterministically from one seed
  (a trusted dealer: fine for a devnet, documented as such; production chains
  run their own key ceremonies).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zapstack.consensus.policy import CertPolicy, load_policy, parse_policy, policy_to_dict
from zapstack.consensus.validators import (
    Validator,
    ValidatorSecrets,
    ValidatorSet,
    generate_validators,
)
from zapstack.errors import ConfigError, ZapError
from zapstack.node.schema import GenesisDoc, NodeFile, decode_file, decode_obj
from zapstack.transport.identity import NodeIdentity
from zapstack.zap.sigschemes import Signer, SigScheme

__all__ = [
    "DEFAULT_POLICY",
    "Genesis",
    "NodeKeys",
    "ValidatorAddress",
    "devnet_user",
    "load_genesis",
    "load_node_keys",
    "make_devnet",
]

DEFAULT_POLICY: dict[str, Any] = {
    "Mode": "PQ-fast",
    "Variant": "hybrid",
    "TimeoutMs": 3000,
    "Fallback": "PQ-off",
    "MagnetarParams": "SLH-DSA-SHA2-128f",
}
"""The devnet's CertPolicy: finalize at PQ-fast; the slower legs still upgrade the cert."""

USER_BALANCE = 10**15
"""Genesis balance of each devnet load-generator account."""


@dataclass(frozen=True, slots=True)
class ValidatorAddress:
    """Where and who a validator is on the network."""

    index: int
    host: str
    port: int
    node_id: bytes
    """sha256 of the validator's transport key (SPKI DER); the dialer checks it."""
    proposer_pk: bytes
    """Ed25519 public key that signs this validator's block frames."""


@dataclass(frozen=True, slots=True)
class Genesis:
    """An admitted genesis."""

    chain_id: int
    block_interval_ms: int
    vset: ValidatorSet
    addresses: tuple[ValidatorAddress, ...]
    allocations: dict[bytes, int]
    policy: CertPolicy
    raw: dict[str, Any]
    """The JSON object it was loaded from."""

    @property
    def genesis_id(self) -> bytes:
        """sha256 of the canonical genesis JSON: the parent of block 1."""
        text = json.dumps(self.raw, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).digest()

    def proposer_of(self, height: int, round_: int) -> int:
        """Round-robin proposer index for (height, round)."""
        return (height + round_) % self.vset.n


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """One node's private material."""

    index: int
    identity: NodeIdentity
    proposer: Signer
    secrets: ValidatorSecrets


def load_genesis(path: Path | str) -> Genesis:
    """Read and admit ``genesis.json``."""
    doc, raw = decode_file(Path(path), GenesisDoc, "genesis")
    return _admit(doc, raw)


def genesis_from_dict(raw: Any) -> Genesis:
    """Admit a genesis object (see :func:`load_genesis`)."""
    return _admit(decode_obj(raw, GenesisDoc, "genesis"), raw)


def _admit(doc: GenesisDoc, raw: dict[str, Any]) -> Genesis:
    """The checks past types and ranges: PoPs, the set, the policy, the allocations."""
    params = parse_policy(doc.quasar.cert_policy).magnetar_params
    validators: list[Validator] = []
    addresses: list[ValidatorAddress] = []
    for i, v in enumerate(doc.validators):
        validators.append(
            Validator(
                index=v.index,
                weight=v.weight,
                bls_pk=bytes.fromhex(v.bls_pk),
                bls_pop=bytes.fromhex(v.bls_pop),
                mldsa_pk=bytes.fromhex(v.mldsa_pk),
                slhdsa_pk=bytes.fromhex(v.slhdsa_pk),
            )
        )
        node_id, proposer_pk = bytes.fromhex(v.node_id), bytes.fromhex(v.proposer_pk)
        addresses.append(ValidatorAddress(i, v.host, v.port, node_id, proposer_pk))
    vset = ValidatorSet.create(validators, params, bytes.fromhex(doc.corona_pk))
    policy = load_policy(raw, vset)
    allocations: dict[bytes, int] = {}
    for j, a in enumerate(doc.allocations):
        acct = bytes.fromhex(a.account)
        if acct in allocations:
            raise ConfigError(f"genesis allocation {j}: account must be a distinct 32-byte id")
        allocations[acct] = a.balance
    if sum(allocations.values()) > 2**64 - 1:
        raise ConfigError("genesis: total allocation exceeds 2^64 - 1")
    return Genesis(
        doc.chain_id, doc.block_interval_ms, vset, tuple(addresses), allocations, policy, raw
    )


def load_node_keys(path: Path | str, genesis: Genesis) -> NodeKeys:
    """Read ``node.json`` and check every key against its genesis entry.

    Raises ConfigError naming the field (a bad type or range) or the key that
    does not derive the public key genesis lists for this validator
    (:func:`zapstack.node.keycheck.check_keys`).
    """
    from zapstack.crypto.ringtail import KeyShare
    from zapstack.node.keycheck import check_keys

    doc, _ = decode_file(Path(path), NodeFile, "node keys")
    where = f"node keys {path}"
    if doc.index >= genesis.vset.n:
        n = genesis.vset.n
        raise ConfigError(f"{where}: index {doc.index} is not a validator (genesis has {n})")
    if doc.transport_seed > 2**64 - 1:
        raise ConfigError(f"{where}: transport_seed must be below 2^64 - at `$.transport_seed`")
    identity = NodeIdentity.generate(doc.transport_seed)
    proposer = Signer(SigScheme.ED25519, bytes.fromhex(doc.proposer_seed))
    share_bytes = bytes.fromhex(doc.corona_share)
    try:
        share = KeyShare.from_bytes(share_bytes) if share_bytes else None
    except ZapError as exc:
        raise ConfigError(f"{where}: corona_share does not decode: {exc}") from exc
    secrets = ValidatorSecrets(
        doc.index,
        bytes.fromhex(doc.bls_sk),
        bytes.fromhex(doc.mldsa_sk),
        bytes.fromhex(doc.slhdsa_sk),
        share,
        bytes.fromhex(doc.nonce_seed),
    )
    keys = NodeKeys(doc.index, identity, proposer, secrets)
    check_keys(keys, genesis, where)
    return keys


def devnet_user(seed: bytes, i: int) -> Signer:
    """The i-th funded load-generator account of a devnet."""
    return Signer(SigScheme.ED25519, hashlib.sha256(seed + b"user" + struct.pack(">I", i)).digest())


def _transport_seed(seed: bytes, i: int) -> int:
    return int.from_bytes(
        hashlib.sha256(seed + b"transport" + struct.pack(">I", i)).digest()[:8], "big"
    )


def _proposer_seed(seed: bytes, i: int) -> bytes:
    return hashlib.sha256(seed + b"proposer" + struct.pack(">I", i)).digest()


def _genesis_entry(i: int, v: Validator, seed: bytes, host: str, port: int) -> dict[str, Any]:
    """Validator ``i``'s public entry in ``genesis.json``."""
    identity = NodeIdentity.generate(_transport_seed(seed, i))
    proposer = Signer(SigScheme.ED25519, _proposer_seed(seed, i))
    return {
        "index": i,
        "weight": v.weight,
        "host": host,
        "port": port,
        "node_id": identity.node_id.hex(),
        "proposer_pk": proposer.public_key.hex(),
        "bls_pk": v.bls_pk.hex(),
        "bls_pop": v.bls_pop.hex(),
        "mldsa_pk": v.mldsa_pk.hex(),
        "slhdsa_pk": v.slhdsa_pk.hex(),
    }


def _node_file(i: int, s: ValidatorSecrets, seed: bytes) -> dict[str, Any]:
    """Validator ``i``'s private ``node.json``."""
    share = s.corona_share
    return {
        "index": i,
        "transport_seed": _transport_seed(seed, i),
        "proposer_seed": _proposer_seed(seed, i).hex(),
        "bls_sk": s.bls_sk.hex(),
        "mldsa_sk": s.mldsa_sk.hex(),
        "slhdsa_sk": s.slhdsa_sk.hex(),
        "corona_share": share.to_bytes().hex() if share is not None else "",  # type: ignore[attr-defined]
        "nonce_seed": s.nonce_seed.hex(),
    }


def _write_home(
    home: Path, genesis: dict[str, Any], node_files: list[dict[str, Any]]
) -> list[Path]:
    """Write ``home/genesis.json`` and each ``home/node-<i>/node.json`` (mode 0600)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "genesis.json").write_text(json.dumps(genesis, indent=1) + "\n", encoding="utf-8")
    homes: list[Path] = []
    for i, keys in enumerate(node_files):
        node_home = home / f"node-{i}"
        node_home.mkdir(exist_ok=True)
        key_path = node_home / "node.json"
        key_path.write_text(json.dumps(keys, indent=1) + "\n", encoding="utf-8")
        key_path.chmod(0o600)
        homes.append(node_home)
    return homes


def make_devnet(
    home: Path,
    n: int,
    *,
    seed: bytes = b"zapstack devnet",
    base_port: int = 9400,
    chain_id: int = 0x4C5558,
    block_interval_ms: int = 400,
    users: int = 64,
    policy: Mapping[str, Any] | None = None,
    hosts: Sequence[str] | None = None,
) -> list[Path]:
    """Deal a devnet: write ``home/genesis.json`` and ``home/node-<i>/node.json``.

    Returns the node home folders.  Deterministic in ``seed``.
    """
    policy_block = dict(policy or DEFAULT_POLICY)
    params = parse_policy(policy_block).magnetar_params
    vset, secrets = generate_validators(n, seed, slh_params=params)
    pairs = list(enumerate(zip(vset.validators, secrets, strict=True)))
    entries = [
        _genesis_entry(i, v, seed, hosts[i] if hosts else "127.0.0.1", base_port + i)
        for i, (v, _) in pairs
    ]
    allocations = [
        {
            "account": hashlib.sha256(devnet_user(seed, u).public_key).hexdigest(),
            "balance": USER_BALANCE,
        }
        for u in range(users)
    ]
    genesis = {
        "chain_id": chain_id,
        "block_interval_ms": block_interval_ms,
        "validators": entries,
        "corona_pk": vset.corona_pk.hex(),
        "allocations": allocations,
        "quasar": {"cert_policy": policy_to_dict(parse_policy(policy_block))},
        "devnet_seed": seed.hex(),
    }
    return _write_home(home, genesis, [_node_file(i, s, seed) for i, (_, s) in pairs])
