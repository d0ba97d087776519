"""aioquic binding of the asyncio driver (the independent second QUIC stack).

Contract
--------
Same shape as :mod:`~zapstack.transport.qh3_adapter`, over aioquic 1.7.2:

* credit: ``_remote_max_streams_uni`` / ``_remote_max_streams_bidi``.
  aioquic raises MAX_STREAMS lazily (the update rides on the next packet it
  sends), which is why a session waiting for credit asks for a PING.
* backlog: bytes written but not yet sent (``sender._buffer_stop`` minus the
  first pending offset).
* flushed: every byte written has been acknowledged
  (``sender._buffer_start == sender._buffer_stop``: aioquic drops acked bytes
  from the front of its buffer).
"""

from __future__ import annotations

import contextlib
import importlib
import ssl
from collections.abc import Callable
from typing import Any

from zapstack.transport.driver import TransportConfig
from zapstack.transport.identity import ALPN, NodeIdentity
from zapstack.transport.inbound import host_of
from zapstack.transport.patch import patch_aioquic, set_stream_limits

__all__ = ["AioquicBinding"]


class AioquicBinding:
    """The driver's view of aioquic 1.7.2."""

    name = "aioquic"

    def __init__(self) -> None:
        patch_aioquic()
        self._asyncio: Any = importlib.import_module("aioquic.asyncio")
        self._quic_configuration: Any = importlib.import_module(
            "aioquic.quic.configuration"
        ).QuicConfiguration
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
        configuration.certificate = identity.certificate
        configuration.private_key = identity.key
        set_stream_limits(configuration, uni=config.max_streams_uni, bidi=config.max_streams_bidi)
        return configuration

    async def serve(
        self, host: str, port: int, configuration: Any, create_protocol: Callable[..., Any]
    ) -> tuple[Any, int]:
        server = await self._asyncio.serve(
            host, port, configuration=configuration, create_protocol=create_protocol
        )
        return server, int(server._transport.get_extra_info("sockname")[1])

    def connect(
        self, host: str, port: int, configuration: Any, create_protocol: Callable[..., Any]
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        cm: contextlib.AbstractAsyncContextManager[Any] = self._asyncio.connect(
            host, port, configuration=configuration, create_protocol=create_protocol
        )
        return cm

    def credit(self, quic: Any) -> tuple[int, int]:
        return int(quic._remote_max_streams_uni), int(quic._remote_max_streams_bidi)

    def backlog(self, quic: Any, stream_id: int) -> int:
        stream = quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender.next_offset)

    def flushed(self, quic: Any, stream_id: int) -> bool:
        stream = quic._streams.get(stream_id)
        if stream is None:
            return True
        sender = stream.sender
        return bool(sender._buffer_start == sender._buffer_stop)

    def peer_cert_der(self, quic: Any) -> bytes | None:
        from cryptography.hazmat.primitives import serialization

        cert = quic.tls._peer_certificate if quic.tls is not None else None
        return None if cert is None else bytes(cert.public_bytes(serialization.Encoding.DER))

    def odcid(self, quic: Any) -> bytes:
        return bytes(quic.original_destination_connection_id)

    def remote_host(self, quic: Any) -> str:
        paths = quic._network_paths
        return host_of(paths[0].addr) if paths else ""
