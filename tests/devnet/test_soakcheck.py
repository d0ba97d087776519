"""The soak's offline checks on synthetic chains (the soak test runs them on real ones)."""

from __future__ import annotations

from pathlib import Path

from zapstack.devnet.soakcheck import (
    ChainRead,
    Restart,
    SoakResult,
    _check_agreement,
    _check_restarts,
    final_checks,
)
from zapstack.node.genesis import load_genesis, make_devnet


def _chain(*ids: bytes) -> ChainRead:
    return ChainRead(len(ids), b"r", tuple(ids), ())


def test_a_fresh_devnet_reads_empty_and_sound_but_the_malicious_peer_must_be_stopped(
    tmp_path: Path,
) -> None:
    homes = make_devnet(tmp_path, 4)
    g = load_genesis(tmp_path / "genesis.json")
    result = SoakResult()
    final_checks(homes, g, result)
    assert result.heights == {0: 0, 1: 0, 2: 0, 3: 0} and result.common_height == 0
    assert result.violations == [
        "no malformed tx frame stream of the malicious peer was stopped",
        "no consensus stream of the malicious (non-validator) peer was refused",
    ]
    result = SoakResult()
    result.malicious.stopped.update({"tx frame": 1, "consensus type": 2})
    final_checks(homes, g, result)
    assert result.violations == []
    result = SoakResult()  # a consensus stream cut off with its connection counts too
    result.malicious.stopped.update({"tx frame": 1})
    result.malicious.cut_off.update({"consensus type": 1})
    final_checks(homes, g, result)
    assert result.violations == []


def test_different_blocks_at_a_common_height_are_a_violation() -> None:
    result = SoakResult(common_height=2)
    _check_agreement({0: _chain(b"a", b"b", b"c"), 1: _chain(b"a", b"x")}, result)
    assert result.violations == ["validators hold different blocks at height 2"]


def test_a_restart_that_lost_blocks_or_never_caught_up_is_a_violation() -> None:
    result = SoakResult(common_height=3)
    result.restarts.append(Restart(3, 5.0, _chain(b"a", b"b"), target=3, caught_up_s=None))
    _check_restarts({3: _chain(b"a", b"x", b"c")}, result)
    assert result.violations == [
        "validator 3 lost committed blocks across its restart",
        "validator 3 did not catch up to height 3 after its restart",
        "the chain did not advance after the last restart (common height 3)",
    ]
    kept = SoakResult(common_height=4)
    kept.restarts.append(Restart(3, 5.0, _chain(b"a", b"b"), target=3, caught_up_s=1.5))
    _check_restarts({3: _chain(b"a", b"b", b"c", b"d")}, kept)
    assert kept.violations == []
