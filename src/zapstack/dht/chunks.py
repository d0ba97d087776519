"""Light-client chunked parallel pull of one block (sans-IO): who is asked, and when.

Theory of operation
-------------------
A block is ``header || payload || trailer`` (a ZAP block frame's trailer is
its signature; synthetic blocks have none).  The header (a small prefix)
commits to the payload through ``chunk_root``: the Merkle root over ``leaf_hash(chunk_i)`` of
the payload's 64 KiB chunks (:mod:`zapstack.zap.merkle`).  The block id is
``sha256(block)``.  ``docs/formats/chunks.md`` is the normative description.

:class:`ChunkPull` fetches one block from a list of providers:

1. **Header.**  Unless the caller already holds a trusted header (e.g. from a
   certified header chain), GET_HEADER goes to the first untried provider; the
   HEADER answer carries the prefix and the trailer.  A ``layout`` function
   turns the prefix into a :class:`BlockLayout`.
2. **Chunks.**  Every missing chunk without a request in flight is asked of
   the usable provider with the fewest requests in flight (ties: provider
   order), at most ``max_in_flight`` per provider.  Each arriving chunk is
   checked *before* insertion: block id echo, index, exact length, inclusion
   proof against ``chunk_root``.  A valid chunk is written at
   ``header_len + index * CHUNK_SIZE`` whoever sent it and in any order; a
   second copy is counted as a duplicate and dropped.
3. **Blame.**  Malformed bytes or a wrong echo are a *definitive* blame.  A
   chunk that fails the commitment is blamed against the layout it failed
   under: definitive if the header is trusted or confirmed, *provisional*
   while the header came from a provider and the block is not complete.
   A blamed peer's in-flight requests are cancelled (``BAD_CHUNK``) and
   re-issued elsewhere; it gets no new ones.
4. **Disconnect / reset / timeout.**  A disconnected provider's partial
   response bytes are dropped and its in-flight chunks re-requested elsewhere;
   a reset or timed-out request excludes that provider for that chunk.
5. **Completion.**  When every chunk is in, ``sha256(buffer)`` must equal the
   block id.  Yes: :class:`PullComplete`, provisional blames become final.  No,
   with a trusted header: :class:`Stalled` (the caller's header is wrong).  No,
   with a provider's header: that provider lied (the chunks all matched its
   root), it is blamed and a header is fetched from another provider.
6. **Stall.**  With nothing in flight and chunks missing: if the provider's
   header has provisional blames against it, it is *suspected* (not blamed)
   and a header is fetched elsewhere; otherwise per-chunk exclusions are
   cleared up to twice, then :class:`Stalled` is emitted until
   :meth:`ChunkPull.add_providers` brings new ones.

Steps 1 (header acceptance), 3, 4 and 5 are the policy-free core,
:class:`~zapstack.dht.pullcore.PullCore` (chunk checks and the buffer:
:mod:`zapstack.dht.reassembly`); :class:`ChunkPull` adds the provider list,
the request scheduling of step 2 and the stall policy of step 6.  With
``schedule=False`` the pull is that *passive reassembler*: it issues no
requests and runs no stall policy -- the core the ``dht_refetch`` vectors pin
down.  Actions are defined in :mod:`zapstack.dht.chunk_actions`.

Events in: :meth:`receive_data`, :meth:`stream_ended`, :meth:`stream_reset`,
:meth:`peer_disconnected`, :meth:`deliver` (already-decoded messages),
:meth:`handle_timer`.  Actions out: :meth:`next_action`.  Time is always a
``now`` argument.  Every unwind call is idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence

from zapstack.dht.chunk_actions import HEADER_REQ, RequestChunk, RequestHeader, Stalled
from zapstack.dht.messages import GetChunk, GetHeader
from zapstack.dht.pullcore import LayoutFn, PullCore
from zapstack.dht.wire import encode

__all__ = ["ChunkPull"]


class ChunkPull(PullCore):
    """Pull one block by id from ``providers`` (see the module docstring)."""

    def __init__(
        self,
        block_id: bytes,
        providers: Sequence[str],
        *,
        layout: LayoutFn,
        now: float,
        header: bytes | None = None,
        trailer: bytes = b"",
        max_in_flight: int = 4,
        request_timeout: float = 5.0,
        max_block_bytes: int = 256 * 1024 * 1024,
        schedule: bool = True,
    ) -> None:
        self._active = schedule
        self.max_in_flight = max_in_flight
        self.request_timeout = request_timeout
        self.providers: list[str] = []
        self._header_tried: set[str] = set()
        for p in providers:
            if p not in self.providers:
                self.providers.append(p)
        super().__init__(
            block_id,
            layout=layout,
            now=now,
            header=header,
            trailer=trailer,
            max_block_bytes=max_block_bytes,
        )
        self._schedule(now)

    # ------------------------------------------------------------ providers

    def add_providers(self, peers: Sequence[str], now: float) -> None:
        """Append new providers (duplicates ignored) and reschedule."""
        for p in peers:
            if p not in self.providers:
                self.providers.append(p)
                self._stalled = False
        self._schedule(now)

    # ------------------------------------------------------------ policy

    def _usable(self) -> list[str]:
        return [p for p in self.providers if not self._avoid(p)]

    def _schedule(self, now: float) -> None:
        if self.done or not self._active:
            return
        usable = self._usable()
        if self.layout is None:
            if any(i == HEADER_REQ for _, i in self._out):
                return
            fresh = [p for p in usable if p not in self._header_tried]
            if fresh:
                self._header_tried.add(fresh[0])
                self._request(fresh[0], HEADER_REQ, now)
            else:
                self._stall((), "no provider left to ask for the header")
            return
        load = {p: 0 for p in usable}
        for p, _ in self._out:
            if p in load:
                load[p] += 1
        order = {p: i for i, p in enumerate(usable)}
        for index in range(self._n):
            if index in self._have or index in self._index_peer:
                continue
            excluded = self._excluded.get(index, set())
            cands = [p for p in usable if p not in excluded and load[p] < self.max_in_flight]
            if not cands:
                continue
            p = min(cands, key=lambda c: (load[c], order[c]))
            load[p] += 1
            self._request(p, index, now)
        if not self._out and self.missing:
            self._on_stall(now)

    def _on_stall(self, now: float) -> None:
        if self.header_from is not None and self._fails.get(self._key):
            self._drop_header()  # suspected, not blamed: try another provider's header
            self._schedule(now)
        elif self._excluded and self._retry_rounds < 2:
            self._retry_rounds += 1
            self._excluded.clear()
            self._schedule(now)
        else:
            self._stall(self.missing, "every provider is gone, blamed or excluded")

    def _stall(self, missing: tuple[int, ...], reason: str) -> None:
        if not self._stalled:
            self._stalled = True
            self._actions.append(Stalled(missing, reason))

    def _request(self, peer: str, index: int, now: float) -> None:
        self._stalled = False
        self._out[(peer, index)] = now + self.request_timeout
        if index == HEADER_REQ:
            self._actions.append(RequestHeader(peer, encode(GetHeader(self.block_id))))
        else:
            self._index_peer[index] = peer
            data = encode(GetChunk(self.block_id, index))
            self._actions.append(RequestChunk(peer, index, data))
