"""The tier tracker: reference timeline, failures, deadline, fallback, invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.consensus.digest import LegId
from zapstack.consensus.policy import MODES, CertPolicy, Mode, Variant, meets, modes_of
from zapstack.consensus.tiers import (
    Action,
    EventKind,
    LegEvent,
    LegState,
    TierTracker,
    TierTransition,
    replay,
)
from zapstack.errors import LocalProtocolError

B, P, C, M = LegId.BLS, LegId.PULSAR, LegId.CORONA, LegId.MAGNETAR
A, F = EventKind.ARRIVED, EventKind.FAILED
REFERENCE = [LegEvent(B, 10, A), LegEvent(P, 15, A), LegEvent(C, 350, A), LegEvent(M, 400, A)]


def test_reference_timeline_hybrid() -> None:
    out = replay(CertPolicy(Mode.PQ_HEAVY, Variant.HYBRID, 800, None), REFERENCE)
    assert out.transitions == (
        TierTransition(10, Mode.PQ_OFF),
        TierTransition(15, Mode.PQ_FAST),
        TierTransition(350, Mode.PQ_STRICT),
        TierTransition(400, Mode.PQ_HEAVY),
    )
    assert {m: d.at_ms for m, d in out.decisions.items()} == {
        Mode.PQ_OFF: 10,
        Mode.PQ_FAST: 15,
        Mode.PQ_STRICT: 350,
        Mode.PQ_HEAVY: 400,
    }
    assert all(d.action is Action.FINALIZE for d in out.decisions.values())


def test_reference_timeline_pure_pq_ignores_bls() -> None:
    out = replay(CertPolicy(Mode.STRICT_PQ_HEAVY, Variant.PURE_PQ, 800, None), REFERENCE[1:])
    assert [(t.at_ms, t.tier) for t in out.transitions] == [
        (15, Mode.STRICT_PQ_FAST),
        (350, Mode.STRICT_PQ_STRICT),
        (400, Mode.STRICT_PQ_HEAVY),
    ]


def test_corona_failure_never_blocks_the_round() -> None:
    events = [LegEvent(B, 10, A), LegEvent(P, 15, A), LegEvent(C, 200, F), LegEvent(M, 400, A)]
    out = replay(CertPolicy(Mode.PQ_HEAVY, Variant.HYBRID, 800, Mode.PQ_FAST), events)
    assert out.transitions[-1] == TierTransition(15, Mode.PQ_FAST)
    assert out.legs[C] is LegState.FAILED and out.legs[M] is LegState.PRESENT
    assert out.decisions[Mode.PQ_FAST].action is Action.FINALIZE
    assert out.decisions[Mode.PQ_FAST].at_ms == 15
    assert out.final.action is Action.FALLBACK_FINALIZE
    assert (out.final.at_ms, out.final.tier) == (800, Mode.PQ_FAST)
    no_fb = replay(CertPolicy(Mode.PQ_HEAVY, Variant.HYBRID, 800, None), events)
    assert no_fb.final.action is Action.WAIT and no_fb.final.tier is None


def test_fallback_itself_unmet_means_wait() -> None:
    events = [LegEvent(B, 10, A), LegEvent(P, 15, F)]
    out = replay(CertPolicy(Mode.PQ_STRICT, Variant.HYBRID, 700, Mode.PQ_FAST), events)
    assert out.final.action is Action.WAIT
    assert out.decisions[Mode.PQ_OFF].action is Action.FINALIZE  # PQ-off is below the fallback


def test_deadline_inclusive_and_late_ignored() -> None:
    policy = CertPolicy(Mode.PQ_FAST, Variant.HYBRID, 30, None)
    assert replay(policy, [LegEvent(B, 5, A), LegEvent(P, 30, A)]).final.action is Action.FINALIZE
    late = replay(policy, [LegEvent(B, 5, A), LegEvent(P, 31, A)])
    assert late.final.action is Action.WAIT and late.legs[P] is LegState.PENDING


def test_first_event_of_a_leg_settles_it() -> None:
    tr = TierTracker(Variant.HYBRID, 0, 100)
    assert tr.on_event(LegEvent(B, 1, F)) is None
    assert tr.on_event(LegEvent(B, 2, A)) is None
    assert tr.tier is None and tr.leg_state(B) is LegState.FAILED
    tr2 = TierTracker(Variant.HYBRID, 0, 100)
    assert tr2.on_event(LegEvent(B, 1, A)) == TierTransition(1, Mode.PQ_OFF)
    assert tr2.on_event(LegEvent(B, 2, F)) is None
    assert tr2.on_event(LegEvent(B, 3, A)) is None
    assert tr2.leg_state(B) is LegState.PRESENT


def test_out_of_order_is_a_caller_bug() -> None:
    tr = TierTracker(Variant.HYBRID, 100, 50)
    with pytest.raises(LocalProtocolError):
        tr.on_event(LegEvent(B, 99, A))
    tr.on_event(LegEvent(B, 120, A))
    with pytest.raises(LocalProtocolError):
        tr.on_event(LegEvent(P, 110, A))


def test_pending_before_deadline_and_variant_check() -> None:
    tr = TierTracker(Variant.HYBRID, 0, 100)
    tr.on_event(LegEvent(B, 10, A))
    assert tr.decide(Mode.PQ_FAST, Mode.PQ_OFF, 50).action is Action.PENDING
    assert tr.decide(Mode.PQ_OFF, None, 50).action is Action.FINALIZE
    assert tr.decide(Mode.PQ_OFF, None, 9).action is Action.PENDING  # not yet at 9 ms
    with pytest.raises(LocalProtocolError):
        tr.decide(Mode.STRICT_PQ_FAST, None, 100)


_event = st.builds(
    LegEvent, st.sampled_from(list(LegId)), st.integers(0, 1000), st.sampled_from(list(EventKind))
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_event, max_size=10), variant=st.sampled_from(list(Variant)))
def test_invariants(events: list[LegEvent], variant: Variant) -> None:
    events.sort(key=lambda e: e.at_ms)
    mode = modes_of(variant)[-1]
    out = replay(CertPolicy(mode, variant, 800, None), events)
    ranks = [MODES[t.tier].rank for t in out.transitions]
    assert ranks == sorted(set(ranks))  # strictly rising
    times = [t.at_ms for t in out.transitions]
    assert times == sorted(times) and all(t <= 800 for t in times)
    for m, d in out.decisions.items():  # finalize iff the present legs satisfy the mode
        present = {leg for leg, s in out.legs.items() if s is LegState.PRESENT}
        assert (d.action is Action.FINALIZE) == (MODES[m].legs <= present)
        if d.action is Action.FINALIZE:
            assert d.at_ms is not None and meets(out.transitions[-1].tier, m)
