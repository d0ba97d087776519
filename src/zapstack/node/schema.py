"""Typed shapes of ``genesis.json`` and ``node.json`` (msgspec), decoded in one step.

Contract
--------
* :func:`decode_file` reads a JSON file and converts it to one of the structs
  below, or raises :class:`~zapstack.errors.ConfigError` with one line naming
  the file and the path of the first bad field (``$.validators[0].port``),
  as msgspec reports it.
* The structs check types and ranges only (``docs/formats/genesis.md`` §1-2);
  the meaning (proofs of possession, CertPolicy rules, keys matching genesis)
  is checked by :mod:`zapstack.node.genesis` and :mod:`zapstack.node.keycheck`.
* Unknown keys are ignored (they are part of the genesis id); ``true`` /
  ``false`` and floats are refused where an integer is expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from zapstack.errors import ConfigError

__all__ = [
    "Allocation",
    "GenesisDoc",
    "NodeFile",
    "PublicFile",
    "ShareFile",
    "ValidatorEntry",
    "decode_file",
    "decode_obj",
]

Hex = Annotated[str, msgspec.Meta(pattern="^([0-9a-fA-F]{2})*$")]
"""A hex string of whole bytes (empty allowed)."""
Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{64}$")]
"""Exactly 32 bytes in hex."""
U64 = Annotated[int, msgspec.Meta(ge=0)]
"""A non-negative integer; the caller checks the 2^64 - 1 ceiling (msgspec stops at int64)."""


class ValidatorEntry(msgspec.Struct, frozen=True):
    """One entry of ``genesis.validators`` (genesis.md §1.1)."""

    index: Annotated[int, msgspec.Meta(ge=0, le=4095)]
    weight: Annotated[int, msgspec.Meta(ge=1, le=1 << 48)]
    host: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    node_id: Hex32
    proposer_pk: Hex32
    bls_pk: Hex = ""
    bls_pop: Hex = ""
    mldsa_pk: Hex = ""
    slhdsa_pk: Hex = ""


class Allocation(msgspec.Struct, frozen=True):
    """One genesis balance (genesis.md §1.2)."""

    account: Hex32
    balance: U64


class Quasar(msgspec.Struct, frozen=True):
    """``genesis.quasar``: the CertPolicy block (its fields: ``certpolicy.md``)."""

    cert_policy: dict[str, Any]


class GenesisDoc(msgspec.Struct, frozen=True):
    """``genesis.json`` (genesis.md §1)."""

    chain_id: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
    block_interval_ms: Annotated[int, msgspec.Meta(ge=1, le=3_600_000)]
    validators: Annotated[list[ValidatorEntry], msgspec.Meta(min_length=1, max_length=4096)]
    quasar: Quasar
    corona_pk: Hex = ""
    allocations: list[Allocation] = []
    devnet_seed: Hex = ""


Index = Annotated[int, msgspec.Meta(ge=0, le=4095)]
"""A validator's position in the set."""


class NodeFile(msgspec.Struct, frozen=True):
    """``node.json`` (genesis.md §2): one validator's secret keys.

    Exactly one of ``transport_key`` (32 bytes, what ``zap init`` writes) and
    the older u64 ``transport_seed`` names the transport identity.
    ``index`` and ``corona_share`` are absent in a file ``zap init`` wrote:
    ``share.json`` beside it holds them (genesis.md §2b).
    """

    proposer_seed: Hex32
    transport_key: Hex32 | None = None
    transport_seed: U64 | None = None
    bls_sk: Hex = ""
    mldsa_sk: Hex = ""
    slhdsa_sk: Hex = ""
    corona_share: Hex = ""
    nonce_seed: Hex = ""
    index: Index | None = None


class PublicFile(msgspec.Struct, frozen=True):
    """``public.json`` (genesis.md §4): what ``zap init`` exports for genesis."""

    host: Annotated[str, msgspec.Meta(min_length=1)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    node_id: Hex32
    proposer_pk: Hex32
    bls_pk: Hex
    bls_pop: Hex
    mldsa_pk: Hex
    slhdsa_pk: Hex
    slhdsa_params: str


class ShareFile(msgspec.Struct, frozen=True):
    """``share.json`` (genesis.md §2b): the validator's index and dealt Corona share."""

    index: Index
    genesis_id: Hex32
    corona_share: Hex


T = TypeVar("T")


def decode_obj(raw: Any, kind: type[T], what: str) -> T:
    """Convert a parsed JSON value to ``kind`` or raise ConfigError naming the field."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if " - at `" not in text:
            text += " - at `$`"
        raise ConfigError(f"{what}: {text}") from exc


def decode_file(path: Path, kind: type[T], what: str) -> tuple[T, Any]:
    """Read ``path`` as JSON and convert it; returns the struct and the raw JSON value."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read {what} {path}: {reason}") from exc
    return decode_obj(raw, kind, f"{what} {path}"), raw
