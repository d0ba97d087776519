"""Launch check of node.json's secret keys against genesis: each mismatch names its key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import ConfigError
from zapstack.node.genesis import load_genesis, load_node_keys
from zapstack.node.keycheck import CHECKS
from zapstack.transport.identity import NodeIdentity


def write_keys(devnet_home: Path, tmp_path: Path, change: dict[str, Any]) -> Path:
    raw = json.loads((devnet_home / "node-1" / "node.json").read_text())
    raw.update(change)
    path = tmp_path / "node.json"
    path.write_text(json.dumps(raw))
    return path


def other(devnet_home: Path, field: str) -> Any:
    """Validator 2's value of ``field``: a well-formed key of the wrong validator."""
    return json.loads((devnet_home / "node-2" / "node.json").read_text())[field]


FIELDS = [c[0] for c in CHECKS]


def test_the_devnet_keys_pass(devnet_home: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    for i in range(4):
        assert load_node_keys(devnet_home / f"node-{i}" / "node.json", g).index == i


@pytest.mark.parametrize("field", FIELDS)
def test_another_validators_key_is_refused_by_name(
    devnet_home: Path, tmp_path: Path, field: str
) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    path = write_keys(devnet_home, tmp_path, {field: other(devnet_home, field)})
    with pytest.raises(ConfigError, match=rf": {field} does not derive the \w+ genesis lists"):
        load_node_keys(path, g)


@pytest.mark.parametrize(
    ("field", "garbage"),
    [
        ("bls_sk", "ff" * 32),  # not below the group order
        ("bls_sk", "01" * 31),  # wrong length
        ("mldsa_sk", "00" * 32),  # a valid seed of another key
        ("mldsa_sk", "00" * 7),
        ("slhdsa_sk", "00" * 64),  # right length, wrong key
        ("slhdsa_sk", "00" * 10),
        ("corona_share", "00" * 40),
    ],
)
def test_garbage_keys_are_refused_by_name(
    devnet_home: Path, tmp_path: Path, field: str, garbage: str
) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    path = write_keys(devnet_home, tmp_path, {field: garbage})
    with pytest.raises(ConfigError, match=rf": {field} "):
        load_node_keys(path, g)


def test_a_missing_key_genesis_lists_is_refused(devnet_home: Path, tmp_path: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    path = write_keys(devnet_home, tmp_path, {"mldsa_sk": ""})
    with pytest.raises(ConfigError, match="mldsa_sk: genesis has a key for validator 1"):
        load_node_keys(path, g)


def test_slhdsa_key_with_the_right_public_half_but_wrong_secret_is_refused(
    devnet_home: Path, tmp_path: Path
) -> None:
    """The embedded public half alone does not pass: the launch signature must verify."""
    g = load_genesis(devnet_home / "genesis.json")
    sk = bytes.fromhex(json.loads((devnet_home / "node-1" / "node.json").read_text())["slhdsa_sk"])
    forged = bytes(len(sk) // 2) + sk[len(sk) // 2 :]  # SK.seed, SK.prf zeroed; PK kept
    path = write_keys(devnet_home, tmp_path, {"slhdsa_sk": forged.hex()})
    with pytest.raises(ConfigError, match="slhdsa_sk does not derive"):
        load_node_keys(path, g)


@pytest.mark.parametrize(
    ("raw", "path"),
    [([1, 2], "`$`"), ({"index": "1"}, "`$.index`"), ({"index": 1}, "`proposer_seed`")],
)
def test_node_file_shape_errors_name_the_path(
    devnet_home: Path, tmp_path: Path, raw: Any, path: str
) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    bad = tmp_path / "node.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=path.replace("$", r"\$").replace(".", r"\.")):
        load_node_keys(bad, g)


def test_transport_identity_needs_exactly_one_of_key_and_seed(
    devnet_home: Path, tmp_path: Path
) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    raw = json.loads((devnet_home / "node-1" / "node.json").read_text())
    key = bytes.fromhex(raw["transport_key"])
    assert NodeIdentity.generate(key).node_id == g.addresses[1].node_id  # the documented scalar
    both = write_keys(devnet_home, tmp_path, {"transport_seed": 7})
    with pytest.raises(ConfigError, match="exactly one of transport_key and transport_seed"):
        load_node_keys(both, g)
    neither = write_keys(devnet_home, tmp_path, {"transport_key": None})
    with pytest.raises(ConfigError, match="exactly one of transport_key and transport_seed"):
        load_node_keys(neither, g)
    wrong = write_keys(
        devnet_home, tmp_path, {"transport_key": other(devnet_home, "transport_key")}
    )
    with pytest.raises(ConfigError, match="transport_key does not derive the node_id"):
        load_node_keys(wrong, g)


def test_a_transport_seed_file_still_loads_when_genesis_lists_its_node_id(
    devnet_home: Path, tmp_path: Path
) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    path = write_keys(devnet_home, tmp_path, {"transport_key": None, "transport_seed": 5})
    with pytest.raises(ConfigError, match="transport_key does not derive the node_id"):
        load_node_keys(path, g)  # a u64 seed is read; genesis lists another node id
