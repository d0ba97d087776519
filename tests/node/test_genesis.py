import json
from pathlib import Path

import pytest

from zapstack.errors import ConfigError
from zapstack.node.genesis import devnet_user, genesis_from_dict, load_genesis, load_node_keys


def test_devnet_genesis_loads_and_keys_match(devnet_home: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    assert g.vset.n == 4 and g.policy.mode.value == "PQ-fast"
    for i in range(4):
        keys = load_node_keys(devnet_home / f"node-{i}" / "node.json", g)
        assert keys.identity.node_id == g.addresses[i].node_id
    seed = bytes.fromhex(g.raw["devnet_seed"])
    import hashlib

    assert hashlib.sha256(devnet_user(seed, 0).public_key).digest() in g.allocations
    assert [g.proposer_of(h, 0) for h in range(1, 5)] == [1, 2, 3, 0]


def mutate(home: Path, fn) -> dict:  # type: ignore[no-untyped-def]
    raw = json.loads((home / "genesis.json").read_text())
    fn(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: g["validators"][1].__setitem__("bls_pop", g["validators"][0]["bls_pop"]),
            "proof of possession",
        ),
        (lambda g: g["quasar"]["cert_policy"].__setitem__("TimeoutMs", 10), "rule 3"),
        (lambda g: g["quasar"]["cert_policy"].__setitem__("Fallback", "PQ-heavy"), "rule 2"),
        (lambda g: g.__setitem__("chain_id", -1), "chain_id"),
        (lambda g: g["validators"][0].__setitem__("node_id", "zz"), "`$.validators[0].node_id`"),
        (lambda g: g.__setitem__("allocations", 5), "got `int` - at `$.allocations`"),
        (
            lambda g: g["quasar"].__setitem__("cert_policy", "PQ-fast"),
            "Expected `object`, got `str` - at `$.quasar.cert_policy`",
        ),
        (lambda g: g["validators"][1].__setitem__("port", 70000), "`$.validators[1].port`"),
        (lambda g: g["validators"][0].__setitem__("weight", True), "got `bool`"),
        (lambda g: g.pop("quasar"), "missing required field `quasar`"),
        (lambda g: g["allocations"].append(g["allocations"][0]), "distinct"),
        (lambda g: g.__setitem__("validators", []), "validators"),
    ],
)
def test_bad_genesis_is_rejected_with_a_clear_error(
    devnet_home: Path, change, message: str
) -> None:  # type: ignore[no-untyped-def]
    raw = mutate(devnet_home, change)
    with pytest.raises(ConfigError) as exc:
        genesis_from_dict(raw)
    assert message in str(exc.value)


def test_genesis_that_is_not_an_object_names_the_root() -> None:
    with pytest.raises(ConfigError, match=r"got `array` - at `\$`"):
        genesis_from_dict([1, 2])


def test_node_keys_must_match_genesis(devnet_home: Path, tmp_path: Path) -> None:
    g = load_genesis(devnet_home / "genesis.json")
    raw = json.loads((devnet_home / "node-1" / "node.json").read_text())
    raw["index"] = 2
    bad = tmp_path / "node.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError):
        load_node_keys(bad, g)


def test_make_devnet_is_deterministic_in_its_seed(tmp_path: Path) -> None:
    from zapstack.node.genesis import make_devnet

    files = ["genesis.json", "node-0/node.json", "node-1/node.json"]
    dealt = []
    for name, seed in (("a", b"s"), ("b", b"s"), ("c", b"t")):
        homes = make_devnet(tmp_path / name, 2, seed=seed, users=2, hosts=["h0", "h1"])
        assert homes == [tmp_path / name / "node-0", tmp_path / name / "node-1"]
        assert all((h / "node.json").stat().st_mode & 0o777 == 0o600 for h in homes)
        dealt.append([(tmp_path / name / f).read_bytes() for f in files])
    assert dealt[0] == dealt[1] and dealt[0][0] != dealt[2][0]
    g = load_genesis(tmp_path / "a" / "genesis.json")
    assert [a.host for a in g.addresses] == ["h0", "h1"]
    assert load_node_keys(tmp_path / "a" / "node-1" / "node.json", g).index == 1
