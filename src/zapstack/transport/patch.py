"""Version-pinned patches: configurable per-connection stream limits; qh3's log levels.

Contract
--------
qh3 2.1.0 and aioquic 1.7.2 hard-code how many streams a peer may open
concurrently (qh3: 100 bidi / 103 uni, in two places -- the transport
parameters it advertises and the limits its native core enforces; aioquic:
128 / 128 in ``QuicConnection.__init__``).  zapstack needs 64 unidirectional
streams per peer by default (LP-0202 §1), configurable.

The limit travels on the ``QuicConfiguration`` object as two extra attributes,
``zap_max_streams_uni`` and ``zap_max_streams_bidi`` (see
:func:`set_stream_limits`).  A configuration without them keeps the library's
own numbers, so the patches change nothing for code that does not opt in.

Each patch checks the *exact* installed version (the package's
``__version__``) against the pin in ``pyproject.toml`` before it touches any
internal, and refuses on any other with a one-line
:class:`~zapstack.errors.ConfigError` naming the installed and the supported
version: private internals move between releases, and a silently ineffective
patch would advertise the wrong limit.  ``tests/transport/test_patch.py``
asserts that the peer really sees the configured ``initial_max_streams_uni``
and that another version is refused.  Applying a patch twice is a no-op.

qh3 2.1.0's ``datagrams_to_send`` raises when its core runs out of sending
budget mid-round, and the error escaped the datagram callback as an unhandled
traceback (:func:`_datagrams_within_budget` ends the round instead).

qh3 2.1.0 parses the header of every packet it sends, only to hand each to a QUIC
event logger (qlog) that, unless one is configured, drops it at once: 3.4% of a state
server's CPU in a profile of a sync.  :func:`_log_packets_if_logging` skips that walk
when the connection has no logger (with one, the library's own runs unchanged).

qh3 2.1.0 also reports *every* CONNECTION_CLOSE a peer sends at WARNING on
its ``quic`` logger ("Native peer close: ..."), the NO_ERROR close of a client
that is simply done included: an operator alerting on warnings would be paged
for each light client that leaves.  :func:`patch_qh3` gives that module a
logger whose ``warning`` looks the message up in :data:`QH3_LOG_LEVELS`
(a peer's close and a peer's packet refused as a protocol error: INFO; the
connection still ends through the usual ``ConnectionTerminated`` event); every
other record keeps its level.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
from typing import Any

from zapstack.errors import ConfigError

__all__ = [
    "AIOQUIC_VERSION",
    "QH3_BUDGET_EXHAUSTED",
    "QH3_LOG_LEVELS",
    "QH3_VERSION",
    "patch_aioquic",
    "patch_qh3",
    "set_stream_limits",
    "stream_limits_of",
]

QH3_VERSION = "2.1.0"
"""The only qh3 release whose internals :func:`patch_qh3` knows."""
AIOQUIC_VERSION = "1.7.2"
"""The only aioquic release whose internals :func:`patch_aioquic` knows."""

QH3_LOG_LEVELS: dict[str, int] = {
    "Native peer close: %r": logging.INFO,
    "Native protocol error: %r": logging.INFO,
}
"""qh3 2.1.0 ``quic`` logger warnings (their format string) that report a peer, and
the level they are logged at instead.  A peer's CONNECTION_CLOSE is how a connection
ordinarily ends.  A native protocol error is qh3 refusing a peer's packet (the
connection then ends with the error code, which its ``ConnectionTerminated`` event
carries): the peer's input, nothing an operator can act on.  It happens at every
devnet start: a validator that dials a peer not yet listening loses its first
Initial, its probe Initial carries no CRYPTO frame, the qh3 listener refuses that
("packet contains no CRYPTO frame") and the dialer redials.  Any other warning keeps
its level."""

_UNI_ATTR = "zap_max_streams_uni"
_BIDI_ATTR = "zap_max_streams_bidi"

# qh3.QuicConnectionCore positional indices of local_max_streams_{bidi,uni}
# (qh3/_hazmat.pyi, QuicConnectionCore.__init__, release 2.1.0).
_QH3_CORE_BIDI_INDEX = 21
_QH3_CORE_UNI_INDEX = 22

_limits: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "zap_stream_limits", default=None
)
_patched: set[str] = set()


def set_stream_limits(configuration: Any, *, uni: int, bidi: int) -> None:
    """Attach per-connection stream limits to a qh3/aioquic ``QuicConfiguration``."""
    if not (1 <= uni < 2**60 and 1 <= bidi < 2**60):
        raise ConfigError(f"stream limits must be positive, got uni={uni} bidi={bidi}")
    setattr(configuration, _UNI_ATTR, uni)
    setattr(configuration, _BIDI_ATTR, bidi)


def stream_limits_of(configuration: Any) -> tuple[int, int] | None:
    """``(bidi, uni)`` attached by :func:`set_stream_limits`, or ``None``."""
    uni = getattr(configuration, _UNI_ATTR, None)
    bidi = getattr(configuration, _BIDI_ATTR, None)
    if uni is None or bidi is None:
        return None
    return int(bidi), int(uni)


def _require(name: str, pinned: str) -> None:
    """Refuse unless the installed ``name`` is exactly ``pinned`` (read: ``name.__version__``)."""
    installed = getattr(importlib.import_module(name), "__version__", "unknown")
    if installed != pinned:
        raise ConfigError(
            f"{name} {installed} is installed, but zapstack.transport.patch supports only "
            f"{name} {pinned} (the pyproject pin): install {name}=={pinned}"
        )


class _LeveledLog:
    """A library's module logger whose ``warning`` is logged at :data:`QH3_LOG_LEVELS`."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self._logger.log(QH3_LOG_LEVELS.get(msg, logging.WARNING), msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


