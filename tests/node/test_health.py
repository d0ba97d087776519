"""The health rule: each reason on its own, and the peers' height robust to f liars."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.node.health import PeerHeights, assess


def node(n: int = 4, connected: tuple[int, ...] = (0, 2, 3), **kw: Any) -> Any:
    heights = PeerHeights(n, 1)
    for sender, h in kw.pop("heard", {}).items():
        heights.note(sender, h)
    vset = SimpleNamespace(n=n, threshold_weight=2 * n // 3 + 1, weight_of=lambda ix: len(set(ix)))
    return SimpleNamespace(
        me=1,
        g=SimpleNamespace(vset=vset),
        consensus=SimpleNamespace(height=kw.get("height", 11), halted=kw.get("halted", False)),
        conns=SimpleNamespace(connected=lambda: list(connected)),
        sync=SimpleNamespace(catching_up=kw.get("catching_up", False), heights=heights),
        needs_sync=kw.get("needs_sync", False),
        fatal=kw.get("fatal"),
    )


@pytest.mark.parametrize(
    ("kw", "reasons"),
    [
        ({}, ()),
        ({"halted": True}, ("halted",)),
        ({"fatal": "disk full"}, ("halted",)),
        ({"needs_sync": True}, ("state_sync",)),
        ({"catching_up": True}, ("catching_up",)),
        ({"connected": (0,)}, ("no_quorum",)),  # 2 of 4 < 3
        ({"connected": (0, 2)}, ()),  # 3 of 4
        ({"heard": {0: 12, 2: 12, 3: 12}}, ()),  # peers deciding 12: final 11 > ours 10 by 1
        ({"heard": {0: 13, 2: 13, 3: 13}}, ("behind",)),  # final 12 > 10 + 1
        ({"heard": {0: 10**9, 2: 11, 3: 11}}, ()),  # one liar (f = 1) is outvoted
        ({"heard": {0: 10**9, 2: 10**9, 3: 11}}, ("behind",)),  # two agree: honest one among
        ({"heard": {0: 10**9}}, ()),  # fewer than f + 1 heard: no check
        ({"halted": True, "connected": ()}, ("halted", "no_quorum")),
    ],
)
def test_reasons(kw: dict[str, Any], reasons: tuple[str, ...]) -> None:
    h = assess(node(**kw))
    assert h.reasons == reasons and h.ok is (not reasons)
    assert h.height == 10
    body = h.body()
    assert body["ok"] is h.ok and body["reasons"] == list(reasons)


def test_one_validator_is_its_own_quorum() -> None:
    h = assess(node(n=1, connected=()))
    assert h.ok and h.weight == 1 and h.quorum_weight == 1 and h.peers_height is None


@given(st.lists(st.tuples(st.integers(-2, 6), st.integers(0, 50)), max_size=40))
def test_peer_heights_is_the_f_plus_1th_highest_per_validator(notes: list[tuple[int, int]]) -> None:
    n, me = 5, 2  # f = 1
    ph = PeerHeights(n, me)
    best: dict[int, int] = {}
    for sender, h in notes:
        ph.note(sender, h)
        if 0 <= sender < n and sender != me:
            best[sender] = max(best.get(sender, h), h)
    assert ph.heights == best
    ranked = sorted(best.values(), reverse=True)
    assert ph.peers_height() == (ranked[1] if len(ranked) >= 2 else None)
