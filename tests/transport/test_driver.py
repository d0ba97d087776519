"""The asyncio driver over real QUIC on 127.0.0.1, for qh3 and aioquic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zapstack.errors import TransportError, WireCode
from zapstack.transport import peer as peermod
from zapstack.transport.bindings import run_bounded
from zapstack.transport.driver import Binding, Endpoint, TransportConfig
from zapstack.transport.identity import NodeIdentity
from zapstack.transport.limits import LimitPolicy

from .conftest import setup, teardown


def test_wrong_listener_identity_is_refused(binding: Binding) -> None:
    async def main() -> None:
        listener = Endpoint(binding, NodeIdentity.generate(7), {}, TransportConfig())
        port = await listener.listen()
        dialer = Endpoint(binding, NodeIdentity.generate(8), {}, TransportConfig())
        with pytest.raises(TransportError):
            await dialer.dial("127.0.0.1", port, NodeIdentity.generate(9).node_id)
        await dialer.close()
        await listener.close()

    run_bounded(main(), 15)


def test_transmit_retries_after_a_library_value_error() -> None:
    """qh3 2.1.0 sometimes raises from its packet builder; the driver re-arms."""
    import asyncio

    from zapstack.transport import driver

    class FlakyBase:
        def __init__(self) -> None:
            self.calls = 0

        def transmit(self) -> None:
            self.calls += 1
            if self.calls <= 2:
                raise ValueError("reserved stream is missing")

    proto = driver.make_protocol_class(FlakyBase)()

    async def main() -> None:
        proto.transmit()
        await asyncio.sleep(0.1)

    asyncio.run(main())
    assert proto.calls == 3  # failed twice, re-armed, then succeeded and stopped
    assert proto._zap_transmit_failures == 0


def _rmem_max() -> int:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return int(f.read())
    except OSError:
        return 0


def test_udp_receive_buffer_is_grown_on_both_ends(binding: Binding) -> None:
    """Bulk aioquic transfers on a loaded box lost bursts to the ~208 KiB
    default SO_RCVBUF (RcvbufErrors); both ends of a connection now ask for
    ``udp_recv_buffer`` (the kernel caps it at net.core.rmem_max)."""
    import socket

    want = 4 << 20

    async def main() -> tuple[int, int]:
        _, listener, dialers, peers, inbound = await setup(binding, 1, udp_recv_buffer=want)
        sizes = tuple(
            p.protocol._transport.get_extra_info("socket").getsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF
            )
            for p in (peers[0], next(iter(inbound.values())))
        )
        await teardown(listener, dialers)
        return sizes  # type: ignore[return-value]

    dialer_size, listener_size = run_bounded(main(), 15)
    cap = _rmem_max()
    if cap == 0:  # pragma: no cover - not Linux
        pytest.skip("no /proc/sys/net/core/rmem_max: the kernel's grant rule is unknown")
    # Linux grants min(asked, rmem_max) and reports twice that; on a default kernel
    # (rmem_max 212992) that is still twice the 212992 a fresh socket reports
    granted = 2 * min(want, cap)
    assert dialer_size == granted
    assert listener_size == granted


def test_grow_recv_buffer_is_idempotent_and_never_raises() -> None:
    import socket

    from zapstack.transport.driver import grow_recv_buffer

    class Transport:
        def __init__(self, sock: Any) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> Any:
            return self.sock if name == "socket" else None

    assert grow_recv_buffer(None, 1 << 20) == 0
    assert grow_recv_buffer(Transport(None), 1 << 20) == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        first = grow_recv_buffer(Transport(sock), 1 << 20)
        assert first == grow_recv_buffer(Transport(sock), 1 << 20)
        assert first >= before
        # never shrinks a buffer that is already larger
        assert grow_recv_buffer(Transport(sock), 1024) == first


def test_a_transmit_that_drains_the_backlog_wakes_backed_off_writers() -> None:
    """Back-off waits used to be re-checked only when a datagram or timer
    arrived (before the transmit that drains the backlog); now a successful
    transmit re-checks them too."""
    from zapstack.transport import driver

    state = {"backlog": 2 << 20}

    class DrainingBase:
        def transmit(self) -> None:
            state["backlog"] = 0

    class StubPeer:
        _wake_waiters = driver.Peer._wake_waiters

        def __init__(self) -> None:
            self._waiters: list[Any] = []

    async def main() -> tuple[bool, bool, int]:
        proto = driver.make_protocol_class(DrainingBase)()
        peer = StubPeer()
        proto.zap_peer = peer
        future = asyncio.get_running_loop().create_future()
        other = asyncio.get_running_loop().create_future()
        peer._waiters.append((lambda: state["backlog"] <= 1 << 18, future))
        peer._waiters.append((lambda: False, other))
        before = future.done()
        proto.transmit()
        return before, future.done(), len(peer._waiters)

    before, after, left = run_bounded(main(), 5)
    assert not before
    assert after
    assert left == 1  # the unsatisfied wait stays queued


def test_a_dial_that_gives_up_leaves_no_unretrieved_future(binding: Binding) -> None:
    """Issue 18: a dial to a silent port times out (TransportError to the caller); the
    library's shielded connected-waiter used to fail later with nobody reading it, and
    asyncio logged "Future exception was never retrieved" at ERROR in every node whose
    peer was not up yet."""
    import gc
    import socket

    reports: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: reports.append(ctx))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))  # bound, never answers
            port = silent.getsockname()[1]
            dialer = Endpoint(
                binding, NodeIdentity.generate(8), {}, TransportConfig(handshake_timeout=0.3)
            )
            for _ in range(2):
                with pytest.raises(TransportError):
                    await dialer.dial("127.0.0.1", port, NodeIdentity.generate(9).node_id)
            await dialer.close()  # the library fails the waiters now
        await asyncio.sleep(0.2)
        gc.collect()  # an unretrieved exception is reported when its future is collected
        await asyncio.sleep(0)

    run_bounded(main(), 15)
    assert [r.get("message") for r in reports] == []


def test_datagrams_read_in_one_loop_step_are_answered_by_one_transmit() -> None:
    """The libraries transmit after every datagram they are fed (one sendto per ACK or
    reply); the driver holds those and transmits once per loop step, after every
    datagram read in it and the replies they caused."""
    from zapstack.transport import driver

    sent: list[int] = []

    class Library:
        def __init__(self) -> None:
            self.received: list[bytes] = []

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.received.append(data)
            self.transmit()  # as qh3 and aioquic do

        def datagrams_received(self, data: list[bytes], addr: Any) -> None:
            self.received.extend(data)
            self.transmit()

        def transmit(self) -> None:
            sent.append(len(self.received))

    async def main() -> tuple[list[int], list[int]]:
        proto = driver.make_protocol_class(Library)()
        for i in range(5):
            proto.datagram_received(bytes([i]), ("127.0.0.1", 1))
        proto.datagrams_received([b"x", b"y"], ("127.0.0.1", 1))
        proto.transmit_soon()  # a reply queued in the same step joins the same flush
        during = list(sent)
        await asyncio.sleep(0)
        after_first = list(sent)
        proto.transmit()  # a direct transmit (close, timer) is never held
        return during, after_first

    during, after = run_bounded(main(), 5)
    assert during == []
    assert after == [7]  # one transmit, after all seven datagrams
    assert sent == [7, 7]


def test_a_transmit_raised_while_held_is_not_lost() -> None:
    """A datagram whose processing raises still gets its transmit (the hold is lifted)."""
    from zapstack.transport import driver

    sent: list[str] = []

    class Library:
        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transmit()
            raise RuntimeError("library bug")

        def transmit(self) -> None:
            sent.append("tx")

    async def main() -> None:
        proto = driver.make_protocol_class(Library)()
        with pytest.raises(RuntimeError):
            proto.datagram_received(b"x", ("127.0.0.1", 1))
        proto.transmit()
        assert sent == ["tx"]  # not held after the failure

    run_bounded(main(), 5)


def test_transmit_now_sends_while_held_and_keeps_the_hold() -> None:
    """A large reply's first packets may leave in the middle of a datagram's processing:
    transmit_now sends at once, and the rest of that datagram's transmits stay held."""
    from zapstack.transport import driver

    sent: list[str] = []

    class Library:
        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.transmit()  # held
            self.transmit_now()  # type: ignore[attr-defined]  # not held
            self.transmit()  # held again

        def transmit(self) -> None:
            sent.append("tx")

    async def main() -> list[str]:
        proto = driver.make_protocol_class(Library)()
        proto.datagram_received(b"x", ("127.0.0.1", 1))
        during = list(sent)
        await asyncio.sleep(0)
        return during

    during = run_bounded(main(), 5)
    assert during == ["tx"] and sent == ["tx", "tx"]  # the step's one flush follows


