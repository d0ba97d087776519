"""Stream ids: our allocation per kind, credit and queued opens, the peer's id window."""

from __future__ import annotations

from zapstack.transport.streamids import StreamIds, is_bidi


def test_allocation_follows_rfc9000_parity_and_kind() -> None:
    client, server = StreamIds(is_client=True), StreamIds(is_client=False)
    assert [client.allocate(True), client.allocate(True), client.allocate(False)] == [0, 4, 2]
    assert [server.allocate(True), server.allocate(False), server.allocate(False)] == [1, 3, 7]
    assert is_bidi(0) and is_bidi(5) and not is_bidi(2) and not is_bidi(7)


def test_opens_wait_for_credit_in_order() -> None:
    ids = StreamIds(is_client=True)
    first, second = ids.allocate(False), ids.allocate(False)  # 2, 6
    assert not ids.may_open(first)
    assert ids.enqueue(first) and not ids.enqueue(second)  # only the first asks for credit
    assert ids.queued(False) == 2 and not ids.may_open(ids.allocate(False))
    assert ids.raise_credit(uni=1, bidi=0) == [first]
    assert ids.raise_credit(uni=1, bidi=0) == []  # credit is cumulative: no change
    ids.dequeue(second)
    assert ids.queued(False) == 0
    assert ids.may_open(ids.allocate(True)) is False and ids.raise_credit(uni=0, bidi=5) == []
    ids.enqueue(10)
    ids.clear()
    assert ids.queued(False) == 0


def test_peer_ids_may_arrive_out_of_order_but_only_once() -> None:
    ids = StreamIds(is_client=False)
    assert not ids.admit_remote(3)  # one of ours
    assert ids.admit_remote(10)  # client uni index 2: indices 0 and 1 become "unseen"
    assert ids.admit_remote(2) and ids.admit_remote(6)
    assert not ids.admit_remote(2) and not ids.admit_remote(10)  # forgotten
    assert ids.admit_remote(0) and ids.admit_remote(4)  # the bidi kind has its own window
