"""Shared DHT test material: one synthetic block of six chunks (the last one short)."""

from __future__ import annotations

from zapstack.dht.blocks import ServedBlock, synthetic_block, synthetic_layout
from zapstack.zap.merkle import CHUNK_SIZE

HLEN = 120
BLOCK = synthetic_block(b"\x07" * 32, HLEN, 5 * CHUNK_SIZE + 777)  # 6 chunks, short last
LAYOUT = synthetic_layout(BLOCK[:HLEN])
SERVED = ServedBlock(BLOCK, LAYOUT)
BID = SERVED.block_id
N = SERVED.chunk_count