def test_inbound_connections_past_the_caps_are_closed(binding: Binding) -> None:
    """max_inbound_per_host 2 (all dialers are on 127.0.0.1), max_inbound 3: the third
    dialer from the host is closed with RATE_LIMITED once its HELLO verifies, a validator
    of the listener's policy gets in and takes no place, and a connection that ends makes
    room."""

    async def main() -> None:
        validator = NodeIdentity.generate(30)
        policy = LimitPolicy({}, peer_budget=1 << 20, validators=frozenset({validator.node_id}))
        cfg = TransportConfig(max_inbound=3, max_inbound_per_host=2)
        listener = Endpoint(binding, NodeIdentity.generate(7), {}, cfg, policy)
        port = await listener.listen()
        dialers = [Endpoint(binding, NodeIdentity.generate(20 + i), {}) for i in range(3)]
        peers = [await d.dial("127.0.0.1", port, listener.identity.node_id) for d in dialers]
        await peers[2].wait_closed(5)  # the third from 127.0.0.1: refused
        assert peers[2].close_info is not None and peers[2].close_info.code == WireCode.RATE_LIMITED
        await asyncio.sleep(0.1)
        assert listener.caps.refused == 1 and len(listener.caps.held) == 2
        assert not peers[0].session.closed and not peers[1].session.closed
        trusted = Endpoint(binding, validator, {})
        kept = await trusted.dial("127.0.0.1", port, listener.identity.node_id)
        await asyncio.sleep(0.1)
        assert not kept.session.closed and len(listener.caps.held) == 2  # takes no place
        await dialers[0].close()  # one ends: room for another
        for _ in range(50):
            if len(listener.caps.held) == 1:
                break
            await asyncio.sleep(0.05)
        again = Endpoint(binding, NodeIdentity.generate(40), {})
        fresh = await again.dial("127.0.0.1", port, listener.identity.node_id)
        await asyncio.sleep(0.1)
        assert not fresh.session.closed and listener.caps.refused == 1
        for endpoint in (*dialers[1:], trusted, again, listener):
            await endpoint.close()

    run_bounded(main(), 30)


