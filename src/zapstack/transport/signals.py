"""Stream-level QUIC conditions and what the consumer does about each (LP-0202), as data.

LP-0202's error table ("QUIC stream isolation invariants") maps every
stream-level condition a QUIC library reports (:class:`QuicSignal`) to one
consumer action (:class:`ConsumerAction`): :data:`CONSUMER_ACTIONS`.  The
session dispatches through this table and nothing else, and every action
touches only the one stream it names -- except ``CLOSE_CONNECTION``, whose
scope is the connection.  A test keeps the table equal to the spec's.  Values
only; no IO.
"""

from __future__ import annotations

import enum

__all__ = ["CONSUMER_ACTIONS", "FLOW_CONTROL_ERROR", "ConsumerAction", "QuicSignal"]

FLOW_CONTROL_ERROR = 0x03
"""The QUIC transport error code FLOW_CONTROL_ERROR (RFC 9000 §20.1)."""


class QuicSignal(enum.Enum):
    """Stream-level conditions a QUIC library reports (LP-0202 error table)."""

    STREAM_DATA_BLOCKED = "STREAM_DATA_BLOCKED"
    RESET_STREAM = "RESET_STREAM"
    STOP_SENDING = "STOP_SENDING"
    FLOW_CONTROL_ERROR = "FLOW_CONTROL_ERROR"
    STREAM_LIMIT_ERROR = "STREAM_LIMIT_ERROR"


class ConsumerAction(enum.Enum):
    """What the consumer does about a :class:`QuicSignal`."""

    BACK_OFF = "back off; let the flow-control window open"
    DROP_PARTIAL = "drop the partial buffer; request streams: mark peer down for it"
    STOP_AND_CANCEL = "stop transmitting; treat the request as cancelled by the peer"
    CLOSE_CONNECTION = "bug: close the connection"
    WAIT_FOR_CREDIT = "back off: queue the open until the peer grants stream credit"


CONSUMER_ACTIONS: dict[QuicSignal, ConsumerAction] = {
    QuicSignal.STREAM_DATA_BLOCKED: ConsumerAction.BACK_OFF,
    QuicSignal.RESET_STREAM: ConsumerAction.DROP_PARTIAL,
    QuicSignal.STOP_SENDING: ConsumerAction.STOP_AND_CANCEL,
    QuicSignal.FLOW_CONTROL_ERROR: ConsumerAction.CLOSE_CONNECTION,
    QuicSignal.STREAM_LIMIT_ERROR: ConsumerAction.WAIT_FOR_CREDIT,
}
"""LP-0202's consumer-action table, as data.  The session dispatches through it."""
