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


# --- one key, one node id: the HELLO key has exactly one accepted encoding --------------
# An independent model of the encodings (X9.62 point forms, RFC 5480 SPKI), written from
# docs/formats/streams.md §HELLO, not from identity.py.

_EC_ALG = bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107")  # id-ecPublicKey, P-256


def _der(tag: int, body: bytes, *, long_form: bool = False) -> bytes:
    if long_form or len(body) > 127:  # long form: one length byte after 0x81
        return bytes((tag, 0x81, len(body))) + body
    return bytes((tag, len(body))) + body


def _spki_of_point(point: bytes, *, long_form: bool = False) -> bytes:
    bit_string = _der(0x03, b"\x00" + point)
    return _der(0x30, _EC_ALG + bit_string, long_form=long_form)


def _point_forms(identity: NodeIdentity) -> dict[str, bytes]:
    from cryptography.hazmat.primitives import serialization

    public = identity.key.public_key()
    fmt = serialization.PublicFormat
    uncompressed = public.public_bytes(serialization.Encoding.X962, fmt.UncompressedPoint)
    compressed = public.public_bytes(serialization.Encoding.X962, fmt.CompressedPoint)
    y_odd = uncompressed[-1] & 1
    return {
        "uncompressed": uncompressed,
        "compressed": compressed,
        "hybrid": bytes((0x06 + y_odd,)) + uncompressed[1:],
        "hybrid-wrong-parity": bytes((0x07 - y_odd,)) + uncompressed[1:],
    }


def _hello_with_spki(identity: NodeIdentity, spki: bytes, listener_id: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    digest = hashlib.sha256(b"zap/1 hello" + listener_id + bytes((len(ODCID),)) + ODCID).digest()
    sig = identity.key.sign(digest, ec.ECDSA(hashes.SHA256()))
    return len(spki).to_bytes(2, "big") + spki + len(sig).to_bytes(2, "big") + sig


def test_the_canonical_spki_is_the_uncompressed_named_curve_one() -> None:
    for seed in range(1, 6):
        identity = NodeIdentity.generate(seed)
        canonical = _spki_of_point(_point_forms(identity)["uncompressed"])
        assert identity.spki == canonical
        assert len(canonical) == 91
        listener = NodeIdentity.generate(100 + seed)
        payload = _hello_with_spki(identity, canonical, listener.node_id)
        assert verify_hello(payload, listener.node_id, ODCID) == hashlib.sha256(canonical).digest()


@pytest.mark.parametrize(
    "form", ["compressed", "hybrid", "hybrid-wrong-parity", "uncompressed-long-form-length"]
)
def test_the_same_key_in_any_other_encoding_is_refused(form: str) -> None:
    """A validly signed HELLO whose key is the dialer's key in another encoding would
    present a second node id for the same key: refused, STREAM_PROTOCOL_VIOLATION."""
    from cryptography.hazmat.primitives import serialization

    for seed in range(1, 9):  # both parities of Y occur among these keys
        dialer, listener = NodeIdentity.generate(seed), NodeIdentity.generate(50)
        forms = _point_forms(dialer)
        if form == "uncompressed-long-form-length":
            spki = _spki_of_point(forms["uncompressed"], long_form=True)
        else:
            spki = _spki_of_point(forms[form])
        if form in ("compressed", "hybrid"):  # the library reads it as the same key ...
            loaded = serialization.load_der_public_key(spki)
            assert loaded.public_numbers() == dialer.key.public_key().public_numbers()  # type: ignore[union-attr]
            assert hashlib.sha256(spki).digest() != dialer.node_id  # ... under another id
        payload = _hello_with_spki(dialer, spki, listener.node_id)
        with pytest.raises(RemoteProtocolError) as info:
            verify_hello(payload, listener.node_id, ODCID)
        assert info.value.code is WireCode.STREAM_PROTOCOL_VIOLATION
        handler = HelloHandler(listener.node_id, ODCID)
        for i in range(len(payload)):  # byte at a time: refused only at FIN
            assert handler.on_data(payload[i : i + 1]) == ()
        with pytest.raises(RemoteProtocolError):
            handler.on_end()
        assert handler.node_id is None


def test_a_32_byte_key_seed_follows_the_documented_scalar() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    seed = bytes(range(32))
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 n
    scalar = int.from_bytes(hashlib.sha256(b"zap/1 node key" + seed).digest(), "big")
    expected = ec.derive_private_key(scalar % (order - 1) + 1, ec.SECP256R1()).public_key()
    ident = NodeIdentity.generate(seed)
    assert ident.key.public_key().public_numbers() == expected.public_numbers()
    assert NodeIdentity.generate(seed).node_id == ident.node_id
    assert NodeIdentity.generate(bytes(32)).node_id != ident.node_id
    with pytest.raises(ValueError, match="32 bytes"):
        NodeIdentity.generate(b"short")
