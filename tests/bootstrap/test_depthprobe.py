"""The depth probe: which chunk it samples, the depth a sample gives, refusals, replies.

Expected depths come from a readable model of the rule (a base-2 logarithm), not from
``choose_depth``'s loop."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from zapstack.bootstrap import depthprobe
from zapstack.bootstrap.depthprobe import (
    MAX_AUTO_DEPTH,
    MIN_AUTO_DEPTH,
    PROBE_DEPTHS,
    DepthProbe,
    choose_depth,
    probe_index,
)
from zapstack.errors import WireCode
from zapstack.zapdb import StateChunk

from .conftest import state_chunks


def model_depth(sample_bytes: int, probe_depth: int) -> int:
    """The smallest depth whose chunks hold at most AUTO_CHUNK_BYTES of the estimated
    state (sample x 2**probe_depth), within MIN..MAX (the module's values when called:
    tests may set smaller ones)."""
    chunk, low, high = (
        depthprobe.AUTO_CHUNK_BYTES,
        depthprobe.MIN_AUTO_DEPTH,
        depthprobe.MAX_AUTO_DEPTH,
    )
    estimate = sample_bytes * 2**probe_depth
    need = math.ceil(math.log2(estimate / chunk)) if estimate > chunk else 0
    return min(high, max(low, need))


def test_probe_index_is_the_roots_leading_bits() -> None:
    root = bytes([0b10110011, 0b01010101, 0xFF]) + bytes(29)
    bits = "".join(f"{b:08b}" for b in root[:3])
    for depth in (0, 1, 8, 13, 16, 24):
        assert probe_index(root, depth) == int(bits[:depth] or "0", 2)


@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=300)), max_size=200))
def test_chosen_depth_follows_the_model(entries: list[tuple[bytes, bytes]]) -> None:
    sample = sum(6 + len(k) + len(v) for k, v in entries)  # key_len u16 + value_len u32
    for probe_depth in PROBE_DEPTHS:
        chunk = StateChunk(probe_depth, 0, tuple(entries), (), None)
        assert choose_depth(chunk) == model_depth(sample, probe_depth)


def test_depth_bounds_and_the_step_at_the_chunk_bound() -> None:
    empty = StateChunk(8, 0, (), (), None)
    assert choose_depth(empty) == MIN_AUTO_DEPTH == 8
    # 1 KiB sampled at depth 8: a 256 KiB state, one 256 KiB chunk at depth 0 -> MIN
    kib = ((b"k", b"v" * (1024 - 6 - 1)),)
    assert choose_depth(StateChunk(8, 0, kib, (), None)) == 8
    # 1 KiB at depth 16: 64 MiB -> exactly 256 KiB chunks at depth 8; one byte more -> 9
    assert choose_depth(StateChunk(16, 0, kib, (), None)) == 8
    more = ((b"k", b"v" * (1024 - 6)),)
    assert choose_depth(StateChunk(16, 0, more, (), None)) == 9
    huge = ((b"k", bytes(1 << 20)),)  # 1 MiB at depth 24: 16 TiB -> capped
    assert choose_depth(StateChunk(24, 0, huge, (), None)) == MAX_AUTO_DEPTH


def test_refusals_go_deeper_only_when_two_peers_agree() -> None:
    probe = DepthProbe(bytes(32))
    assert probe.pick([b"A", b"B", b"C"]) == b"A"
    probe.rid = 7
    assert probe.pick([b"B"]) is None  # one probe at a time
    assert probe.refused(b"A", WireCode.INTERNAL, live=3) is True
    assert probe.depth == 8
    probe.rid = None  # the client forgets the request
    assert probe.pick([b"A", b"B", b"C"]) == b"B"  # not A again at this depth
    assert probe.refused(b"B", WireCode.INTERNAL, live=3) is True
    assert probe.depth == 16 and probe.pick([b"A", b"B"]) == b"A"  # everyone again, deeper
    assert probe.refused(b"A", WireCode.NOT_FOUND, live=3) is False  # not a size refusal
    assert probe.depth == 16
    alone = DepthProbe(bytes(32))
    assert alone.refused(b"A", WireCode.INTERNAL, live=1) is True and alone.depth == 16
    assert alone.refused(b"A", WireCode.INTERNAL, live=1) is True and alone.depth == 24
    assert alone.refused(b"A", WireCode.INTERNAL, live=1) is False  # no depth left
    assert alone.depth == 24


def test_a_reply_counts_only_if_it_is_the_chunk_asked_and_passes_the_root(
    tmp_path: Path,
) -> None:
    root, chunks = state_chunks(tmp_path / "db", 8, 3000, 50)
    probe = DepthProbe(root)
    want = chunks[probe_index(root, 8)]
    sample = sum(6 + len(k) + len(v) for k, v in want.entries)
    other = chunks[(want.index + 1) % 256]
    assert probe.answer(other) is None  # another chunk
    k, v = want.entries[0]
    assert (
        probe.answer(
            StateChunk(
                8, want.index, ((k, v + b"!"), *want.entries[1:]), want.siblings, want.terminal
            )
        )
        is None
    )  # fails the root
    assert probe.answer(want) == model_depth(sample, 8)


@given(st.integers(0, 1 << 23), st.sampled_from(PROBE_DEPTHS))
def test_a_large_sample_follows_the_model_exactly(value_len: int, probe_depth: int) -> None:
    """Samples up to 8 MiB (a depth-8 probe of a state up to 2 GiB): the bound is exact
    (estimate / 2**depth <= AUTO_CHUNK_BYTES), never rounded down by a shift."""
    chunk = StateChunk(probe_depth, 0, ((b"k", bytes(value_len)),), (), None)
    assert choose_depth(chunk) == model_depth(6 + 1 + value_len, probe_depth)


def test_just_over_the_bound_goes_one_deeper() -> None:
    # 512 KiB + 1 B sampled at depth 8: 2**9 chunks would hold 256 KiB + 0.5 B each
    chunk = StateChunk(8, 0, ((b"k", bytes((512 << 10) + 1 - 7)),), (), None)
    assert choose_depth(chunk) == 10
