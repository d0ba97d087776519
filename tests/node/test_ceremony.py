"""``zap genesis``'s core: genesis from public files, dealt shares, homes that pass keycheck."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from zapstack.crypto import ringtail
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import ConfigError
from zapstack.node.ceremony import build_genesis, load_public, write_genesis
from zapstack.node.genesis import DEFAULT_POLICY, genesis_from_dict, load_genesis, load_node_keys
from zapstack.node.keygen import init_home

N = 4


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 homes made by init_home, a genesis dealt over them, each share copied in."""
    root = tmp_path_factory.mktemp("ceremony")
    publics = [
        load_public(init_home(root / f"v{i}", f"127.0.0.{i + 1}", 9400, ParamSet.SHA2_128F))
        for i in range(N)
    ]
    g, shares = build_genesis(
        publics,
        chain_id=7,
        block_interval_ms=300,
        policy=DEFAULT_POLICY,
        allocations={bytes(range(32)): 5},
    )
    paths = write_genesis(root / "out", g, shares)
    for i, path in enumerate(paths):
        shutil.copy(root / "out" / "genesis.json", root / f"v{i}" / "genesis.json")
        shutil.copy(path, root / f"v{i}" / "share.json")
    return root


def test_every_home_loads_and_passes_the_key_checks(net: Path) -> None:
    g = load_genesis(net / "out" / "genesis.json")
    assert g.chain_id == 7 and g.vset.n == N and g.allocations == {bytes(range(32)): 5}
    assert [a.host for a in g.addresses] == [f"127.0.0.{i + 1}" for i in range(N)]
    for i in range(N):
        keys = load_node_keys(net / f"v{i}" / "node.json", g)
        assert keys.index == i and keys.identity.node_id == g.addresses[i].node_id


def test_the_dealt_shares_sign_under_the_genesis_group_key(net: Path) -> None:
    g = load_genesis(net / "out" / "genesis.json")
    shares = [
        ringtail.KeyShare.from_bytes(
            bytes.fromhex(json.loads((net / "out" / f"share-{i}.json").read_text())["corona_share"])
        )
        for i in range(N)
    ]
    t = g.vset.corona_threshold
    sig = ringtail.sign_in_process(shares[:t], b"m", b"s" * 32, b"r" * 32)
    pk = ringtail.GroupPublicKey.from_bytes(g.vset.corona_pk)
    assert ringtail.verify(pk, b"m", sig)
    assert not ringtail.verify(pk, b"other", sig)


def test_share_files_are_0600_and_genesis_is_not_replaced(net: Path) -> None:
    for i in range(N):
        assert (net / "out" / f"share-{i}.json").stat().st_mode & 0o777 == 0o600
    raw = json.loads((net / "out" / "genesis.json").read_text())
    with pytest.raises(ConfigError, match="refusing to replace"):
        write_genesis(net / "out", raw, [])


def _home_copy(net: Path, tmp_path: Path, i: int) -> Path:
    home = tmp_path / f"v{i}"
    shutil.copytree(net / f"v{i}", home)
    return home


def test_another_validators_share_is_named(net: Path, tmp_path: Path) -> None:
    g = load_genesis(net / "out" / "genesis.json")
    home = _home_copy(net, tmp_path, 0)
    shutil.copy(net / "out" / "share-2.json", home / "share.json")
    with pytest.raises(ConfigError, match=r"validator 2's share.*as validator 0 .copy share-0"):
        load_node_keys(home / "node.json", g)


def test_no_share_and_no_index_is_refused(net: Path, tmp_path: Path) -> None:
    g = load_genesis(net / "out" / "genesis.json")
    home = _home_copy(net, tmp_path, 1)
    (home / "share.json").unlink()
    with pytest.raises(ConfigError, match=r"no index and no .*share.json"):
        load_node_keys(home / "node.json", g)


def test_a_share_and_an_index_in_node_json_are_refused(net: Path, tmp_path: Path) -> None:
    g = load_genesis(net / "out" / "genesis.json")
    home = _home_copy(net, tmp_path, 1)
    raw = json.loads((home / "node.json").read_text())
    (home / "node.json").write_text(json.dumps({**raw, "index": 1}))
    with pytest.raises(ConfigError, match=r"and so does .*share.json; remove one"):
        load_node_keys(home / "node.json", g)


def test_a_share_of_another_genesis_is_refused(net: Path, tmp_path: Path) -> None:
    raw = json.loads((net / "out" / "genesis.json").read_text())
    other = genesis_from_dict({**raw, "chain_id": 8})
    home = _home_copy(net, tmp_path, 1)
    with pytest.raises(ConfigError, match="was dealt for genesis"):
        load_node_keys(home / "node.json", other)


def _publics(net: Path) -> list[dict[str, Any]]:
    return [load_public(net / f"v{i}" / "public.json") for i in range(N)]


def _build(publics: list[dict[str, Any]], policy: dict[str, Any] = DEFAULT_POLICY) -> None:
    build_genesis(publics, chain_id=1, block_interval_ms=400, policy=policy, allocations={})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.__setitem__(3, p[1]), "validator 3: same node_id as validator 1"),
        (lambda p: p[2].__setitem__("port", 0), r"validator 2: .* - at `\$.port`"),
        (lambda p: p[0].__setitem__("bls_pop", p[1]["bls_pop"]), "proof of possession"),
        (lambda p: p[1].__setitem__("host", "127.0.0.1"), "same host:port as validator 0"),
        (lambda p: p.clear(), "at least one validator"),
    ],
)
def test_bad_public_files_are_refused_by_validator(net: Path, edit: Any, message: str) -> None:
    publics = _publics(net)
    edit(publics)
    with pytest.raises(ConfigError, match=message):
        _build(publics)


def test_a_policy_with_other_slhdsa_params_names_the_option(net: Path) -> None:
    policy = {**DEFAULT_POLICY, "MagnetarParams": "slh-dsa-shake-192s"}
    with pytest.raises(ConfigError, match="--slhdsa-params slh-dsa-shake-192s"):
        _build(_publics(net), policy)


def test_two_dealer_runs_give_different_group_keys(net: Path) -> None:
    a, _ = build_genesis(
        _publics(net), chain_id=1, block_interval_ms=400, policy=DEFAULT_POLICY, allocations={}
    )
    b, _ = build_genesis(
        _publics(net), chain_id=1, block_interval_ms=400, policy=DEFAULT_POLICY, allocations={}
    )
    assert a["corona_pk"] != b["corona_pk"]
    assert a["validators"] == b["validators"]
