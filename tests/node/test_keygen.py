"""A validator's own keys (``zap init``): fresh randomness, the documented derivation, 0600."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from zapstack.crypto import bls, mldsa, slhdsa
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import ConfigError
from zapstack.node.keygen import init_home, new_validator
from zapstack.transport.identity import NodeIdentity
from zapstack.zap.sigschemes import Signer, SigScheme

P = ParamSet.SHA2_128F


def test_two_fresh_validators_share_no_key() -> None:
    (s1, p1), (s2, p2) = new_validator("h", 1, P), new_validator("h", 1, P)
    for field in s1:
        assert s1[field] != s2[field], field
    for field in ("node_id", "proposer_pk", "bls_pk", "mldsa_pk", "slhdsa_pk"):
        assert p1[field] != p2[field], field


def _ref(seed: bytes, label: str, slot: int) -> bytes:
    """genesis.md §3: sha256(seed ‖ label ‖ u32 BE slot)."""
    return hashlib.sha256(seed + label.encode() + struct.pack(">I", slot)).digest()


@pytest.mark.parametrize("slot", [0, 3])
def test_a_seeded_validator_follows_the_documented_derivation(slot: int) -> None:
    seed = b"doc seed"
    secret, public = new_validator("10.0.0.9", 9401, P, seed=seed, slot=slot)
    transport = _ref(seed, "transport", slot)
    assert secret["transport_key"] == transport.hex() and "transport_seed" not in secret
    assert secret["proposer_seed"] == _ref(seed, "proposer", slot).hex()
    assert secret["nonce_seed"] == _ref(seed, "nonce", slot).hex()
    assert secret["mldsa_sk"] == _ref(seed, "mldsa", slot).hex()  # FIPS 204 ξ is the seed
    assert "index" not in secret and "corona_share" not in secret
    assert public["host"] == "10.0.0.9" and public["port"] == 9401
    assert public["node_id"] == NodeIdentity.generate(transport).node_id.hex()
    proposer = Signer(SigScheme.ED25519, _ref(seed, "proposer", slot))
    assert public["proposer_pk"] == proposer.public_key.hex()
    assert public["bls_pk"] == bls.public_key(bytes.fromhex(secret["bls_sk"])).hex()
    assert bls.pop_verify(bytes.fromhex(public["bls_pk"]), bytes.fromhex(public["bls_pop"]))
    assert public["mldsa_pk"] == mldsa.public_key(bytes.fromhex(secret["mldsa_sk"])).hex()
    slh_sk = bytes.fromhex(secret["slhdsa_sk"])
    assert slh_sk[32:].hex() == public["slhdsa_pk"]  # sk = sk_seed ‖ sk_prf ‖ pk_seed ‖ root
    assert slhdsa.keygen(_ref(seed, "slhdsa", slot), P)[0] == slh_sk
    assert public["slhdsa_params"] == "slh-dsa-sha2-128f"


def test_init_home_writes_secrets_0600_and_exports_only_public_parts(tmp_path: Path) -> None:
    home = tmp_path / "v0"
    public_path = init_home(home, "127.0.0.1", 9400, P)
    key_file = home / "node.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert home.stat().st_mode & 0o777 == 0o700
    secret = json.loads(key_file.read_text())
    exported = public_path.read_text()
    for field in ("proposer_seed", "bls_sk", "mldsa_sk", "slhdsa_sk", "nonce_seed"):
        half = secret[field][: len(secret[field]) // 2]  # slhdsa_sk's tail IS its public key
        assert half not in exported, field
    assert secret["transport_key"][:32] not in exported


def test_init_home_refuses_to_overwrite_a_key_file(tmp_path: Path) -> None:
    home = tmp_path / "v0"
    init_home(home, "127.0.0.1", 9400, P)
    before = (home / "node.json").read_bytes()
    with pytest.raises(ConfigError, match="exists; refusing to overwrite"):
        init_home(home, "127.0.0.1", 9400, P)
    assert (home / "node.json").read_bytes() == before


def test_init_home_refuses_a_file_as_home(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        init_home(tmp_path / "f", "127.0.0.1", 9400, P)
