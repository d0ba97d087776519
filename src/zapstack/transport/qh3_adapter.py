"""qh3 binding of the asyncio driver (the production QUIC stack, with uvloop).

Contract
--------
Builds qh3 configurations (ALPN ``zap/1``, the node's self-signed certificate,
no CA verification -- the driver checks node ids -- and the version-pinned
stream-limit patch of :mod:`~zapstack.transport.patch`), and answers the
driver's questions from qh3 2.1.0's connection object:

* credit: ``_core.stream_limits[:2]`` is the peer's cumulative MAX_STREAMS
  (bidi, uni).  Sending on a stream past it raises ``ValueError`` in qh3; the
  session never does, it waits for credit.
* backlog: ``get_send_buffer_size(stream_id)`` (bytes not yet transmitted).
* flushed: qh3 exposes no per-stream ACK state, so "flushed" is the stricter
  connection-wide condition "nothing of this stream left to transmit and no
  packet in flight" (``_core.bytes_in_flight == 0``).  It implies this stream's
  bytes were acknowledged; under heavy load it may take longer (bounded by
  ``TransportConfig.op_timeout``).

The listening socket uses qh3's own UDP transport (the one its client side
uses: batched receive through quinn-udp, GSO batched send), not the event
loop's datagram endpoint, which reads and the library then answers one
datagram at a time (one ``sendto`` per packet).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import ssl
from collections.abc import Callable
from typing import Any

from zapstack.transport.driver import TransportConfig
from zapstack.transport.identity import ALPN, NodeIdentity
from zapstack.transport.inbound import host_of
from zapstack.transport.patch import patch_qh3, set_stream_limits

__all__ = ["Qh3Binding", "new_event_loop"]


def new_event_loop() -> Any:
    """A uvloop event loop (DECISIONS.md: qh3 runs with uvloop)."""
    import uvloop

    return uvloop.new_event_loop()


class Qh3Binding:
    """The driver's view of qh3 2.1.0."""

    name = "qh3"

    def __init__(self) -> None:
        patch_qh3()
        self._asyncio: Any = importlib.import_module("qh3.asyncio")
        self._quic_configuration: Any = importlib.import_module(
            "qh3.quic.configuration"
        ).QuicConfiguration
        self._transport: Any = importlib.import_module("qh3.asyncio._transport")
        self._server_class: Any = importlib.import_module("qh3.asyncio.server").QuicServer
        self.protocol_base: type = self._asyncio.QuicConnectionProtocol

    def configuration(
        self, *, is_client: bool, identity: NodeIdentity, config: TransportConfig
    ) -> Any:
        configuration = self._quic_configuration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            idle_timeout=config.idle_timeout,
            max_data=config.max_data,
            max_stream_data=config.max_stream_data,
            verify_mode=ssl.CERT_NONE,
        )
        configuration.load_cert_chain(identity.cert_pem(), identity.key_pem())
        set_stream_limits(configuration, uni=config.max_streams_uni, bidi=config.max_streams_bidi)
        return configuration

    async def serve(
        self, host: str, port: int, configuration: Any, create_protocol: Callable[..., Any]
    ) -> tuple[Any, int]:
        loop = asyncio.get_running_loop()
        sock = _bound_udp_socket(host, port)
        _, server = await self._transport.create_optimized_datagram_transport(
            loop,
            lambda: self._server_class(
                configuration=configuration, create_protocol=create_protocol
            ),
            sock=sock,
        )
        return server, int(sock.getsockname()[1])

    def connect(
        self, host: str, port: int, configuration: Any, create_protocol: Callable[..., Any]
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        cm: contextlib.AbstractAsyncContextManager[Any] = self._asyncio.connect(
            host, port, configuration=configuration, create_protocol=create_protocol
        )
        return cm

    def credit(self, quic: Any) -> tuple[int, int]:
        core = quic._core
        if core is None:
            return 0, 0
        bidi, uni = core.stream_limits[:2]
        return int(uni), int(bidi)

    def backlog(self, quic: Any, stream_id: int) -> int:
        return int(quic.get_send_buffer_size(stream_id))

    def flushed(self, quic: Any, stream_id: int) -> bool:
        core = quic._core
        return core is None or (
            quic.get_send_buffer_size(stream_id) == 0 and core.bytes_in_flight == 0
        )

    def peer_cert_der(self, quic: Any) -> bytes | None:
        cert = quic.get_peercert()
        return None if cert is None else bytes(cert.public_bytes())

    def odcid(self, quic: Any) -> bytes:
        return bytes(quic.original_destination_connection_id)

    def remote_host(self, quic: Any) -> str:
        addr = quic._remote_addr
        return host_of(addr) if addr else ""


def _bound_udp_socket(host: str, port: int) -> socket.socket:
    """A UDP socket bound to (host, port), of the family the host resolves to."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
