"""Node ids and the XOR metric."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

from zapstack.dht.ids import bucket_index, distance, node_id, random_id_in_bucket

ids = st.binary(min_size=32, max_size=32)


def test_node_id_is_sha256_of_the_public_key() -> None:
    assert node_id(b"pk") == hashlib.sha256(b"pk").digest()


@given(ids, ids, ids)
def test_xor_metric_axioms(a: bytes, b: bytes, c: bytes) -> None:
    assert distance(a, a) == 0
    assert distance(a, b) == distance(b, a)
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    assert distance(a, b) ^ distance(b, c) == distance(a, c)


@given(ids, st.integers(0, 255), st.integers(0, 2**32))
def test_random_id_lands_in_its_bucket(me: bytes, index: int, seed: int) -> None:
    x = random_id_in_bucket(me, index, random.Random(seed))
    assert bucket_index(me, x) == index


def test_bucket_index_uses_the_first_byte_as_most_significant() -> None:
    me = bytes(32)
    assert bucket_index(me, b"\x80" + bytes(31)) == 255
    assert bucket_index(me, bytes(31) + b"\x01") == 0
    assert bucket_index(me, me) == -1
