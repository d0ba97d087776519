"""The state phase of a bootstrap: the ``2**depth`` chunks of one root into one ZapDB txn.

:class:`StateDownload` is created when the client fixes its target.  It splits
the chunk indices into batches of ``batch`` consecutive chunks
(:meth:`StateDownload.next_batch`; a failed request hands its unfinished tail
back with :meth:`StateDownload.give_back`, to be asked first).  Every chunk is
checked against the target root *before* its entries are kept (a chunk that
fails keeps nothing: :meth:`StateDownload.write` raises
``RemoteProtocolError(BAD_CHUNK)``, :meth:`StateDownload.write_many` says which;
the latter checks a reply's chunks together, on two threads).  Each hash is
computed once: a :class:`~zapstack.zapdb.bulk.ChunkLoader` keeps the subtree it hashed while
verifying a chunk as the store's tree records; with every chunk in,
:meth:`StateDownload.commit` joins them under the root (2**depth - 1 hashes),
checks it against the target and commits with the verify pipeline's head
metadata.  (Into a store that is not empty -- never the case for a fresh node --
chunks are checked with ``verify_chunk`` and written as ordinary txn writes.)

Unwind: :meth:`StateDownload.discard` drops the txn; idempotent, safe after a
commit.  Called from one thread (the client's; the loader may hash on a helper thread
inside a call), no IO beyond the ZapDB txn.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from zapstack.bootstrap.events import StateProgress, StateSynced, TargetChosen
from zapstack.errors import LocalProtocolError, RemoteProtocolError, WireCode
from zapstack.verify.executor import HEAD_HEIGHT_META, HEAD_ID_META
from zapstack.zapdb.bulk import ChunkLoader
from zapstack.zapdb.proofs import StateChunk, verify_chunk
from zapstack.zapdb.smt import EMPTY
from zapstack.zapdb.store import ZapDB
from zapstack.zapdb.txn import Txn

__all__ = ["StateDownload", "chunk_failed"]


def chunk_failed(chunk: StateChunk) -> RemoteProtocolError:
    """The error that blames the sender of ``chunk``, which fails the target root."""
    return RemoteProtocolError(f"state chunk {chunk.index} fails the root", code=WireCode.BAD_CHUNK)


class StateDownload:
    """Download and verify the state at ``target`` (see the module docstring)."""

    def __init__(self, db: ZapDB, target: TargetChosen, depth: int, batch: int) -> None:
        self.target = target
        self.total = 1 << depth
        """Chunks to download."""
        self._written: set[int] = set()
        """Indexes of the chunks verified and written."""
        self.entries_written = 0
        """State entries written from them."""
        self._txn: Txn | None = db.begin()
        self._loader: ChunkLoader | None = None
        if self._txn.base_root() == EMPTY:
            self._loader = ChunkLoader(self._txn, target.state_root, depth)
        self._todo: deque[tuple[int, int]] = deque(
            (s, min(batch, self.total - s)) for s in range(0, self.total, batch)
        )

    @property
    def pending(self) -> bool:
        """Whether batches wait for a peer."""
        return bool(self._todo)

    def next_batch(self, most: int | None = None) -> tuple[int, int]:
        """The next ``(start, count)`` to request, at most ``most`` chunks (the rest of a
        batch cut so stays first in the queue; call only while :attr:`pending`)."""
        start, count = self._todo.popleft()
        if most is not None and count > most >= 1:
            self._todo.appendleft((start + most, count - most))
            count = most
        return start, count

    def give_back(self, start: int, count: int) -> None:
        """A request failed with chunks ``start .. start+count-1`` unwritten: ask them first."""
        self._todo.appendleft((start, count))

    @property
    def chunks_done(self) -> int:
        """Chunks verified and written (each index once)."""
        return len(self._written)

    @property
    def progress(self) -> StateProgress:
        """Chunks and entries written so far, of :attr:`total` chunks."""
        return StateProgress(self.chunks_done, self.total, self.entries_written)

    def write(self, chunk: StateChunk) -> bool:
        """Verify ``chunk`` against the target root and write it; True once every chunk is in."""
        good, complete = self.write_many([chunk])
        if not good:
            raise chunk_failed(chunk)
        return complete

    def write_many(self, chunks: Sequence[StateChunk]) -> tuple[int, bool]:
        """Verify ``chunks`` (a reply's, in order) and write those that pass; return
        ``(good, complete)``: the chunks before the first that failed (``chunks[good]``,
        if ``good < len(chunks)``: its sender is to blame) and whether every chunk is in.
        With the loader the good ones after a failure are kept too (asked again, a chunk
        already in is checked, not counted twice), and the batch is checked on two
        threads (:meth:`ChunkLoader.add_many`)."""
        assert self._txn is not None
        if self._loader is not None:
            verdicts = self._loader.add_many(chunks)
        else:
            verdicts = []
            for chunk in chunks:
                ok = verify_chunk(self.target.state_root, chunk)
                if ok:
                    for key, value in chunk.entries:
                        self._txn.set(key, value)
                verdicts.append(ok)
        for chunk, ok in zip(chunks, verdicts, strict=True):
            if ok and chunk.index not in self._written:
                self._written.add(chunk.index)
                self.entries_written += len(chunk.entries)
        good = next((i for i, ok in enumerate(verdicts) if not ok), len(chunks))
        return good, self.chunks_done == self.total

    def commit(self) -> StateSynced:
        """Commit the complete state with the head metadata of the target block."""
        assert self._txn is not None
        txn, self._txn = self._txn, None
        try:
            root = self._loader.finish() if self._loader is not None else txn.root()
        except BaseException:
            txn.discard()
            raise
        if root != self.target.state_root:  # unreachable with verified chunks: a bug
            txn.discard()
            raise LocalProtocolError("verified chunks do not rebuild the target root")
        txn.meta_set(HEAD_HEIGHT_META, self.target.height.to_bytes(8, "little"))
        txn.meta_set(HEAD_ID_META, self.target.block_id)
        txn.commit()
        return StateSynced(self.target.height, root, self.chunks_done, self.entries_written)

    def discard(self) -> None:
        """Abandon the download (idempotent; nothing after a commit)."""
        if self._txn is not None:
            self._txn.discard()
            self._txn = None