def test_an_inbound_connection_without_hello_is_closed(
    binding: Binding, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dialer that completes the QUIC handshake and never sends its HELLO is closed by
    the listener handshake_timeout after it began (TIMEOUT), counted as rule "hello";
    a dialer that does send it stays."""

    async def main() -> None:
        cfg = TransportConfig(handshake_timeout=0.5)
        listener = Endpoint(binding, NodeIdentity.generate(7), {}, cfg)
        port = await listener.listen()
        honest = Endpoint(binding, NodeIdentity.generate(8), {}, cfg)
        kept = await honest.dial("127.0.0.1", port, listener.identity.node_id)
        with monkeypatch.context() as patch:  # this dialer sends no HELLO
            patch.setitem(peermod._EVENT_INPUTS, "HandshakeCompleted", lambda peer, event: None)
            silent = Endpoint(binding, NodeIdentity.generate(9), {}, cfg)
            with pytest.raises(TransportError):
                await silent.dial("127.0.0.1", port, listener.identity.node_id)
        for _ in range(40):
            if listener.breach_counts["hello"]:
                break
            await asyncio.sleep(0.05)
        assert listener.breach_counts["hello"] == 1
        await asyncio.sleep(0.6)
        assert not kept.session.closed and listener.breach_counts["hello"] == 1
        for endpoint in (honest, silent, listener):
            await endpoint.close()

    run_bounded(main(), 20)
