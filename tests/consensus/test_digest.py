"""Leg digests: domain separation, every transcript field bound, a byte-level recomputation."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest

from zapstack.consensus.digest import CertContext, LegId, block_id, corona_session_id, leg_digest
from zapstack.errors import LocalProtocolError

CTX = CertContext(1, 2, 3, b"\x11" * 32, b"\x22" * 32)


def test_recomputed_from_the_format_doc() -> None:
    for leg in LegId:
        want = hashlib.sha256(
            b"zapstack/quasarcert/v1/"
            + leg.label.encode()
            + b"\x00"
            + struct.pack(">QQI", 1, 2, 3)
            + b"\x11" * 32
            + b"\x22" * 32
            + bytes([int(leg)])
        ).digest()
        assert leg_digest(CTX, leg) == want


def test_legs_are_domain_separated() -> None:
    assert len({leg_digest(CTX, leg) for leg in LegId}) == 4


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": 9},
        {"height": 9},
        {"round": 9},
        {"block_id": b"\x12" * 32},
        {"vset_root": b"\x23" * 32},
    ],
)
def test_every_field_is_bound(change: dict[str, object]) -> None:
    other = replace(CTX, **change)  # type: ignore[arg-type]
    assert all(leg_digest(CTX, leg) != leg_digest(other, leg) for leg in LegId)


def test_context_ranges() -> None:
    with pytest.raises(LocalProtocolError):
        CertContext(-1, 0, 0, bytes(32), bytes(32))
    with pytest.raises(LocalProtocolError):
        CertContext(0, 0, 1 << 32, bytes(32), bytes(32))
    with pytest.raises(LocalProtocolError):
        CertContext(0, 0, 0, bytes(31), bytes(32))


def test_block_id_and_session_id() -> None:
    assert block_id(b"abc") == hashlib.sha256(b"abc").digest()
    s = corona_session_id(1, 2, 3, b"\x22" * 32)
    assert s != corona_session_id(1, 2, 4, b"\x22" * 32)
    assert LegId.from_label("corona") is LegId.CORONA
    with pytest.raises(LocalProtocolError):
        LegId.from_label("nova")
