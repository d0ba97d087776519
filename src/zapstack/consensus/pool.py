"""One persistent, pre-warmed pool of signing processes (work that holds the GIL).

pqcrypto's SLH-DSA and the numpy Ringtail rounds hold the GIL, so a process
that simulates (or hosts) many signers runs them in worker processes.  Each
worker is a long-lived process with its own duplex pipe, so work can be
*addressed*: Corona round 2 must run in the worker that holds the signer's
round-1 state (that state never leaves the worker: nonces are never copied).
Callers hand each worker one batch (35-66 us per task overhead here), never
one signature per task.

Contract
--------
* ``SigningPool(workers)`` starts the workers (``forkserver``) and warms them
  (imports done, one SLH-DSA signature made) before returning.
* ``slh_sign`` / ``corona_round1`` / ``corona_round2`` split their items across
  workers in contiguous batches and return results in input order.
* ``close()`` is idempotent and also runs on ``with``-exit.
* Not thread-safe: one caller at a time (the bench drives it from one thread).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from zapstack.consensus.digest import CertContext
from zapstack.consensus.validators import ValidatorSecrets
from zapstack.crypto.slhdsa import ParamSet
from zapstack.errors import LocalProtocolError

__all__ = ["SigningPool"]


def _worker(conn: Connection) -> None:
    """Worker loop: (op, args) -> ("ok", result) | ("err", message)."""
    from zapstack.consensus.legs import corona
    from zapstack.crypto import slhdsa

    sessions: dict[tuple[bytes, int], corona.CoronaSigner] = {}

    def slh_sign(params: ParamSet, items: list[tuple[bytes, bytes]]) -> list[bytes]:
        return [slhdsa.sign(sk, msg, params) for sk, msg in items]

    def round1(session_id: bytes, batch: list[ValidatorSecrets]) -> list[bytes]:
        out = []
        for secrets in batch:
            signer = corona.CoronaSigner(secrets, session_id)
            sessions[(session_id, secrets.index)] = signer
            out.append(signer.commitment)
        return out

    def round2(
        ctx: CertContext, signers: list[int], commits: dict[int, bytes], mine: list[int]
    ) -> list[bytes]:
        sid = corona.session_of(ctx)
        return [sessions.pop((sid, i)).respond(ctx, signers, commits) for i in mine]

    def drop(session_id: bytes) -> int:
        gone = [k for k in sessions if k[0] == session_id]
        for k in gone:
            sessions.pop(k).discard()
        return len(gone)

    ops: dict[str, Any] = {
        "slh_sign": slh_sign,
        "round1": round1,
        "round2": round2,
        "drop": drop,
        "ping": lambda: os.getpid(),
    }
    while True:
        try:
            op, args = conn.recv()
        except EOFError:
            return
        if op == "exit":
            return
        try:
            conn.send(("ok", ops[op](*args)))
        except Exception as exc:  # reported to the caller, the worker lives on
            conn.send(("err", f"{type(exc).__name__}: {exc}"))


def _split(n_items: int, n_workers: int) -> list[range]:
    size, extra = divmod(n_items, n_workers)
    out, start = [], 0
    for w in range(n_workers):
        end = start + size + (1 if w < extra else 0)
        out.append(range(start, end))
        start = end
    return out


class SigningPool:
    """Persistent signing processes; see the module docstring."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        ctx = mp.get_context("forkserver")
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._closed = False
        self._owner: dict[int, int] = {}
        for _ in range(self.workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self.pids = self._broadcast("ping", [()] * self.workers)
        warm = [(bytes(64), b"warm-up")]
        self._broadcast("slh_sign", [(ParamSet.SHA2_128F, warm)] * self.workers)

    def _broadcast(self, op: str, per_worker: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self._closed:
            raise LocalProtocolError("signing pool is closed")
        for conn, args in zip(self._conns, per_worker, strict=True):
            conn.send((op, args))
        results = []
        for conn in self._conns:
            status, value = conn.recv()
            if status != "ok":
                raise LocalProtocolError(f"signing worker failed: {value}")
            results.append(value)
        return results

    def slh_sign(self, params: ParamSet, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """SLH-DSA signatures of ``(secret_key, message)`` items, in order."""
        parts = _split(len(items), self.workers)
        res = self._broadcast("slh_sign", [(params, [items[i] for i in r]) for r in parts])
        return [sig for batch in res for sig in batch]

    def corona_round1(
        self, ctx: CertContext, secrets: Sequence[ValidatorSecrets]
    ) -> dict[int, bytes]:
        """Round-1 commitments (validator index -> bytes); state stays in the workers."""
        sid = self._session(ctx)
        parts = _split(len(secrets), self.workers)
        res = self._broadcast("round1", [(sid, [secrets[i] for i in r]) for r in parts])
        self._owner = {secrets[i].index: w for w, r in enumerate(parts) for i in r}
        return {
            secrets[i].index: c
            for r, batch in zip(parts, res, strict=True)
            for i, c in zip(r, batch, strict=True)
        }

    def corona_round2(
        self, ctx: CertContext, signers: Sequence[int], commitments: Mapping[int, bytes]
    ) -> dict[int, bytes]:
        """Round-2 responses of ``signers``, each computed in its round-1 worker."""
        mine: list[list[int]] = [[] for _ in range(self.workers)]
        for i in signers:
            mine[self._owner[i]].append(i)
        commits = dict(commitments)
        res = self._broadcast("round2", [(ctx, list(signers), commits, m) for m in mine])
        return {
            i: r for m, batch in zip(mine, res, strict=True) for i, r in zip(m, batch, strict=True)
        }

    def corona_drop(self, ctx: CertContext) -> int:
        """Discard every worker's state for ``ctx``'s session (unanswered signers)."""
        return sum(self._broadcast("drop", [(self._session(ctx),)] * self.workers))

    @staticmethod
    def _session(ctx: CertContext) -> bytes:
        from zapstack.consensus.digest import corona_session_id

        return corona_session_id(ctx.chain_id, ctx.height, ctx.round, ctx.vset_root)

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("exit", ()))
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> SigningPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
