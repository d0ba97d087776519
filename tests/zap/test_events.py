"""The ingress machine's events: verdicts are frozen values, sentinels compare by identity."""

import dataclasses

import pytest

from zapstack.errors import RemoteProtocolError, Stage, WireCode
from zapstack.zap import END, NEED_DATA, FrameRejected
from zapstack.zap.events import Sentinel


def test_sentinels_are_distinct_and_named() -> None:
    assert NEED_DATA is not END
    assert (repr(NEED_DATA), repr(END)) == ("NEED_DATA", "END")
    assert repr(Sentinel("X")) == "X"


def test_rejection_converts_to_the_remote_error_with_the_same_blame() -> None:
    rej = FrameRejected(Stage.HEADER, WireCode.BAD_VERSION, 5, "version 2 (want 1)")
    err = rej.error()
    assert isinstance(err, RemoteProtocolError)
    assert (err.code, err.stage, err.offset) == (WireCode.BAD_VERSION, Stage.HEADER, 5)
    assert "stage HEADER byte 5: version 2 (want 1)" in str(err)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rej.offset = 6  # type: ignore[misc]
