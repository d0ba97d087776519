"""The receive pipeline's actions and its deferred signature check."""

from __future__ import annotations

import dataclasses

import pytest

from zapstack.errors import Stage, WireCode
from zapstack.mempool import RejectStream, Resume, WaitForCredit, verify_batch, verify_tx
from zapstack.zap import parse_tx

from .conftest import tx_bytes


def test_verify_tx_accepts_a_signed_tx_and_refuses_a_flipped_signature() -> None:
    raw = tx_bytes(1, 0, 5)
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    good_view = parse_tx(raw, verify_signatures=False)
    bad_view = parse_tx(bad, verify_signatures=False)
    assert verify_tx(good_view)
    assert not verify_tx(bad_view)
    assert verify_batch([good_view, bad_view, good_view]) == [True, False, True]
    assert verify_batch([]) == []


def test_actions_are_frozen_values() -> None:
    reject = RejectStream(b"p", 4, Stage.MAGIC, WireCode.BAD_MAGIC, 0, "magic")
    assert reject == RejectStream(b"p", 4, Stage.MAGIC, WireCode.BAD_MAGIC, 0, "magic")
    assert WaitForCredit(b"p", 4) != Resume(b"p", 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        reject.code = WireCode.TIMEOUT  # type: ignore[misc]
