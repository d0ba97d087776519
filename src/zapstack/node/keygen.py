"""A validator's own keys, made in its home: what ``zap init`` does.

Contract
--------
* :func:`new_validator` makes one validator's secret keys (transport
  identity seed, proposer Ed25519 seed, BLS, ML-DSA-65, SLH-DSA, Corona nonce
  seed) and their public parts (with the BLS proof of possession).  Every key
  is ``sha256(master ‖ label ‖ u32 BE slot)``; ``master`` is 32 bytes from the
  OS's randomness (``os.urandom``) unless a seed is given (``make_devnet``'s
  reproducible devnets: ``master = seed``, ``slot = i``, the derivation
  ``docs/formats/genesis.md`` §3 documents).
* :func:`init_home` writes the secrets to ``<home>/node.json`` (created with
  mode 0600 in one step, ``O_EXCL``: an existing key file is never
  overwritten) and the public parts to ``<home>/public.json``, the one file
  the operator sends to whoever builds genesis.  The Corona key share and the
  validator's index are not known yet: ``zap genesis`` deals them into
  ``share-<i>.json``, which the operator copies to ``<home>/share.json``.
* The transport identity is derived from a 32-byte ``transport_key``
  (``genesis.md`` §2): 256 bits of entropy, like every other key.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from zapstack.crypto import bls, mldsa, slhdsa
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import ConfigError
from zapstack.transport.identity import NodeIdentity
from zapstack.zap.sigschemes import Signer, SigScheme

__all__ = ["KEY_FILE", "PUBLIC_FILE", "SHARE_FILE", "init_home", "new_validator", "write_secret"]

KEY_FILE = "node.json"
"""The home's secret key file (``genesis.md`` §2)."""
PUBLIC_FILE = "public.json"
"""What ``zap init`` exports (``genesis.md`` §4)."""
SHARE_FILE = "share.json"
"""The validator's index and Corona share, copied from ``zap genesis``'s ``share-<i>.json``."""


def _derive(master: bytes, label: str, slot: int) -> bytes:
    return hashlib.sha256(master + label.encode() + struct.pack(">I", slot)).digest()


def new_validator(
    host: str,
    port: int,
    slh_params: ParamSet,
    *,
    seed: bytes | None = None,
    slot: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One validator's (secret ``node.json`` fields, public ``public.json`` object).

    The secret fields are those of ``node.json`` except ``index`` and
    ``corona_share``, which come from the dealer.
    """
    master = os.urandom(32) if seed is None else seed
    transport_key = _derive(master, "transport", slot)
    proposer_seed = _derive(master, "proposer", slot)
    bls_sk, bls_pk = bls.keygen(_derive(master, "bls", slot))
    ml_sk, ml_pk = mldsa.keygen(_derive(master, "mldsa", slot))
    slh_sk, slh_pk = slhdsa.keygen(_derive(master, "slhdsa", slot), slh_params)
    secret = {
        "transport_key": transport_key.hex(),
        "proposer_seed": proposer_seed.hex(),
        "bls_sk": bls_sk.hex(),
        "mldsa_sk": ml_sk.hex(),
        "slhdsa_sk": slh_sk.hex(),
        "nonce_seed": _derive(master, "nonce", slot).hex(),
    }
    public = {
        "host": host,
        "port": port,
        "node_id": NodeIdentity.generate(transport_key).node_id.hex(),
        "proposer_pk": Signer(SigScheme.ED25519, proposer_seed).public_key.hex(),
        "bls_pk": bls_pk.hex(),
        "bls_pop": bls.pop_prove(bls_sk).hex(),
        "mldsa_pk": ml_pk.hex(),
        "slhdsa_pk": slh_pk.hex(),
        "slhdsa_params": slh_params.label,
    }
    return secret, public


def write_secret(path: Path, obj: Any) -> None:
    """Create ``path`` with mode 0600 and write ``obj`` as JSON; never overwrite.

    Raises ConfigError (one line) when the file exists already.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; refusing to overwrite a secret key file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=1) + "\n")
        f.flush()
        os.fsync(f.fileno())


def init_home(
    home: Path, host: str, port: int, slh_params: ParamSet, *, seed: bytes | None = None
) -> Path:
    """Make a validator's keys in ``home``; return the public file's path (see the contract)."""
    if home.exists() and not home.is_dir():
        raise ConfigError(f"{home} exists and is not a folder")
    if (home / KEY_FILE).exists():
        raise ConfigError(f"{home / KEY_FILE} exists; refusing to overwrite a validator's keys")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret, public = new_validator(host, port, slh_params, seed=seed)
    write_secret(home / KEY_FILE, secret)
    out = home / PUBLIC_FILE
    out.write_text(json.dumps(public, indent=1) + "\n", encoding="utf-8")
    return out
