"""Row "Speculative execution": both paths reach the block's root; tiny run is sane."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from zapstack.benchmarks import speculation
from zapstack.errors import InvalidBlock


def test_paths_agree_with_the_header_root(tmp_path: Path) -> None:
    fx = speculation.Fixture(tmp_path / "db", 30, 2)
    try:
        assert len({b.block_id for b in fx.blocks}) == 2  # competing candidates
        for block, verdicts, encoded in zip(fx.blocks, fx.verdicts, fx.encoded, strict=True):
            a, b = fx.db.snapshot(), fx.db.snapshot()
            speculation.pointer_execute(a, (block, verdicts))
            speculation.codec_execute(b, encoded)
            assert a.root() == b.root() == block.state_root
            assert dict(a.iterate()) == dict(b.iterate())
            a.discard()
            b.discard()
        # the codec path really executes from its copy: a tampered copy fails the root check
        blk = speculation._DEC.decode(fx.encoded[0])
        tx0 = blk.txs[0]
        forged = speculation.CodecTx(
            **{f: getattr(tx0, f) for f in tx0.__struct_fields__} | {"amount": tx0.amount + 1}
        )
        bad = speculation._ENC.encode(
            speculation.CodecBlock(
                **{f: getattr(blk, f) for f in blk.__struct_fields__}
                | {"txs": [forged, *blk.txs[1:]]}
            )
        )
        br = fx.db.snapshot()
        with pytest.raises(InvalidBlock):
            speculation.codec_execute(br, bad)
        br.discard()
    finally:
        fx.close()


def test_row(check_row: Callable[..., None]) -> None:
    row = speculation.run(30, width=2, repeat=1)
    check_row(row, "speculation", "ms")
    assert row.extras["handoff_codec_per_branch_ms"] > 0
