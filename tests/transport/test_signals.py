"""LP-0202's consumer-action table, as data, and the session's dispatch through it."""

from __future__ import annotations

from zapstack.transport.session import Session
from zapstack.transport.signals import CONSUMER_ACTIONS, ConsumerAction, QuicSignal


def test_consumer_action_table_is_the_spec_table() -> None:
    assert CONSUMER_ACTIONS == {
        QuicSignal.STREAM_DATA_BLOCKED: ConsumerAction.BACK_OFF,
        QuicSignal.RESET_STREAM: ConsumerAction.DROP_PARTIAL,
        QuicSignal.STOP_SENDING: ConsumerAction.STOP_AND_CANCEL,
        QuicSignal.FLOW_CONTROL_ERROR: ConsumerAction.CLOSE_CONNECTION,
        QuicSignal.STREAM_LIMIT_ERROR: ConsumerAction.WAIT_FOR_CREDIT,
    }
    # every action has an implementation in the session's dispatch
    session = Session(is_client=True, handlers={})
    assert set(session._actions) == set(ConsumerAction)
