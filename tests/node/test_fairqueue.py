"""FairQueue: per-peer and total bounds, eviction of a hog's newest queued request, and
round-robin service; held equal to a small model written from the module's contract."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zapstack.node.fairqueue import Admission, FairQueue


def test_round_robin_one_peer_at_a_time() -> None:
    q: FairQueue[str] = FairQueue(per_peer=8, total=32)
    for i in range(5):
        assert q.admit(b"A", f"a{i}").taken
    assert q.admit(b"B", "b0").taken
    order = []
    while (item := q.next()) is not None:
        order.append(item[1])
    assert order == ["a0", "b0", "a1", "a2", "a3", "a4"]  # B's one waits for one of A's
    assert q.open() == 6 and q.open(b"A") == 5  # counted until done
    for _ in range(5):
        q.done(b"A")
    q.done(b"B")
    assert q.open() == 0 and q.open(b"A") == 0


def test_bounds_and_eviction() -> None:
    q: FairQueue[str] = FairQueue(per_peer=3, total=4)
    assert all(q.admit(b"A", f"a{i}").taken for i in range(3))
    assert not q.admit(b"A", "a3").taken  # per peer
    assert q.admit(b"B", "b0").taken  # total now 4
    # full: A holds 3 >= 0 + 2 and has queued ones: its newest makes room for C
    got = q.admit(b"C", "c0")
    assert got.taken and got.evicted == "a2" and q.open(b"A") == 2
    # full again: A holds 2, B 1, C 1; D holds 0 -> A (2 >= 2) gives way again
    got = q.admit(b"D", "d0")
    assert got.taken and got.evicted == "a1"
    # now everyone holds 1: nobody holds two more than B (1 + 2): refused
    assert not q.admit(b"B", "b1").taken
    assert [q.next() for _ in range(4)] == [(b"A", "a0"), (b"B", "b0"), (b"C", "c0"), (b"D", "d0")]
    q.done(b"C")
    assert q.admit(b"B", "b1").taken  # room again


def test_a_running_request_is_never_evicted() -> None:
    q: FairQueue[str] = FairQueue(per_peer=4, total=2)
    assert q.admit(b"A", "a0").taken and q.admit(b"A", "a1").taken
    assert q.next() == (b"A", "a0")
    assert q.next() == (b"A", "a1")  # both running now, none queued
    assert not q.admit(b"B", "b0").taken  # A holds 2 but nothing of it can be evicted


def test_drain_forgets_the_queued_and_keeps_the_running_counted() -> None:
    q: FairQueue[str] = FairQueue(per_peer=4, total=8)
    for job in ("a0", "a1"):
        q.admit(b"A", job)
    q.admit(b"B", "b0")
    assert q.next() == (b"A", "a0")
    assert q.drain() == ["b0", "a1"]  # in turn order: A went to the back after a0
    assert q.open() == 1 and q.next() is None
    q.done(b"A")
    assert q.open() == 0


def test_many_identities_cannot_keep_a_validator_out() -> None:
    """Four identities, one request each, fill the queue: none holds two more than
    another, so an ordinary peer is refused, but a validator evicts one of them; and an
    ordinary peer never evicts a validator's request, however many the validator holds."""
    q: FairQueue[str] = FairQueue(per_peer=4, total=4, priority={b"V"})
    for bot in (b"b1", b"b2", b"b3", b"b4"):
        assert q.admit(bot, bot.decode()).taken
    assert q.admit(b"x", "x") == Admission(False)  # the fairness rule finds no one
    assert q.admit(b"V", "v0") == Admission(True, "b1")  # ties: the earliest in turn
    assert q.admit(b"V", "v1") == Admission(True, "b2")
    assert q.admit(b"V", "v2") == Admission(True, "b3")
    assert q.admit(b"b1", "b1'") == Admission(False)  # V holds 3 > 0 + 2: still kept
    assert q.next() == (b"b4", "b4") and q.next() == (b"V", "v0")
    q.done(b"b4")
    q.done(b"V")
    assert q.open(b"V") == 2 and q.open() == 2


class Model:
    """The contract, written out plainly: lists, counts, the rules as worded."""

    def __init__(self, per_peer: int, total: int, priority: frozenset[bytes] = frozenset()) -> None:
        self.per_peer, self.total, self.priority = per_peer, total, priority
        self.queued: list[tuple[bytes, int]] = []  # in arrival order
        self.running: list[bytes] = []
        self.turn: list[bytes] = []  # peers with queued requests, in turn order

    def held(self, peer: bytes) -> int:
        return sum(1 for p, _ in self.queued if p == peer) + self.running.count(peer)

    def admit(self, peer: bytes, job: int) -> tuple[bool, int | None]:
        if self.held(peer) >= self.per_peer:
            return False, None
        evicted = None
        if len(self.queued) + len(self.running) >= self.total:
            validator = peer in self.priority
            # the fairness rule; an ordinary asker never evicts a validator
            candidates = [
                p
                for p in self.turn
                if self.held(p) >= self.held(peer) + 2 and (validator or p not in self.priority)
            ]
            if not candidates and validator:  # a validator evicts any ordinary peer
                candidates = [p for p in self.turn if p not in self.priority]
            if not candidates:
                return False, None
            most = max(self.held(p) for p in candidates)
            victim = next(p for p in candidates if self.held(p) == most)
            evicted = [j for p, j in self.queued if p == victim][-1]
            self.queued.remove((victim, evicted))
            if not any(p == victim for p, _ in self.queued):
                self.turn.remove(victim)
        self.queued.append((peer, job))
        if peer not in self.turn:
            self.turn.append(peer)
        return True, evicted

    def next(self) -> tuple[bytes, int] | None:
        if not self.turn:
            return None
        peer = self.turn.pop(0)
        job = next(j for p, j in self.queued if p == peer)
        self.queued.remove((peer, job))
        if any(p == peer for p, _ in self.queued):
            self.turn.append(peer)
        self.running.append(peer)
        return peer, job

    def done(self, peer: bytes) -> None:
        self.running.remove(peer)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.sampled_from([b"A", b"B", b"C", b"D"])),
        st.tuples(st.just("next"), st.none()),
        st.tuples(st.just("done"), st.integers(0, 7)),
    ),
    max_size=80,
)


@given(
    st.integers(1, 4),
    st.integers(1, 8),
    OPS,
    st.frozensets(st.sampled_from([b"A", b"B", b"C", b"D"]), max_size=2),
)
def test_equals_the_model(
    per_peer: int, total: int, ops: list[tuple[str, object]], priority: frozenset[bytes]
) -> None:
    q: FairQueue[int] = FairQueue(per_peer, total, priority)
    model = Model(per_peer, total, priority)
    for n, (op, arg) in enumerate(ops):
        if op == "admit":
            assert isinstance(arg, bytes)
            got = q.admit(arg, n)
            assert (got.taken, got.evicted) == model.admit(arg, n)
        elif op == "next":
            assert q.next() == model.next()
        elif model.running:
            assert isinstance(arg, int)
            peer = model.running[arg % len(model.running)]
            model.done(peer)
            q.done(peer)
        assert q.open() == len(model.queued) + len(model.running) <= total
        for peer in (b"A", b"B", b"C", b"D"):
            assert q.open(peer) == model.held(peer) <= per_peer
