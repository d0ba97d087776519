"""The version-pinned stream-limit patch: the peer really sees the configured limit."""

from __future__ import annotations

from typing import Any

import pytest

from zapstack.errors import ConfigError
from zapstack.transport import patch
from zapstack.transport.bindings import BINDINGS, run_bounded
from zapstack.transport.driver import Endpoint, TransportConfig
from zapstack.transport.identity import NodeIdentity


def remote_max_streams(binding_name: str, peer: Any) -> tuple[int, int]:
    """(uni, bidi) stream limits the dialer learned from the listener's parameters."""
    if binding_name == "qh3":
        params = peer.protocol._quic._applied_transport_parameters
        seen = (params.initial_max_streams_uni, params.initial_max_streams_bidi)
        assert seen == peer.initial_credit
        return seen
    return tuple(peer.initial_credit)


@pytest.mark.parametrize("listener_lib", sorted(BINDINGS))
@pytest.mark.parametrize("dialer_lib", sorted(BINDINGS))
@pytest.mark.parametrize("limits", [(64, 64), (16, 8)])
def test_peer_sees_configured_limits(
    listener_lib: str, dialer_lib: str, limits: tuple[int, int]
) -> None:
    async def main() -> tuple[int, int]:
        cfg = TransportConfig(max_streams_uni=limits[0], max_streams_bidi=limits[1])
        listener = Endpoint(BINDINGS[listener_lib](), NodeIdentity.generate(1), {}, cfg)
        port = await listener.listen()
        dialer = Endpoint(BINDINGS[dialer_lib](), NodeIdentity.generate(2), {}, cfg)
        peer = await dialer.dial("127.0.0.1", port, listener.identity.node_id)
        seen = remote_max_streams(dialer_lib, peer)
        await dialer.close()
        await listener.close()
        return seen

    assert run_bounded(main(), 10) == limits


def test_default_is_64_uni() -> None:
    assert TransportConfig().max_streams_uni == 64


def test_exact_version_guard() -> None:
    with pytest.raises(ConfigError):
        patch._require("qh3", "2.1.1", patch.QH3_VERSION)
    patch.patch_qh3()
    patch.patch_qh3()  # idempotent
    patch.patch_aioquic()
    patch.patch_aioquic()


def test_limits_validated() -> None:
    class Cfg:
        pass

    cfg = Cfg()
    assert patch.stream_limits_of(cfg) is None
    with pytest.raises(ConfigError):
        patch.set_stream_limits(cfg, uni=0, bidi=1)
    patch.set_stream_limits(cfg, uni=64, bidi=3)
    assert patch.stream_limits_of(cfg) == (3, 64)
