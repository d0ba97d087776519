import hashlib

from hypothesis import given
from hypothesis import strategies as st

from zapstack.zap import merkle


@given(st.lists(st.binary(max_size=8), max_size=40))
def test_iterative_root_equals_reference(leaves: list[bytes]) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    if hashes:
        assert merkle.root_of_leaf_hashes(hashes) == merkle._root_reference(hashes)
    else:
        assert merkle.root_of_leaf_hashes(hashes) == hashlib.sha256(b"").digest()


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_inclusion_proofs_verify_and_bind(leaves: list[bytes], data: st.DataObject) -> None:
    hashes = [merkle.leaf_hash(x) for x in leaves]
    root = merkle.root_of_leaf_hashes(hashes)
    i = data.draw(st.integers(0, len(hashes) - 1))
    path = merkle.inclusion_proof(hashes, i)
    assert merkle.verify_inclusion(hashes[i], i, len(hashes), path, root)
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"bogus!!!!"), i, len(hashes), path, root)
    if len(hashes) > 1:
        j = (i + 1) % len(hashes)
        if hashes[j] != hashes[i]:
            assert not merkle.verify_inclusion(hashes[i], j, len(hashes), path, root)


def test_known_answer_three_leaves() -> None:
    a, b, c = (merkle.leaf_hash(x) for x in (b"a", b"b", b"c"))
    expected = merkle.node_hash(merkle.node_hash(a, b), c)
    assert merkle.root_of_leaf_hashes([a, b, c]) == expected
    assert (
        expected.hex()
        == hashlib.sha256(b"\x01" + hashlib.sha256(b"\x01" + a + b).digest() + c).hexdigest()
    )


def test_chunks_are_64k_views() -> None:
    payload = bytes(range(256)) * 700  # 179200 bytes -> 3 chunks
    chunks = merkle.chunk_slices(payload)
    assert [len(c) for c in chunks] == [65536, 65536, 179200 - 131072]
    assert merkle.chunk_count(len(payload)) == 3
    assert b"".join(chunks) == payload
    assert merkle.chunk_root(payload) == merkle.root_of_leaf_hashes(
        [merkle.leaf_hash(c) for c in chunks]
    )
