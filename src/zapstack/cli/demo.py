"""``zap demo``: build and validate a block of signed txs; show where bad frames die.

A newcomer's tour, printed with rich: 200 signed txs built into one block
frame and read back in place (timed), then a handful of corrupted tx frames
fed one byte at a time to the ingress state machine, each shown with the
stage, wire code and byte offset where it was rejected.  The txs come from
the seed; the timings and the block id vary (ML-DSA-65 signing is
randomised).  No IO beyond the console.
"""

from __future__ import annotations

import random
import time

from rich.console import Console
from rich.table import Table

from zapstack.zap.events import FrameAccepted, FrameRejected
from zapstack.zap.frames import build_block, build_call, build_transfer, parse_block
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.sigschemes import Signer, SigScheme
from zapstack.zap.views import BlockView

__all__ = ["run_demo"]


def run_demo(console: Console, n_txs: int = 200, seed: int = 7) -> None:
    """Print a newcomer-friendly tour of frames, transcript and ingress."""
    rng = random.Random(seed)
    console.rule("[bold]ZAP frames: one immutable buffer, read through typed offsets")
    txs, block_bytes, built = _build(rng, n_txs)
    t0 = time.perf_counter()
    block = parse_block(block_bytes)
    valid = _verify_all(block)
    checked = time.perf_counter() - t0
    console.print(
        f"built {len(txs)} signed txs ({n_txs - 1} Ed25519, 1 ML-DSA-65) into a "
        f"{len(block_bytes):,}-byte block in {built * 1e3:.1f} ms"
    )
    console.print(
        f"validated the block frame (offsets, tx root, 64 KiB chunk root, proposer "
        f"signature) and verified {valid}/{block.tx_count} tx signatures in {checked * 1e3:.1f} ms"
    )
    console.print(f"block id  = sha256(block bytes) = [cyan]{block.block_id.hex()}[/cyan]")
    console.print(_tx_table(block))

    console.rule("[bold]Tx receive pipeline, stages 1-4: rejected at the first bad byte")
    console.print(_ingress_table(txs[0]))
    console.print(
        "Each stream is reset with the wire code shown; other streams of the same peer "
        "are untouched. Formats: docs/formats/zap.md"
    )


def _build(rng: random.Random, n_txs: int) -> tuple[list[bytes], bytes, float]:
    """``n_txs`` signed txs (Ed25519 transfers, one call, one ML-DSA-65 transfer) and
    the block holding them; returns ``(txs, block bytes, seconds spent building)``."""
    ed = [Signer(SigScheme.ED25519, rng.randbytes(32)) for _ in range(8)]
    pq = Signer(SigScheme.MLDSA65, rng.randbytes(32))
    t0 = time.perf_counter()
    txs = [
        build_transfer(
            ed[i % 8], rng.randbytes(32), rng.randrange(1, 10**6), rng.randrange(1, 100), i // 8
        )
        for i in range(n_txs - 2)
    ]
    txs.append(build_call(ed[0], b"\x42" * 32, b"hello, zap", 5, 999))
    txs.append(build_transfer(pq, b"\x24" * 32, 1000, 7, 0))
    proposer = Signer(SigScheme.ED25519, rng.randbytes(32))
    block_bytes = build_block(
        proposer,
        height=1,
        parent=bytes(32),
        timestamp_ms=1_766_708_400_000,
        state_root=bytes(32),
        txs=txs,
    )
    return txs, block_bytes, time.perf_counter() - t0


def _verify_all(block: BlockView) -> int:
    from zapstack.zap.sigschemes import verify_signature

    return sum(verify_signature(t.scheme, t.pubkey, t.digest, t.signature) for t in block.txs())


def _tx_table(block: BlockView) -> Table:
    """The first three and last two txs, read in place from the block buffer."""
    table = Table(title="first txs, read in place from the block buffer (no copies)")
    for col in ("#", "kind", "scheme", "bytes", "fee", "nonce", "tx id"):
        table.add_column(col)
    for i, tx in enumerate(block.txs()[:3] + block.txs()[-2:]):
        idx = i if i < 3 else block.tx_count - 5 + i
        table.add_row(
            str(idx),
            tx.schema.kind.name,
            SigScheme(tx.scheme).name,
            str(len(tx)),
            str(tx.fee),
            str(tx.nonce),
            tx.tx_id.hex()[:16] + "...",
        )
    return table


def _bad_frames(good: bytes) -> dict[str, bytes]:
    """``good`` and corruptions of it, each caught at a different ingress stage."""
    return {
        "valid transfer": good,
        "wrong magic": b"\x7fZIP" + good[4:],
        "unknown tx kind 0x09": good[:4] + b"\x09" + good[5:],
        "version 2": good[:5] + b"\x02" + good[6:],
        "offset overruns the body": good[:21] + b"\xff\xff\x00\x00" + good[25:],
        "tampered amount": good[:120] + bytes([good[120] ^ 1]) + good[121:],
        "cut short (peer hung up)": good[:100],
    }


def _feed_bytewise(data: bytes) -> tuple[object, int]:
    """Feed ``data`` one byte at a time, as a slow peer would send; ``(verdict, bytes fed)``."""
    machine = IngressMachine()
    fed = 0
    for i in range(len(data)):
        machine.receive_data(data[i : i + 1])
        fed += 1
        if machine.finished:
            break
    machine.end_of_stream()
    return machine.next_event(), fed


def _ingress_table(good: bytes) -> Table:
    """Verdict, stage, wire code and offset of every frame of :func:`_bad_frames`."""
    rej = Table()
    for col in ("frame", "verdict", "stage", "wire code", "at byte", "bytes needed"):
        rej.add_column(col)
    for name, data in _bad_frames(good).items():
        ev, fed = _feed_bytewise(data)
        if isinstance(ev, FrameAccepted):
            rej.add_row(name, "[green]accepted[/green]", "-", "-", "-", str(fed))
        elif isinstance(ev, FrameRejected):
            rej.add_row(
                name,
                "[red]rejected[/red]",
                f"{ev.stage.value} {ev.stage.name}",
                f"0x{ev.code:02x} {ev.code.name}",
                str(ev.offset),
                str(fed),
            )
    return rej
