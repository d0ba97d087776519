"""The DHT messages as values: type bytes pair requests with responses; values are frozen."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from zapstack.dht import messages
from zapstack.dht.ids import Contact


def test_every_response_type_is_its_request_type_or_0x80() -> None:
    requests = {t for t in messages.MsgType if t < 0x80}
    responses = {t for t in messages.MsgType if t >= 0x80}
    assert {t | 0x80 for t in requests} == responses
    assert len(typing.get_args(messages.Message)) == len(messages.MsgType)


def test_messages_are_frozen_values() -> None:
    msg = messages.Providers((Contact(bytes(32), "a:1"),), ())
    assert msg == messages.Providers((Contact(bytes(32), "a:1"),), ())
    assert messages.HeaderMsg(bytes(32), b"h").trailer == b""
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.closer = ()  # type: ignore[misc]