QH3_BUDGET_EXHAUSTED = "packet builder capacity exhausted"
"""What qh3 2.1.0's core raises from ``poll_transmit`` when the next packet does not
fit what it may send now (a listener's anti-amplification budget: 3x the bytes an
unvalidated client sent)."""


def _datagrams_within_budget(qconn: Any) -> Any:
    """qh3's ``QuicConnection.datagrams_to_send``, with a budget that ran out handled.

    The library lets :data:`QH3_BUDGET_EXHAUSTED` escape ``datagrams_to_send``, and
    from a datagram callback it reached the event loop as an unhandled traceback
    (seen with an aioquic client's handshake).  Here it ends the round with nothing
    to send (what the library built before it is lost to the error either way;
    QUIC's loss recovery resends it); the next datagram from the peer or the loss
    timer, re-armed as usual after the round, resumes.  Any other error is raised.
    """
    original = qconn.QuicConnection.datagrams_to_send

    def datagrams_to_send(self: Any, now: float) -> list[tuple[bytes, Any]]:
        try:
            return list(original(self, now))
        except qconn.QuicConnectionError as exc:
            if exc.reason_phrase != QH3_BUDGET_EXHAUSTED:
                raise
            return []

    return datagrams_to_send


def _log_packets_if_logging(qconn: Any) -> Any:
    """qh3's ``QuicConnection._log_packets``, a no-op without a QUIC event logger."""
    original = qconn.QuicConnection._log_packets

    def log_packets(self: Any, event: str, data: bytes) -> None:
        if self._quic_logger is not None:
            original(self, event, data)

    return log_packets


def patch_qh3() -> None:
    """Patch qh3: ``set_stream_limits`` values advertised *and* enforced; log levels."""
    if "qh3" in _patched:
        return
    _require("qh3", QH3_VERSION)
    qconn: Any = importlib.import_module("qh3.quic.connection")
    tls_bridge: Any = importlib.import_module("qh3.quic.tls_bridge")

    original_core = qconn.QuicConnectionCore
    original_params = tls_bridge.QuicTransportParameters
    original_create_core = qconn.QuicConnection._create_core
    original_serialize = tls_bridge.QuicTlsBridge.serialize_transport_parameters

    def core_factory(*args: Any) -> Any:
        limits = _limits.get()
        if limits is not None:
            patched = list(args)
            patched[_QH3_CORE_BIDI_INDEX], patched[_QH3_CORE_UNI_INDEX] = limits
            args = tuple(patched)
        return original_core(*args)

    def params_factory(**kwargs: Any) -> Any:
        limits = _limits.get()
        if limits is not None:
            kwargs["initial_max_streams_bidi"], kwargs["initial_max_streams_uni"] = limits
        return original_params(**kwargs)

    def create_core(self: Any, remote_addr: Any, initial_dcid: bytes, now: float) -> None:
        token = _limits.set(stream_limits_of(self._configuration))
        try:
            original_create_core(self, remote_addr, initial_dcid, now)
        finally:
            _limits.reset(token)

    def serialize(self: Any) -> bytes:
        token = _limits.set(stream_limits_of(self.configuration))
        try:
            return bytes(original_serialize(self))
        finally:
            _limits.reset(token)

    qconn.QuicConnectionCore = core_factory
    tls_bridge.QuicTransportParameters = params_factory
    qconn.QuicConnection._create_core = create_core
    tls_bridge.QuicTlsBridge.serialize_transport_parameters = serialize
    qconn.QuicConnection.datagrams_to_send = _datagrams_within_budget(qconn)
    qconn.QuicConnection._log_packets = _log_packets_if_logging(qconn)
    qconn.logger = _LeveledLog(qconn.logger)
    _patched.add("qh3")


def patch_aioquic() -> None:
    """Patch aioquic so ``set_stream_limits`` values are advertised and enforced."""
    if "aioquic" in _patched:
        return
    _require("aioquic", AIOQUIC_VERSION)
    aconn: Any = importlib.import_module("aioquic.quic.connection")
    original_init = aconn.QuicConnection.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        limits = stream_limits_of(self._configuration)
        if limits is not None:
            # Limit.sent starts equal to value: both must move, or MAX_STREAMS
            # updates up to the library default would never be sent.
            for limit, value in zip(
                (self._local_max_streams_bidi, self._local_max_streams_uni), limits, strict=True
            ):
                limit.value = limit.sent = value

    aconn.QuicConnection.__init__ = init
    _patched.add("aioquic")
