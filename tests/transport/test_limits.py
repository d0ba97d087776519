"""Per-peer stream bounds: the sans-IO accountant alone, byte at a time, each rule; then
enforced by a session (a breach closes the connection before the byte is buffered).

Expected values come from the rules as docs/formats/streams.md §Limits states them,
restated here as a tiny model (``_owed``), never from the accountant's own output."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import WireCode
from zapstack.transport.events import CloseConnection, End, HandlerAction
from zapstack.transport.handler import NO_ACTIONS, StreamInfo
from zapstack.transport.limits import RULE_CODES, LimitPolicy, PeerLimits, Rule, StreamLimit
from zapstack.transport.session import Session
from zapstack.transport.streams import StreamType

VALIDATOR, STRANGER = b"v" * 32, b"s" * 32
SMALL = StreamLimit(10, min_rate=100.0, grace=2.0, deadline=20.0)
PRIV = StreamLimit(1000, validators_only=True, min_rate=100.0, grace=2.0, deadline=20.0)
POLICY = LimitPolicy(
    {StreamType.TX_SUBMIT: SMALL, StreamType.PROPOSAL: PRIV, StreamType.MEMPOOL_GOSSIP: PRIV},
    peer_budget=25,
    validator_budget=1500,
    validators=frozenset({VALIDATOR}),
)


def _owed(limit: StreamLimit, age: float) -> float:
    """streams.md: after ``grace`` a stream owes ``min rate x (age - grace)`` bytes."""
    return limit.min_rate * (age - limit.grace)


def test_the_codes_are_the_documented_ones() -> None:
    assert RULE_CODES == {
        Rule.SIZE: WireCode.BAD_LENGTH,
        Rule.PRIVILEGED: WireCode.STREAM_PROTOCOL_VIOLATION,
        Rule.BUDGET: WireCode.RATE_LIMITED,
        Rule.RATE: WireCode.TIMEOUT,
        Rule.DEADLINE: WireCode.TIMEOUT,
    }


def test_size_byte_at_a_time_breaks_on_the_byte_past_the_bound() -> None:
    acct = PeerLimits(POLICY, STRANGER)
    assert acct.opened(0, StreamType.TX_SUBMIT, 0.0) is None
    for _ in range(SMALL.max_bytes):
        assert acct.received(0, 1, 0.0) is None
    breach = acct.received(0, 1, 0.0)
    assert breach is not None and (breach.rule, breach.code) == (Rule.SIZE, WireCode.BAD_LENGTH)
    assert acct.held == SMALL.max_bytes  # the breaking byte is never counted as held
    acct.ended(0)
    assert acct.held == 0 and acct.streams == 0
    acct.ended(0)  # idempotent
    assert acct.received(0, 5, 0.0) is None  # an ended stream is not accounted any more


def test_privileged_type_from_a_non_validator_breaks_on_its_type_byte() -> None:
    acct = PeerLimits(POLICY, STRANGER)
    breach = acct.opened(4, StreamType.PROPOSAL, 0.0)
    assert breach is not None and breach.rule is Rule.PRIVILEGED and breach.stream_id == 4
    assert PeerLimits(POLICY, VALIDATOR).opened(4, StreamType.PROPOSAL, 0.0) is None


def test_privileged_streams_opened_before_the_hello_are_judged_when_it_verifies() -> None:
    early = PeerLimits(POLICY)
    assert early.opened(2, StreamType.PROPOSAL, 0.0) is None  # peer unknown yet
    assert early.authenticated(VALIDATOR) is None
    early = PeerLimits(POLICY)
    early.opened(2, StreamType.PROPOSAL, 0.0)
    breach = early.authenticated(STRANGER)
    assert breach is not None and breach.rule is Rule.PRIVILEGED


def test_budget_across_streams_byte_at_a_time_and_returned_at_the_end() -> None:
    acct = PeerLimits(POLICY, STRANGER)
    for sid in (0, 4, 8):
        acct.opened(sid, StreamType.TX_SUBMIT, 0.0)
    for fed in range(POLICY.peer_budget):
        assert acct.received((0, 4, 8)[fed // SMALL.max_bytes], 1, 0.0) is None
    breach = acct.received(8, 1, 0.0)
    assert breach is not None and (breach.rule, breach.code) == (Rule.BUDGET, WireCode.RATE_LIMITED)
    acct.ended(0)  # a finished stream returns its bytes
    assert acct.held == POLICY.peer_budget - SMALL.max_bytes
    assert acct.received(8, 1, 0.0) is None


def test_a_validator_gets_the_validator_budget() -> None:
    stranger, validator = PeerLimits(POLICY, STRANGER), PeerLimits(POLICY, VALIDATOR)
    assert (stranger.budget, validator.budget) == (25, 1500)
    validator.opened(0, StreamType.PROPOSAL, 0.0)
    assert validator.received(0, 1000, 0.0) is None


def test_slowloris_one_byte_every_three_seconds_is_cut() -> None:
    acct = PeerLimits(POLICY, STRANGER)
    acct.opened(0, StreamType.TX_SUBMIT, 0.0)
    got, breach_at = 0, None
    for step in range(1, 40):  # checks every 0.5 s, one byte every 3 s
        now = step * 0.5
        if step % 6 == 0:
            acct.received(0, 1, now)
            got += 1
        breach = acct.check(now)
        if breach is not None:
            breach_at = now
            assert breach.rule is Rule.RATE and breach.code is WireCode.TIMEOUT
            break
    first = next(s * 0.5 for s in range(1, 40) if (s // 6) < _owed(SMALL, s * 0.5))
    assert breach_at == first and breach_at < 3.0


def test_a_stream_at_the_minimum_rate_lives_until_its_deadline() -> None:
    limit = StreamLimit(10_000, min_rate=100.0, grace=2.0, deadline=20.0)
    acct = PeerLimits(LimitPolicy({StreamType.TX_SUBMIT: limit}, peer_budget=1 << 20), STRANGER)
    acct.opened(0, StreamType.TX_SUBMIT, 0.0)
    for step in range(1, 41):
        now = step * 0.5
        acct.received(0, 50, now)  # 100 B/s from the start: always ahead of what it owes
        assert acct.check(now) is None
    breach = acct.check(20.5)
    assert breach is not None and breach.rule is Rule.DEADLINE


def test_a_type_without_a_row_is_not_bounded_here() -> None:
    acct = PeerLimits(POLICY, STRANGER)
    assert acct.opened(0, StreamType.DHT_RPC, 0.0) is None
    assert acct.received(0, 1 << 30, 0.0) is None
    assert acct.check(1e6) is None and acct.held == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["open", "data", "end"]), st.integers(0, 3), st.integers(1, 9)),
        max_size=60,
    )
)
def test_held_is_always_the_sum_of_unfinished_streams_and_within_budget(
    ops: list[tuple[str, int, int]],
) -> None:
    acct = PeerLimits(POLICY, STRANGER)
    model: dict[int, int] = {}
    for op, k, n in ops:
        sid = 4 * k
        if op == "open":
            acct.opened(sid, StreamType.TX_SUBMIT, 0.0)
            model.setdefault(sid, 0)
        elif op == "data":
            breach = acct.received(sid, n, 0.0)
            if sid in model:
                over_size = model[sid] + n > SMALL.max_bytes
                over_budget = sum(model.values()) + n > POLICY.peer_budget
                assert (breach is not None) == (over_size or over_budget)
                if breach is None:
                    model[sid] += n
            else:
                assert breach is None
        else:
            acct.ended(sid)
            model.pop(sid, None)
        assert acct.held == sum(model.values()) <= POLICY.peer_budget


# ------------------------------------------------------------ enforced by a session


class _Keep:
    def __init__(self) -> None:
        self.data = bytearray()

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self.data += data
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        return NO_ACTIONS

    def on_terminated(self, end: End, code: int | None) -> None:
        return None


class _Factory:
    def __init__(self) -> None:
        self.made: list[_Keep] = []

    def __call__(self, info: StreamInfo) -> _Keep:
        self.made.append(_Keep())
        return self.made[-1]


def _session(peer: bytes, factory: _Factory, *, require_auth: bool = False) -> Session:
    handlers = {t: factory for t in (StreamType.TX_SUBMIT, StreamType.PROPOSAL)}
    return Session(
        is_client=False, handlers=handlers, peer=peer, require_auth=require_auth, limits=POLICY
    )


def _closes(session: Session) -> list[CloseConnection]:
    out = []
    while (cmd := session.next_command()) is not None:
        if isinstance(cmd, CloseConnection):
            out.append(cmd)
    return out


def test_session_refuses_a_non_validator_consensus_stream_before_any_handler() -> None:
    factory = _Factory()
    s = _session(STRANGER, factory)
    s.stream_data(2, bytes([StreamType.PROPOSAL]) + b"x" * 500, False, now=0.0)
    assert factory.made == [] and s.closed
    assert [c.code for c in _closes(s)] == [WireCode.STREAM_PROTOCOL_VIOLATION]
    assert s.breach is not None and s.breach.rule is Rule.PRIVILEGED


def test_session_byte_at_a_time_hands_the_handler_at_most_max_bytes() -> None:
    factory = _Factory()
    s = _session(STRANGER, factory)
    s.stream_data(0, bytes([StreamType.TX_SUBMIT]), False, now=0.0)  # bidi: id 0
    for _ in range(SMALL.max_bytes + 5):
        s.stream_data(0, b"a", False, now=0.0)
    assert bytes(factory.made[0].data) == b"a" * SMALL.max_bytes
    assert [c.code for c in _closes(s)] == [WireCode.BAD_LENGTH]


def test_session_judges_held_streams_when_the_hello_verifies() -> None:
    factory = _Factory()
    s = _session(b"", factory, require_auth=True)
    s.stream_data(2, bytes([StreamType.PROPOSAL]) + b"x" * 20, False, now=0.0)
    assert not s.closed  # held (within the stranger's budget) until the HELLO
    s._authenticate(STRANGER)
    assert s.closed and factory.made == []
    assert [c.code for c in _closes(s)] == [WireCode.STREAM_PROTOCOL_VIOLATION]


@pytest.mark.parametrize(("now", "closed"), [(2.05, False), (2.2, True)])
def test_session_check_closes_a_stalled_stream(now: float, closed: bool) -> None:
    factory = _Factory()
    s = _session(STRANGER, factory)
    s.stream_data(0, bytes([StreamType.TX_SUBMIT]) + b"abcdefgh", False, now=0.0)
    # 8 bytes received; owed 100 x (age - 2): fine at 2.05 s (5), not at 2.2 s (20)
    assert (_owed(SMALL, now) > 8) is closed
    breach = s.check_limits(now)
    assert s.closed is closed and (breach is not None) is closed
    if closed:
        assert [c.code for c in _closes(s)] == [WireCode.TIMEOUT]


def test_session_stream_ending_returns_its_budget() -> None:
    factory = _Factory()
    s = _session(STRANGER, factory)
    for sid in (0, 4):  # two finished streams of 10: 20 bytes in all, budget 25
        s.stream_data(sid, bytes([StreamType.TX_SUBMIT]) + b"x" * 10, True, now=0.0)
    s.stream_data(8, bytes([StreamType.TX_SUBMIT]) + b"x" * 10, False, now=0.0)
    s.stream_data(12, bytes([StreamType.TX_SUBMIT]) + b"x" * 10, False, now=0.0)
    assert not s.closed
    s.stream_data(16, bytes([StreamType.TX_SUBMIT]) + b"x" * 6, False, now=0.0)
    assert s.closed and [c.code for c in _closes(s)] == [WireCode.RATE_LIMITED]
