"""Building a genesis from the validators' public files: what ``zap genesis`` does.

Contract
--------
* :func:`build_genesis` takes the public parts ``zap init`` exported (one
  object per validator, in index order), the allocations and the CertPolicy
  block, runs the Corona (Ringtail) trusted dealer once and returns the
  ``genesis.json`` object and one ``share.json`` object per validator.  The
  result is admitted by :func:`~zapstack.node.genesis.genesis_from_dict`
  (typed schema, proofs of possession, the policy's launch rules) before it is
  returned; a problem is one :class:`~zapstack.errors.ConfigError` naming the
  validator.
* THE DEALER IS TRUSTED: while it runs it holds the group secret, from which it
  could make any Corona signature alone.  The secret lives only in this
  process's memory; it is never written.  The dealer seed is 32 bytes of OS
  randomness unless a seed is given (reproducible devnets).
* :func:`write_genesis` writes ``<out>/genesis.json`` and
  ``<out>/share-<i>.json`` (mode 0600, created ``O_EXCL``); it refuses to
  replace an existing genesis (a second dealer run is another chain).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zapstack.consensus.legs import corona as corona_leg
from zapstack.consensus.policy import parse_policy, policy_to_dict
from zapstack.consensus.validators import threshold_of
from zapstack.errors import ConfigError
from zapstack.node.genesis import genesis_from_dict
from zapstack.node.keygen import write_secret
from zapstack.node.schema import PublicFile, decode_file, decode_obj

__all__ = ["DEALER_WARNING", "build_genesis", "load_public", "write_genesis"]

DEALER_WARNING = (
    "This machine ran the Corona (Ringtail) dealer: while it ran it held the group secret "
    "key, with which whoever runs it can make Corona signatures alone. Whoever runs "
    "`zap genesis` must be trusted by every validator. Give share-<i>.json only to "
    "validator i (its home's share.json), then delete the share files here."
)
"""What ``zap genesis`` prints, and ``docs/operations.md`` repeats."""


def load_public(path: Path) -> dict[str, Any]:
    """Read and type-check one ``public.json``; returns the JSON object."""
    _, raw = decode_file(path, PublicFile, "validator public file")
    return dict(raw)


def _entry(i: int, pub: Mapping[str, Any], weight: int, params_label: str) -> dict[str, Any]:
    """Validator ``i``'s genesis entry from its public file."""
    doc = decode_obj(pub, PublicFile, f"validator {i}")
    if doc.slhdsa_params.lower() != params_label:
        raise ConfigError(
            f"validator {i}: its SLH-DSA key is {doc.slhdsa_params}, the policy's "
            f"MagnetarParams is {params_label} (zap init --slhdsa-params {params_label})"
        )
    return {
        "index": i,
        "weight": weight,
        "host": doc.host,
        "port": doc.port,
        "node_id": doc.node_id,
        "proposer_pk": doc.proposer_pk,
        "bls_pk": doc.bls_pk,
        "bls_pop": doc.bls_pop,
        "mldsa_pk": doc.mldsa_pk,
        "slhdsa_pk": doc.slhdsa_pk,
    }


def _check_distinct(entries: Sequence[Mapping[str, Any]]) -> None:
    """Refuse a validator listed twice (same node id) or two on one host:port."""
    seen: dict[object, int] = {}
    for e in entries:
        for key, what in (
            (("id", e["node_id"]), "node_id as"),
            (("at", e["host"], e["port"]), "host:port as"),
        ):
            if key in seen:
                raise ConfigError(
                    f"validator {e['index']}: same {what} validator {seen[key]} "
                    "(a public file given twice?)"
                )
            seen[key] = e["index"]


def build_genesis(
    publics: Sequence[Mapping[str, Any]],
    *,
    chain_id: int,
    block_interval_ms: int,
    policy: Mapping[str, Any],
    allocations: Mapping[bytes, int],
    dealer_seed: bytes | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(genesis object, share objects in index order); see the contract."""
    if not publics:
        raise ConfigError("genesis needs at least one validator public file")
    policy_block = policy_to_dict(parse_policy(policy))
    label = str(policy_block["MagnetarParams"])
    entries = [_entry(i, pub, 1, label) for i, pub in enumerate(publics)]
    _check_distinct(entries)
    n = len(entries)
    seed = os.urandom(32) if dealer_seed is None else dealer_seed
    corona_pk, shares = corona_leg.deal_epoch(n, threshold_of(n), seed)
    genesis: dict[str, Any] = {
        "chain_id": chain_id,
        "block_interval_ms": block_interval_ms,
        "validators": entries,
        "corona_pk": corona_pk.hex(),
        "allocations": [{"account": a.hex(), "balance": b} for a, b in allocations.items()],
        "quasar": {"cert_policy": policy_block},
        **(extra or {}),
    }
    genesis_id = genesis_from_dict(genesis).genesis_id.hex()
    share_files = [
        {"index": i, "genesis_id": genesis_id, "corona_share": s.to_bytes().hex()}
        for i, s in enumerate(shares)
    ]
    return genesis, share_files


def write_genesis(
    out: Path, genesis: Mapping[str, Any], shares: Sequence[Mapping[str, Any]]
) -> list[Path]:
    """Write ``out/genesis.json`` and ``out/share-<i>.json``; return the share paths."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder")
    target = out / "genesis.json"
    if target.exists():
        raise ConfigError(f"{target} exists; refusing to replace a chain's genesis")
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"share-{i}.json" for i in range(len(shares))]
    for path, share in zip(paths, shares, strict=True):
        write_secret(path, share)
    target.write_text(json.dumps(genesis, indent=1) + "\n", encoding="utf-8")
    return paths
