"""Peer reputation: scores go down by the penalty table, and the table of scores is bounded."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zapstack.errors import WireCode
from zapstack.mempool.reputation import DEFAULT_PENALTY, PENALTY, Reputation


def test_scores_start_at_zero_and_go_down_by_the_table() -> None:
    rep = Reputation()
    assert rep.score(b"a") == 0
    assert rep.penalize(b"a", WireCode.BAD_SIGNATURE) == -20
    assert rep.penalize(b"a", WireCode.TRUNCATED) == -25
    assert rep.penalize(b"a", WireCode.BAD_MAGIC) == -25 - DEFAULT_PENALTY  # not listed
    assert rep.penalize(b"b", WireCode.DUPLICATE) == 0  # honest gossip costs nothing
    assert rep.scores() == {b"a": -35}  # and leaves no entry


def test_a_hostile_flood_of_new_ids_keeps_the_table_bounded() -> None:
    rep = Reputation(max_peers=3)
    for i in range(10):
        rep.penalize(bytes([i]), WireCode.BAD_SIGNATURE)
    assert rep.scores() == {b"\x07": -20, b"\x08": -20, b"\x09": -20}
    rep.penalize(b"\x07", WireCode.TRUNCATED)  # scored again: the newest now
    rep.penalize(b"\x0a", WireCode.TRUNCATED)
    assert rep.scores() == {b"\x09": -20, b"\x07": -25, b"\x0a": -5}
    assert rep.score(b"\x08") == 0  # forgotten: as good as a new id


codes = st.sampled_from(list(WireCode))


@given(st.lists(st.tuples(st.integers(0, 7), codes), max_size=60), st.integers(1, 5))
def test_matches_a_plain_model(ops: list[tuple[int, WireCode]], bound: int) -> None:
    """Against a readable model: a list of (peer, score), oldest-scored first."""
    rep = Reputation(max_peers=bound)
    model: list[tuple[bytes, int]] = []
    for i, code in ops:
        peer = bytes([i])
        old = dict(model).get(peer, 0)
        new = old - PENALTY.get(code, DEFAULT_PENALTY)
        model = [(p, s) for p, s in model if p != peer]
        if new:
            model.append((peer, new))
        model = model[-bound:]
        assert rep.penalize(peer, code) == new
        assert list(rep.scores().items()) == model
