"""What a :class:`~zapstack.dht.chunks.ChunkPull` asks its driver to do, and how it ends.

The pull never does IO: it queues these frozen values and the adapter drains
them with ``next_action`` in order.  ``RequestHeader`` / ``RequestChunk`` open
a DHT stream ``(peer, index)`` and write ``data``; ``CancelRequest`` resets one;
``PullComplete`` and ``Stalled`` report the outcome.  Values only, safe to
share with any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from zapstack.errors import WireCode

__all__ = [
    "HEADER_REQ",
    "Action",
    "CancelRequest",
    "PullComplete",
    "RequestChunk",
    "RequestHeader",
    "Stalled",
]

HEADER_REQ = -1
"""The request index that denotes the GET_HEADER request of a provider."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """Open a DHT stream to ``peer`` and write ``data`` (a GET_HEADER)."""

    peer: str
    """Provider to ask."""
    data: bytes
    """Encoded GET_HEADER message."""


@dataclass(frozen=True, slots=True)
class RequestChunk:
    """Open a DHT stream to ``peer`` and write ``data`` (a GET_CHUNK)."""

    peer: str
    """Provider to ask."""
    index: int
    """Chunk index requested (the stream is identified by ``(peer, index)``)."""
    data: bytes
    """Encoded GET_CHUNK message."""


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """Reset our stream ``(peer, index)`` with ``code`` (index -1: the header)."""

    peer: str
    """Provider whose request is abandoned."""
    index: int
    """Chunk index, or HEADER_REQ."""
    code: WireCode
    """RESET_STREAM / STOP_SENDING application code."""


@dataclass(frozen=True, slots=True)
class PullComplete:
    """The block is reassembled and ``sha256(block) == block_id``."""

    block_id: bytes
    """The requested id."""
    block: bytes
    """The reassembled block bytes."""


@dataclass(frozen=True, slots=True)
class Stalled:
    """No progress is possible with the current providers."""

    missing: tuple[int, ...]
    """Chunk indices still missing (empty: the header itself is missing)."""
    reason: str
    """Human-readable cause."""


Action = RequestHeader | RequestChunk | CancelRequest | PullComplete | Stalled
