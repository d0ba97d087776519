"""The version-pinned stream-limit patch: the peer really sees the configured limit."""

from __future__ import annotations

import importlib
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import ConfigError
from zapstack.transport import patch
from zapstack.transport.bindings import BINDINGS, run_bounded
from zapstack.transport.driver import Endpoint, TransportConfig
from zapstack.transport.identity import NodeIdentity

ROOT = Path(__file__).resolve().parents[2]


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
    patch.patch_qh3()
    patch.patch_qh3()  # idempotent
    patch.patch_aioquic()
    patch.patch_aioquic()


PATCHED = {
    "qh3": [
        ("qh3.quic.connection", "QuicConnectionCore"),
        ("qh3.quic.tls_bridge", "QuicTransportParameters"),
        ("qh3.quic.connection", "QuicConnection._create_core"),
        ("qh3.quic.tls_bridge", "QuicTlsBridge.serialize_transport_parameters"),
    ],
    "aioquic": [("aioquic.quic.connection", "QuicConnection.__init__")],
}
"""What each patch replaces (module, dotted name): a refusal must leave them alone."""


def resolve(module: str, dotted: str) -> Any:
    obj: Any = importlib.import_module(module)
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return obj


@pytest.mark.parametrize(
    ("lib", "apply", "pinned"),
    [
        ("qh3", patch.patch_qh3, patch.QH3_VERSION),
        ("aioquic", patch.patch_aioquic, patch.AIOQUIC_VERSION),
    ],
)
@pytest.mark.parametrize("installed", ["2.1.1", "1.7.3", "0.0.0", "unknown"])
def test_other_version_is_refused_before_patching(
    monkeypatch: pytest.MonkeyPatch, lib: str, apply: Any, pinned: str, installed: str
) -> None:
    module = importlib.import_module(lib)
    monkeypatch.setattr(module, "__version__", installed)
    monkeypatch.setattr(patch, "_patched", set())  # as in a fresh process
    before = {(mod, name): resolve(mod, name) for mod, name in PATCHED[lib]}
    with pytest.raises(ConfigError) as err:
        apply()
    message = str(err.value)
    assert "\n" not in message
    assert f"{lib} {installed} is installed" in message
    assert f"supports only {lib} {pinned}" in message
    assert patch._patched == set()
    for (mod, name), value in before.items():
        assert resolve(mod, name) is value


def test_pinned_versions_match_pyproject_and_the_installed_ones() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = dict(dep.split("==") for dep in project["project"]["dependencies"])
    assert pins["qh3"] == patch.QH3_VERSION == metadata.version("qh3")
    assert pins["aioquic"] == patch.AIOQUIC_VERSION == metadata.version("aioquic")


def test_limits_validated() -> None:
    class Cfg:
        pass

    cfg = Cfg()
    assert patch.stream_limits_of(cfg) is None
    with pytest.raises(ConfigError):
        patch.set_stream_limits(cfg, uni=0, bidi=1)
    patch.set_stream_limits(cfg, uni=64, bidi=3)
    assert patch.stream_limits_of(cfg) == (3, 64)
