"""Node identities, certificates and the HELLO proof."""

from __future__ import annotations

import hashlib

import pytest

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.transport.events import Authenticate, Reject
from zapstack.transport.identity import (
    MAX_HELLO_BYTES,
    HelloHandler,
    NodeIdentity,
    encode_hello,
    node_id_of_cert_der,
    verify_hello,
)

ODCID = bytes(range(8))


def test_seeded_identity_is_deterministic_and_bound_to_key() -> None:
    a, b = NodeIdentity.generate(5), NodeIdentity.generate(5)
    assert a.node_id == b.node_id == hashlib.sha256(a.spki).digest()
    assert NodeIdentity.generate(6).node_id != a.node_id
    from cryptography.hazmat.primitives import serialization

    der = a.certificate.public_bytes(serialization.Encoding.DER)
    assert node_id_of_cert_der(der) == a.node_id


def test_hello_roundtrip_whole_and_byte_at_a_time() -> None:
    dialer, listener = NodeIdentity.generate(1), NodeIdentity.generate(2)
    payload = encode_hello(dialer, listener.node_id, ODCID)
    assert verify_hello(payload, listener.node_id, ODCID) == dialer.node_id
    for step in (len(payload), 1):
        handler = HelloHandler(listener.node_id, ODCID)
        for i in range(0, len(payload), step):
            assert handler.on_data(payload[i : i + step]) == ()
        assert handler.on_end() == (Authenticate(dialer.node_id),)


def test_hello_bound_to_listener_and_connection() -> None:
    dialer, listener = NodeIdentity.generate(1), NodeIdentity.generate(2)
    payload = encode_hello(dialer, listener.node_id, ODCID)
    for lid, odcid in ((NodeIdentity.generate(3).node_id, ODCID), (listener.node_id, b"x" * 8)):
        with pytest.raises(RemoteProtocolError) as info:
            verify_hello(payload, lid, odcid)
        assert info.value.code is WireCode.BAD_SIGNATURE


def test_every_truncation_and_bitflip_is_refused() -> None:
    dialer, listener = NodeIdentity.generate(1), NodeIdentity.generate(2)
    payload = encode_hello(dialer, listener.node_id, ODCID)
    for cut in range(len(payload)):
        with pytest.raises(RemoteProtocolError):
            verify_hello(payload[:cut], listener.node_id, ODCID)
    for i in range(0, len(payload), 7):
        flipped = bytearray(payload)
        flipped[i] ^= 0x01
        with pytest.raises(RemoteProtocolError):
            verify_hello(bytes(flipped), listener.node_id, ODCID)


def test_oversized_hello_is_rejected_early() -> None:
    handler = HelloHandler(b"\0" * 32, ODCID)
    assert handler.on_data(b"\0" * (MAX_HELLO_BYTES + 1)) == (
        Reject(WireCode.STREAM_PROTOCOL_VIOLATION),
    )
