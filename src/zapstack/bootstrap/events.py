"""Values exchanged with the bootstrap client: commands down, events up.

Commands go to the link that owns the peer connections (open a request
stream, cancel one, stop reading a push stream).  Events are reports for the
node, tests and metrics.  All frozen and slotted.
"""

from __future__ import annotations

from dataclasses import dataclass

from zapstack.transport.streams import StreamType

__all__ = [
    "BlockApplied",
    "CancelRequest",
    "Command",
    "Event",
    "HeadSeen",
    "OpenRequest",
    "PeerBlamed",
    "StateProgress",
    "StateSynced",
    "StopPush",
    "StreamStalled",
    "TargetChosen",
    "TxGossiped",
    "VoteReceived",
]


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Open a bidirectional ``stream_type`` stream to ``peer``, write ``data``, FIN."""

    req_id: int
    """Correlates the reply (``response_data`` / ``response_end`` / ``response_reset``)."""
    peer: bytes
    """Peer to ask."""
    stream_type: StreamType
    """STATE_CHUNK or HEADER_RANGE."""
    data: bytes
    """Request bytes (after the type byte)."""


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Reset our side of request ``req_id`` and stop reading its reply with ``code``."""

    req_id: int
    """The abandoned request."""
    peer: bytes
    """Its peer."""
    code: int
    """TIMEOUT (stalled), CANCELLED, or the blame code."""


@dataclass(frozen=True, slots=True)
class StopPush:
    """STOP_SENDING(``code``) on the push stream ``stream_id`` that ``peer`` opened."""

    peer: bytes
    """The pushing peer."""
    stream_id: int
    """Transport stream id of the push."""
    code: int
    """TIMEOUT (stalled push) or the parse error's code."""


Command = OpenRequest | CancelRequest | StopPush


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class HeadSeen:
    """A peer reported its finalized head height."""

    peer: bytes
    """Reporting peer."""
    height: int
    """Its head."""


@dataclass(frozen=True, slots=True)
class TargetChosen:
    """The finalized block whose post-state is downloaded."""

    height: int
    """Its height."""
    block_id: bytes
    """sha256 of its bytes."""
    state_root: bytes
    """The header's state root: every chunk is verified against it."""


@dataclass(frozen=True, slots=True)
class StateSynced:
    """Every chunk verified and written; the committed root equals the target's."""

    height: int
    """Target height (the node's head now)."""
    root: bytes
    """Committed state root (== TargetChosen.state_root)."""
    chunks: int
    """Chunks verified."""
    entries: int
    """Key/value entries written."""


@dataclass(frozen=True, slots=True)
class StateProgress:
    """How far the state download is (a value the client is asked for, not an event)."""

    chunks: int
    """Chunks verified and written (each index once)."""
    total: int
    """Chunks to download; 0 while no depth is chosen (no target yet, or the probe runs)."""
    entries: int
    """Key/value entries written from them."""


NO_PROGRESS = StateProgress(0, 0, 0)
"""Before the download starts."""


@dataclass(frozen=True, slots=True)
class BlockApplied:
    """A live block was applied on top of the synced state."""

    height: int
    """Its height."""
    block_id: bytes
    """Its id."""
    state_root: bytes
    """Post-state root after applying it."""


@dataclass(frozen=True, slots=True)
class StreamStalled:
    """A request stream made no progress before its deadline and was cancelled (TIMEOUT)."""

    peer: bytes
    """The slow peer (excluded from that stream kind; its other streams survive)."""
    stream_type: StreamType
    """STATE_CHUNK or HEADER_RANGE."""
    req_id: int
    """The cancelled request."""


@dataclass(frozen=True, slots=True)
class PeerBlamed:
    """A peer sent bytes that break the format or fail verification; it is dropped."""

    peer: bytes
    """The offender."""
    code: int
    """The wire code its streams were reset with."""
    reason: str
    """Human-readable cause."""


@dataclass(frozen=True, slots=True)
class VoteReceived:
    """One record from a peer's VOTE stream."""

    peer: bytes
    """Sender."""
    stream_id: int
    """The VOTE stream it came on (one long-lived stream per subscription)."""
    record: bytes
    """Vote record bytes (consensus owns their content)."""


@dataclass(frozen=True, slots=True)
class TxGossiped:
    """One tx frame from a MEMPOOL_GOSSIP batch (for the node's mempool)."""

    peer: bytes
    """Sender."""
    tx: bytes
    """Tx ZAP frame bytes (delimited, not yet validated)."""


Event = (
    HeadSeen
    | TargetChosen
    | StateSynced
    | BlockApplied
    | StreamStalled
    | PeerBlamed
    | VoteReceived
    | TxGossiped
)
