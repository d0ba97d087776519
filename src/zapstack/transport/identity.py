"""Per-node TLS identity: key, self-signed certificate, node id, HELLO proof.

Contract
--------
* A node's key is an ECDSA P-256 key (both qh3 and aioquic sign TLS 1.3
  handshakes with it out of the box).  Its **node id** is
  ``sha256(SubjectPublicKeyInfo DER of the public key)``, 32 bytes.
* Its certificate is self-signed; nobody checks a CA chain.  The *dialer*
  knows whom it dials: after the handshake it compares the node id of the
  listener's certificate with the expected one (:func:`node_id_of_cert_der`)
  and closes the connection on mismatch.
* qh3 (2.1.0) cannot request a client certificate, so the *listener* learns
  the dialer's identity from a HELLO stream (type 0xD0) the dialer opens
  first: ``u16 BE len | SPKI DER | u16 BE len | ECDSA-SHA256 signature (DER)``
  over ``sha256("zap/1 hello" || listener node id || u8 len || ODCID)``
  where ODCID is the connection's original destination connection id (chosen
  at random by the dialer, known to both ends).  Binding the listener's id
  stops a relaying peer from replaying it elsewhere; the ODCID makes it
  specific to one connection.
* The key's SPKI has exactly one accepted encoding (:data:`P256_SPKI_PREFIX`):
  DER, ``id-ecPublicKey`` with the named curve ``prime256v1``, and the point
  uncompressed (``04 || X || Y``) -- 91 bytes, what ``cryptography`` writes.
  The same key compressed (``02``/``03``), hybrid (``06``/``07``), with
  explicit curve parameters or in any other DER spelling would hash to a
  different node id, so a HELLO carrying it is refused
  (``STREAM_PROTOCOL_VIOLATION``): one key, one node id.
* Keys can be derived from an integer seed (tests, vectors, devnets) or drawn
  from the OS.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zapstack.errors import RemoteProtocolError, WireCode
from zapstack.transport.events import Authenticate, End, HandlerAction, Reject
from zapstack.transport.handler import NO_ACTIONS

__all__ = [
    "ALPN",
    "HELLO_DOMAIN",
    "MAX_HELLO_BYTES",
    "P256_SPKI_LEN",
    "P256_SPKI_PREFIX",
    "HelloHandler",
    "NodeIdentity",
    "encode_hello",
    "hello_digest",
    "node_id_of_cert_der",
    "node_id_of_spki",
    "verify_hello",
]

ALPN = "zap/1"
"""The ALPN protocol id both ends must negotiate."""
HELLO_DOMAIN = b"zap/1 hello"
"""Domain separator of the HELLO signature."""
MAX_HELLO_BYTES = 512
"""A HELLO longer than this is refused (STREAM_PROTOCOL_VIOLATION)."""

P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")
"""The first 27 bytes of every accepted SPKI: SEQUENCE(89), AlgorithmIdentifier
(id-ecPublicKey, prime256v1), BIT STRING(66) with no unused bits, then the
uncompressed-point tag 0x04; X and Y (32 bytes each) follow."""
P256_SPKI_LEN = len(P256_SPKI_PREFIX) + 64
"""91: the length of every accepted SPKI."""

_NOT_BEFORE = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2125, 1, 1, tzinfo=datetime.UTC)
_CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def node_id_of_spki(spki_der: bytes) -> bytes:
    """The node id of a SubjectPublicKeyInfo DER encoding."""
    return hashlib.sha256(spki_der).digest()


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def node_id_of_cert_der(cert_der: bytes) -> bytes:
    """The node id of the key certified by a DER certificate."""
    public = x509.load_der_x509_certificate(cert_der).public_key()
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return node_id_of_spki(spki)


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """A node's key, certificate and node id."""

    key: ec.EllipticCurvePrivateKey
    """The ECDSA P-256 private key."""
    certificate: x509.Certificate
    """Self-signed certificate for ``key``."""
    node_id: bytes = field(default=b"")
    """sha256 of the SPKI DER of the public key."""

    @classmethod
    def generate(cls, seed: int | bytes | None = None) -> NodeIdentity:
        """A fresh identity; deterministic when ``seed`` is given.

        ``seed``: a 32-byte key seed (``node.json``'s ``transport_key``, 256 bits
        of entropy) or a u64 (the older ``transport_seed``; tests and vectors).
        """
        if seed is None:
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            if isinstance(seed, bytes) and len(seed) != 32:
                raise ValueError("a transport key seed is 32 bytes")
            material = seed if isinstance(seed, bytes) else struct.pack(">Q", seed)
            digest = hashlib.sha256(b"zap/1 node key" + material).digest()
            scalar = int.from_bytes(digest, "big") % (_CURVE_ORDER - 1) + 1
            key = ec.derive_private_key(scalar, ec.SECP256R1())
        spki = _spki(key.public_key())
        node_id = node_id_of_spki(spki)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id.hex()[:32])])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(int.from_bytes(node_id[:8], "big") | 1)
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate, node_id)

    @property
    def spki(self) -> bytes:
        """SubjectPublicKeyInfo DER of the public key."""
        return _spki(self.key.public_key())

    def cert_pem(self) -> bytes:
        """The certificate, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def hello_digest(listener_id: bytes, odcid: bytes) -> bytes:
    """The 32-byte message the HELLO signature covers."""
    if len(listener_id) != 32 or not 0 < len(odcid) < 256:
        raise ValueError("listener id must be 32 bytes and ODCID 1..255 bytes")
    return hashlib.sha256(HELLO_DOMAIN + listener_id + bytes((len(odcid),)) + odcid).digest()


def encode_hello(identity: NodeIdentity, listener_id: bytes, odcid: bytes) -> bytes:
    """The HELLO payload (after the type byte) the dialer sends."""
    signature = identity.key.sign(hello_digest(listener_id, odcid), ec.ECDSA(hashes.SHA256()))
    spki = identity.spki
    return struct.pack(">H", len(spki)) + spki + struct.pack(">H", len(signature)) + signature


def verify_hello(payload: bytes, listener_id: bytes, odcid: bytes) -> bytes:
    """Check a HELLO payload; return the dialer's node id.

    Raises :class:`RemoteProtocolError` (``STREAM_PROTOCOL_VIOLATION`` for a
    malformed payload or a key in any encoding but the one canonical SPKI
    (:data:`P256_SPKI_PREFIX`), ``BAD_SIGNATURE`` for a signature that does
    not verify).
    """
    bad = WireCode.STREAM_PROTOCOL_VIOLATION
    if len(payload) < 2:
        raise RemoteProtocolError("HELLO truncated", code=bad, offset=len(payload))
    (spki_len,) = struct.unpack_from(">H", payload, 0)
    sig_at = 2 + spki_len
    if len(payload) < sig_at + 2:
        raise RemoteProtocolError("HELLO truncated", code=bad, offset=len(payload))
    (sig_len,) = struct.unpack_from(">H", payload, sig_at)
    if len(payload) != sig_at + 2 + sig_len:
        raise RemoteProtocolError("HELLO length mismatch", code=bad, offset=sig_at)
    spki = payload[2:sig_at]
    if spki_len != P256_SPKI_LEN or not spki.startswith(P256_SPKI_PREFIX):
        raise RemoteProtocolError(
            "HELLO key is not an uncompressed named-curve P-256 SPKI", code=bad, offset=2
        )
    try:
        public = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise RemoteProtocolError("HELLO key is not a P-256 point", code=bad, offset=2) from exc
    if not isinstance(public, ec.EllipticCurvePublicKey) or _spki(public) != spki:
        raise RemoteProtocolError("HELLO key is not canonical", code=bad, offset=2)
    try:
        public.verify(
            payload[sig_at + 2 :],
            hello_digest(listener_id, odcid),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature as exc:
        raise RemoteProtocolError(
            "HELLO signature invalid", code=WireCode.BAD_SIGNATURE, offset=sig_at + 2
        ) from exc
    return node_id_of_spki(spki)


class HelloHandler:
    """Stream handler for HELLO: collects the payload, verifies it at FIN."""

    def __init__(self, listener_id: bytes, odcid: bytes) -> None:
        self._listener_id = listener_id
        self._odcid = odcid
        self._buf = bytearray()
        self.node_id: bytes | None = None
        """The dialer's node id once verified."""

    def on_data(self, data: bytes) -> Sequence[HandlerAction]:
        self._buf += data
        if len(self._buf) > MAX_HELLO_BYTES:
            return (Reject(WireCode.STREAM_PROTOCOL_VIOLATION),)
        return NO_ACTIONS

    def on_end(self) -> Sequence[HandlerAction]:
        self.node_id = verify_hello(bytes(self._buf), self._listener_id, self._odcid)
        return (Authenticate(self.node_id),)

    def on_terminated(self, end: End, code: int | None) -> None:
        self._buf.clear()
