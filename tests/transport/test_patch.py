"""The version-pinned stream-limit patch: the peer really sees the configured limit."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import ConfigError, TransportError
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


def test_a_peer_closing_its_connection_is_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """qh3 reports every CONNECTION_CLOSE a peer sends at WARNING; patched, a peer's
    close (the ordinary end of a connection) is INFO.  Real connections over qh3."""

    async def main() -> None:
        binding = BINDINGS["qh3"]()
        listener = Endpoint(binding, NodeIdentity.generate(1), {})
        port = await listener.listen()
        dialer = Endpoint(binding, NodeIdentity.generate(2), {})
        peer = await dialer.dial("127.0.0.1", port, listener.identity.node_id)
        inbound = await listener.accept()
        await dialer.close()  # the dialer closes: the listener sees the peer's close
        await inbound.wait_closed(5.0)
        assert peer.closed.is_set() and inbound.close_info is not None
        await listener.close()

    with caplog.at_level(logging.DEBUG, logger="quic"):
        run_bounded(main(), 15)
    quic = [r for r in caplog.records if r.name == "quic"]
    assert [r.levelno for r in quic if r.getMessage().startswith("Native peer close")] == [
        logging.INFO
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_other_qh3_warnings_keep_their_level(caplog: pytest.LogCaptureFixture) -> None:
    patch.patch_qh3()
    qconn: Any = importlib.import_module("qh3.quic.connection")
    with caplog.at_level(logging.DEBUG, logger="quic"):
        qconn.logger.warning("Native protocol error: %r", ("protocol_error", 10, 0, "x"))
        qconn.logger.warning("Native peer close: %r", ("peer_closed", True, 0))
        qconn.logger.warning("Something new: %r", 1)
    assert [(r.levelno, r.getMessage()[:21]) for r in caplog.records] == [
        (logging.INFO, "Native protocol error"),
        (logging.INFO, "Native peer close: ('"),
        (logging.WARNING, "Something new: 1"),
    ]


@pytest.mark.parametrize("dialer_lib", sorted(BINDINGS))
def test_a_dial_before_the_listener_is_up_warns_nobody(
    dialer_lib: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A validator dials a peer that starts listening only after the dialer's first
    Initial was lost: the dialer's next Initial (a probe, or the CONNECTION_CLOSE of
    the dial that gave up) has no CRYPTO frame and the qh3 listener refuses it as a
    protocol error (INFO).  A qh3 redial connects.  An aioquic redial used to hit
    qh3's "packet builder capacity exhausted" (an unhandled traceback at ERROR); it
    is handled now, but that redial may still time out (a qh3/aioquic interop limit;
    the nodes run qh3): only the logs are asserted for it."""
    import socket

    async def main() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # free now; nobody listens yet
        target = NodeIdentity.generate(2)
        listener = Endpoint(BINDINGS["qh3"](), target, {})
        dialer = Endpoint(
            BINDINGS[dialer_lib](),
            NodeIdentity.generate(1),
            {},
            TransportConfig(handshake_timeout=1.0),
        )

        async def listen_late() -> None:
            await asyncio.sleep(0.8)  # after the first Initial, before the probe
            await listener.listen("127.0.0.1", port)

        late = asyncio.create_task(listen_late())
        with contextlib.suppress(TransportError):
            await dialer.dial("127.0.0.1", port, target.node_id)
        await late
        if dialer_lib == "qh3":
            await dialer.dial("127.0.0.1", port, target.node_id)  # the redial connects
        else:
            with contextlib.suppress(TransportError):
                await dialer.dial("127.0.0.1", port, target.node_id)
        await dialer.close()
        await listener.close()

    with caplog.at_level(logging.DEBUG):
        run_bounded(main(), 20)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


class _FakeCore:
    def __init__(self, script: list[Any]) -> None:
        self.script = script

    def poll_transmit(self, now: float) -> Any:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def test_qh3_budget_exhausted_ends_the_round_instead_of_raising() -> None:
    patch.patch_qh3()
    qconn: Any = importlib.import_module("qh3.quic.connection")
    send = qconn.QuicConnection.datagrams_to_send
    addr = ("127.0.0.1", 1)

    def fake(script: list[Any]) -> Any:
        conn = object.__new__(qconn.QuicConnection)
        conn._core = _FakeCore(script)
        conn._call_core = lambda op, *args: op(*args)  # the library re-raises as below
        conn._log_datagram = conn._log_packets = lambda *args: None
        return conn

    def exhausted() -> Exception:
        return qconn.QuicConnectionError(1, None, "packet builder capacity exhausted")

    assert send(fake([(b"a", addr), (b"b", addr), exhausted()]), 0.0) == []  # lost; resent
    assert send(fake([exhausted()]), 0.0) == []
    assert send(fake([(b"a", addr), None]), 0.0) == [(b"a", addr)]
    with pytest.raises(qconn.QuicConnectionError):  # any other error still raises
        send(fake([(b"a", addr), qconn.QuicConnectionError(1, None, "other")]), 0.0)


def test_qh3_parses_sent_packets_only_for_a_quic_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a QUIC event logger no sent packet's header is parsed; with one, as before."""
    patch.patch_qh3()
    qconn: Any = importlib.import_module("qh3.quic.connection")
    parsed: list[int] = []

    def pull(data: bytes, offset: int, cid_length: int) -> Any:
        parsed.append(offset)
        raise ValueError("not a packet")  # the library's loop stops at the first

    monkeypatch.setattr(qconn, "_pull_quic_header", pull)
    conn = object.__new__(qconn.QuicConnection)
    conn._configuration = type("C", (), {"connection_id_length": 8})()
    conn._quic_logger = None
    conn._log_packets("packet_sent", b"\x40" * 40)
    assert parsed == []
    conn._quic_logger = object()
    conn._log_packets("packet_sent", b"\x40" * 40)
    assert parsed == [0]
