"""The chunk pull's actions: frozen values; the header request has its own index."""

from __future__ import annotations

import dataclasses

import pytest

from zapstack.dht.chunk_actions import HEADER_REQ, CancelRequest, RequestChunk, Stalled
from zapstack.errors import WireCode


def test_header_request_index_is_no_chunk_index() -> None:
    assert HEADER_REQ < 0
    assert CancelRequest("p", HEADER_REQ, WireCode.TIMEOUT) != CancelRequest(
        "p", 0, WireCode.TIMEOUT
    )


def test_actions_are_frozen_values() -> None:
    req = RequestChunk("p", 3, b"x")
    assert req == RequestChunk("p", 3, b"x")
    assert Stalled((), "no header").missing == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.index = 4  # type: ignore[misc]
