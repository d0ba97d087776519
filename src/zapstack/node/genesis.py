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
  With a ``share.json`` beside it (a home ``zap init`` made), the index and
  the share come from that file instead.
* :func:`make_devnet` deals a whole devnet with the functions behind ``zap
  init`` and ``zap genesis`` (:mod:`~zapstack.node.keygen`,
  :mod:`~zapstack.node.ceremony`): fresh keys, or deterministic in a seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zapstack.consensus.policy import CertPolicy, load_policy, parse_policy
from zapstack.consensus.validators import Validator, ValidatorSecrets, ValidatorSet
from zapstack.errors import ConfigError, ZapError
from zapstack.node.keygen import SHARE_FILE
from zapstack.node.schema import GenesisDoc, NodeFile, ShareFile, decode_file, decode_obj
from zapstack.transport.identity import NodeIdentity
from zapstack.zap.sigschemes import Signer, SigScheme

__all__ = [
    "DEFAULT_POLICY",
    "USER_BALANCE",
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
    """Read ``node.json`` (and ``share.json`` beside it) and check every key against genesis.

    The validator's index and Corona share come from ``share.json`` when that
    file exists (a home ``zap init`` made), else from ``node.json`` itself;
    never from both (genesis.md §2b).  Raises ConfigError naming the field (a
    bad type or range) or the key that does not derive the public key genesis
    lists for this validator (:func:`zapstack.node.keycheck.check_keys`).
    """
    from zapstack.node.keycheck import check_keys

    path = Path(path)
    doc, _ = decode_file(path, NodeFile, "node keys")
    where = f"node keys {path}"
    identity = NodeIdentity.generate(_transport_seed(doc, where))
    index, share_hex = _index_and_share(doc, path.parent / SHARE_FILE, genesis, identity, where)
    proposer = Signer(SigScheme.ED25519, bytes.fromhex(doc.proposer_seed))
    secrets = ValidatorSecrets(
        index,
        bytes.fromhex(doc.bls_sk),
        bytes.fromhex(doc.mldsa_sk),
        bytes.fromhex(doc.slhdsa_sk),
        _decode_share(share_hex, where),
        bytes.fromhex(doc.nonce_seed),
    )
    keys = NodeKeys(index, identity, proposer, secrets)
    check_keys(keys, genesis, where)
    return keys


def _transport_seed(doc: NodeFile, where: str) -> int | bytes:
    """``transport_key`` (32 bytes) or the older u64 ``transport_seed``: exactly one."""
    if (doc.transport_key is None) == (doc.transport_seed is None):
        raise ConfigError(
            f"{where}: give exactly one of transport_key and transport_seed - at `$.transport_key`"
        )
    if doc.transport_key is not None:
        return bytes.fromhex(doc.transport_key)
    assert doc.transport_seed is not None
    if doc.transport_seed > 2**64 - 1:
        raise ConfigError(f"{where}: transport_seed must be below 2^64 - at `$.transport_seed`")
    return doc.transport_seed


def _decode_share(share_hex: str, where: str) -> object | None:
    from zapstack.crypto.ringtail import KeyShare

    try:
        return KeyShare.from_bytes(bytes.fromhex(share_hex)) if share_hex else None
    except ZapError as exc:
        raise ConfigError(f"{where}: corona_share does not decode: {exc}") from exc


def _index_and_share(
    doc: NodeFile, share_path: Path, g: Genesis, identity: NodeIdentity, where: str
) -> tuple[int, str]:
    """(index, Corona share hex) from ``share.json`` if present, else from ``node.json``."""
    if share_path.exists():
        if doc.index is not None or doc.corona_share:
            raise ConfigError(
                f"{where}: holds an index or a corona_share, and so does {share_path}; "
                "remove one (zap init writes neither)"
            )
        share, _ = decode_file(share_path, ShareFile, "share")
        if share.genesis_id.lower() != g.genesis_id.hex():
            raise ConfigError(
                f"share {share_path} was dealt for genesis {share.genesis_id[:16]}..., "
                f"this genesis is {g.genesis_id.hex()[:16]}..."
            )
        index, share_hex, where = share.index, share.corona_share, f"share {share_path}"
        mine = [a.index for a in g.addresses if a.node_id == identity.node_id]
        if mine and mine[0] != index:
            raise ConfigError(
                f"{where}: is validator {index}'s share, but genesis lists this home's "
                f"transport key as validator {mine[0]} (copy share-{mine[0]}.json)"
            )
    elif doc.index is None:
        raise ConfigError(
            f"{where}: no index and no {share_path}: copy share-<i>.json from whoever "
            f"ran zap genesis to {share_path}"
        )
    else:
        index, share_hex = doc.index, doc.corona_share
    if index >= g.vset.n:
        raise ConfigError(f"{where}: index {index} is not a validator (genesis has {g.vset.n})")
    return index, share_hex


def devnet_user(seed: bytes, i: int) -> Signer:
    """The i-th funded load-generator account of a devnet."""
    return Signer(SigScheme.ED25519, hashlib.sha256(seed + b"user" + struct.pack(">I", i)).digest())


def make_devnet(
    home: Path,
    n: int,
    *,
    seed: bytes | None = None,
    base_port: int = 9400,
    chain_id: int = 0x4C5558,
    block_interval_ms: int = 400,
    users: int = 64,
    policy: Mapping[str, Any] | None = None,
    hosts: Sequence[str] | None = None,
) -> list[Path]:
    """Deal a devnet: write ``home/genesis.json`` and ``home/node-<i>/node.json``.

    Each validator's keys are made as ``zap init`` makes them
    (:func:`~zapstack.node.keygen.new_validator`) and the genesis as ``zap
    genesis`` builds it (:func:`~zapstack.node.ceremony.build_genesis`); its
    share is written into its ``node.json`` (one file per home).  ``hosts[i]``
    (default ``127.0.0.1``) and ``base_port + i`` are where validator ``i``
    listens.  With ``seed`` the whole devnet is deterministic in it (and the
    seed, written to genesis as ``devnet_seed``, gives the validators' keys
    away); without it every key and the dealer are fresh OS randomness and
    ``devnet_seed`` only derives the funded user accounts.
    """
    from zapstack.node.ceremony import build_genesis
    from zapstack.node.keygen import new_validator

    policy_block = dict(policy or DEFAULT_POLICY)
    params = parse_policy(policy_block).magnetar_params
    made = [
        new_validator(hosts[i] if hosts else "127.0.0.1", base_port + i, params, seed=seed, slot=i)
        for i in range(n)
    ]
    user_seed = os.urandom(32) if seed is None else seed
    allocations = {
        hashlib.sha256(devnet_user(user_seed, u).public_key).digest(): USER_BALANCE
        for u in range(users)
    }
    genesis, shares = build_genesis(
        [public for _, public in made],
        chain_id=chain_id,
        block_interval_ms=block_interval_ms,
        policy=policy_block,
        allocations=allocations,
        dealer_seed=None if seed is None else _devnet_seed(seed, "corona", 0),
        extra={"devnet_seed": user_seed.hex()},
    )
    node_files = [
        {"index": i, **secret, "corona_share": share["corona_share"]}
        for i, ((secret, _), share) in enumerate(zip(made, shares, strict=True))
    ]
    return _write_home(home, genesis, node_files)


def _devnet_seed(seed: bytes, label: str, i: int) -> bytes:
    return hashlib.sha256(seed + label.encode() + struct.pack(">I", i)).digest()


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
