"""The one error root of zapstack, and the wire-code table.

Contract
--------
* Every error zapstack raises on purpose is a :class:`ZapError`.  Anything
  else escaping a public call is a bug.
* Blame is explicit (the h11 / trio discipline):

  - :class:`LocalProtocolError`   -- *we* (the caller of this API) broke a rule.
  - :class:`RemoteProtocolError`  -- the *peer* sent bytes that break the
    format; it carries the :class:`WireCode` to reset the stream with, the
    pipeline stage that caught it and the byte offset that proved it.
  - :class:`InvalidTx` / :class:`InvalidBlock` / :class:`InvalidCert` --
    expected-invalid *content* (a bad signature, a nonce gap, a cert below
    threshold).  Not bugs; they carry the wire code and a reason.
  - :class:`ConfigError` -- genesis / policy / CLI input rejected at launch.
  - :class:`StoreError` (recoverable: conflict, closed, stale branch) and
    :class:`FatalStoreError` (I/O failure: the node must halt at its last
    committed block).
  - :class:`TransportError` -- a connection-level failure (the whole
    connection to one peer is gone; streams of other peers are untouched).

* Application wire codes are one table (:class:`WireCode`).  The transport
  maps them 1:1 onto QUIC ``RESET_STREAM`` / ``STOP_SENDING`` application
  error codes; there is no other error envelope on the wire.
"""

from __future__ import annotations

import enum

__all__ = [
    "ConfigError",
    "ConflictError",
    "FatalStoreError",
    "InvalidBlock",
    "InvalidCert",
    "InvalidTx",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Stage",
    "StoreError",
    "TransportError",
    "WireCode",
    "ZapError",
]


class WireCode(enum.IntEnum):
    """Application error codes carried by QUIC RESET_STREAM / STOP_SENDING.

    ``docs/formats/streams.md`` lists the same table; a test keeps them equal.
    """

    NO_ERROR = 0x00
    STREAM_PROTOCOL_VIOLATION = 0x01  # generic: the stream's bytes break its format
    CANCELLED = 0x02  # the request was cancelled by its own side
    TIMEOUT = 0x03  # the stream stalled past its deadline
    INTERNAL = 0x04  # the local node failed (never the peer's fault)
    UNKNOWN_STREAM_TYPE = 0x05
    # ZAP frame ingress (stages 1-4)
    BAD_MAGIC = 0x10
    UNKNOWN_KIND = 0x11
    BAD_VERSION = 0x12
    BAD_FLAGS = 0x13
    BAD_SCHEME = 0x14
    BAD_LENGTH = 0x15
    BAD_CHAIN = 0x16
    BAD_FIELD_COUNT = 0x17
    BAD_SIG_LENGTH = 0x18
    BAD_RESERVED = 0x19
    OFFSET_OVERRUN = 0x1A
    BAD_FIELD = 0x1B
    TRUNCATED = 0x1C
    TRAILING_DATA = 0x1D
    BAD_SIGNATURE = 0x1E
    # mempool (stage 5)
    DUPLICATE = 0x20
    FEE_TOO_LOW = 0x21
    MEMPOOL_FULL = 0x22
    NONCE_TOO_LOW = 0x23
    # execution / block / cert content
    INSUFFICIENT_BALANCE = 0x30
    BAD_NONCE = 0x31
    BAD_BLOCK = 0x32
    BAD_STATE_ROOT = 0x33
    BAD_CERT = 0x34
    NOT_FOUND = 0x35
    BAD_CHUNK = 0x36
    RATE_LIMITED = 0x37


class Stage(enum.IntEnum):
    """The tx receive pipeline's stages (LP-0202 §1); 0 = not in ingress."""

    NONE = 0
    MAGIC = 1
    SCHEMA = 2
    HEADER = 3
    BODY = 4
    MEMPOOL = 5


class ZapError(Exception):
    """Root of every deliberate zapstack error."""

    code: WireCode = WireCode.INTERNAL

    def __init__(self, message: str, *, code: WireCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class LocalProtocolError(ZapError):
    """The caller misused an API (wrong state, bad argument).  Our fault."""


class RemoteProtocolError(ZapError):
    """The peer's bytes break the format.  Reset the stream with ``code``.

    ``stage`` is the pipeline stage that caught it; ``offset`` the index of the
    byte that proved the input bad (or -1 when not byte-addressed).
    """

    code = WireCode.STREAM_PROTOCOL_VIOLATION

    def __init__(
        self,
        message: str,
        *,
        code: WireCode = WireCode.STREAM_PROTOCOL_VIOLATION,
        stage: Stage = Stage.NONE,
        offset: int = -1,
    ) -> None:
        super().__init__(message, code=code)
        self.stage = stage
        self.offset = offset


class InvalidTx(ZapError):
    """A well-formed tx whose content is invalid (signature, nonce, fee, balance)."""

    code = WireCode.STREAM_PROTOCOL_VIOLATION

    def __init__(self, message: str, *, code: WireCode, index: int = -1) -> None:
        super().__init__(message, code=code)
        self.index = index


class InvalidBlock(ZapError):
    """A block rejected as a whole (bad frame, failing order-dependent checks, root)."""

    code = WireCode.BAD_BLOCK

    def __init__(
        self, message: str, *, code: WireCode = WireCode.BAD_BLOCK, tx_index: int = -1
    ) -> None:
        super().__init__(message, code=code)
        self.tx_index = tx_index


class InvalidCert(ZapError):
    """A QuasarCert (or one of its legs) that does not verify."""

    code = WireCode.BAD_CERT

    def __init__(self, message: str, *, leg: str = "") -> None:
        super().__init__(message, code=WireCode.BAD_CERT)
        self.leg = leg


class ConfigError(ZapError):
    """Genesis, CertPolicy or command-line input rejected at launch."""


class StoreError(ZapError):
    """A recoverable ZapDB condition (closed txn, stale branch, missing key)."""


class ConflictError(StoreError):
    """A branch or txn cannot commit: its base is no longer the head."""


class FatalStoreError(StoreError):
    """Durable storage failed (I/O error, disk full).  The node must halt."""


class TransportError(ZapError):
    """The connection to one peer failed as a whole."""
