"""Request bookkeeping: readers by kind, exclusions with another round, the gap request."""

from __future__ import annotations

from zapstack.bootstrap.readers import ChunkReplyReader, RangeReplyReader
from zapstack.bootstrap.requests import ROUND_BACKOFF, ROUND_BACKOFF_MAX, RequestStreams
from zapstack.bootstrap.wire import MAX_RANGE
from zapstack.errors import WireCode
from zapstack.transport.streams import StreamType

SC, HR = StreamType.STATE_CHUNK, StreamType.HEADER_RANGE


def test_open_requests_get_the_reader_of_their_kind_and_a_deadline() -> None:
    reqs = RequestStreams(depth=4, stall_timeout=5.0)
    assert reqs.add_peer(b"a") and not reqs.add_peer(b"a")
    r1 = reqs.open(b"a", SC, 0, 4, 1.0, False)
    r2 = reqs.open(b"a", HR, 0, 1, 2.0, True)
    assert isinstance(reqs.get(r1).reader, ChunkReplyReader)  # type: ignore[union-attr]
    assert isinstance(reqs.get(r2).reader, RangeReplyReader)  # type: ignore[union-attr]
    assert reqs.deadlines() == [6.0, 7.0] and reqs.of_peer(b"a") == [r1, r2]
    assert reqs.listing(None) == {r1: (b"a", SC, 0, 4), r2: (b"a", HR, 0, 1)}
    assert reqs.load(b"a", SC) == 1 and reqs.free(SC, 0.0) == [] and not reqs.fetching_gaps()
    reqs.pop(r1)
    assert r1 not in reqs and reqs.free(SC, 0.0) == [b"a"]


def test_when_everyone_is_excluded_they_get_another_round() -> None:
    reqs = RequestStreams(depth=4, stall_timeout=5.0)
    for p in (b"a", b"b", b"c"):
        reqs.add_peer(p)
    reqs.peers[b"c"].gone = True
    reqs.peers[b"a"].excluded.add(SC)
    assert reqs.usable(SC, 0.0) == [b"b"]
    reqs.peers[b"b"].excluded.add(SC)
    assert reqs.usable(SC, 0.0) == [b"a", b"b"]  # the gone peer stays out
    assert not reqs.peers[b"a"].excluded and not reqs.peers[b"b"].excluded


def test_internal_on_several_state_chunks_halves_the_peers_batch_instead_of_excluding() -> None:
    reqs = RequestStreams(depth=4, stall_timeout=5.0)
    reqs.add_peer(b"a")
    peer = reqs.peers[b"a"]
    req = reqs.get(reqs.open(b"a", SC, 0, 8, 0.0, False))
    assert req is not None
    req.done = 1  # seven still owed
    reqs.refused(req, WireCode.INTERNAL)
    assert peer.state_batch == 3 and not peer.excluded
    for code, st, count in ((WireCode.INTERNAL, SC, 1), (WireCode.RATE_LIMITED, SC, 8)):
        one = reqs.get(reqs.open(b"a", st, 0, count, 0.0, False))
        assert one is not None
        reqs.refused(one, code)  # one chunk: it cannot serve that depth; other codes: out
        assert peer.excluded == {SC} and peer.state_batch == 3
        peer.excluded.clear()
    hr = reqs.get(reqs.open(b"a", HR, 0, 8, 0.0, False))
    assert hr is not None
    reqs.refused(hr, WireCode.INTERNAL)
    assert peer.excluded == {HR}


def test_the_gap_goes_to_the_least_loaded_peer_whose_head_covers_it() -> None:
    reqs = RequestStreams(depth=4, stall_timeout=5.0)
    for p in (b"a", b"b", b"c"):
        reqs.add_peer(p)
    reqs.peers[b"a"].head, reqs.peers[b"b"].head, reqs.peers[b"c"].head = 3, 900, 900
    reqs.open(b"b", HR, 0, 1, 0.0, True)

    def missing(upto: int) -> list[int]:
        return [h for h in range(11, upto + 1)]

    assert reqs.next_gap(10, missing, 0.0) == (b"c", 11, MAX_RANGE)
    reqs.open(b"c", HR, 11, MAX_RANGE, 0.0, False)
    assert reqs.fetching_gaps() and reqs.next_gap(10, missing, 0.0) is None
    assert RequestStreams(4, 5.0).next_gap(0, missing, 0.0) is None  # no peer, no head


def test_free_slots_fill_every_peers_first_before_anyones_second() -> None:
    reqs = RequestStreams(depth=4, stall_timeout=5.0)
    for p in (b"a", b"b", b"c"):
        reqs.add_peer(p)
    assert reqs.free(SC, 0.0, 2) == [b"a", b"b", b"c", b"a", b"b", b"c"]
    reqs.open(b"b", SC, 0, 4, 1.0, False)
    assert reqs.free(SC, 0.0, 2) == [b"a", b"c", b"a", b"b", b"c"]  # b's second slot is left
    reqs.open(b"b", SC, 4, 4, 1.0, False)
    reqs.open(b"a", HR, 0, 1, 1.0, True)  # another kind takes no state slot
    assert reqs.free(SC, 0.0, 2) == [b"a", b"c", b"a", b"c"]
    assert reqs.free(SC, 0.0, 1) == [b"a", b"c"] and reqs.free(SC, 0.0) == [b"a", b"c"]
    reqs.peers[b"c"].excluded.add(SC)
    assert reqs.free(SC, 0.0, 3) == [b"a", b"a", b"a", b"b"]


def test_rounds_after_the_first_wait_doubling_until_a_request_is_answered() -> None:
    reqs = RequestStreams(depth=4, stall_timeout=5.0)
    reqs.add_peer(b"a")
    peer = reqs.peers[b"a"]
    now, rounds, wait = 0.0, [], ROUND_BACKOFF
    peer.excluded.add(SC)
    assert reqs.usable(SC, now) == [b"a"] and not peer.excluded  # the first round: at once
    while now < 200:
        peer.excluded.add(SC)  # refused again
        assert reqs.usable(SC, now + 0.01) == []  # too early: nothing, and a timer is due
        (due,) = reqs.deadlines()
        assert due == now + wait
        assert reqs.usable(SC, due) == [b"a"]  # the round comes at that timer
        rounds.append(due - now)
        now, wait = due, min(ROUND_BACKOFF_MAX, 2 * wait)
        assert reqs.deadlines() == []  # no round waiting
    assert rounds[:4] == [0.5, 1.0, 2.0, 4.0] and set(rounds[6:]) == {ROUND_BACKOFF_MAX}
    peer.excluded.add(SC)
    reqs.usable(SC, now + 0.01)  # a round waits ...
    reqs.answered(SC)  # ... but a request of that kind was answered: the next one is at once
    assert reqs.usable(SC, now + 0.02) == [b"a"] and reqs.deadlines() == []
    peer.excluded.add(HR)
    assert reqs.usable(HR, now + 0.03) == [b"a"]  # each kind has its own rounds
