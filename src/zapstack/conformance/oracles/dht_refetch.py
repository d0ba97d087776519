"""A readable model of the passive chunk pull, written from the docs alone.

The oracle of the ``dht_refetch`` suite: :func:`expected` reads a case's
``input`` (``docs/formats/vectors-dht.md``) and returns its ``expected``
object, from ``chunks.md`` §1 (synthetic blocks, chunk root), §2 (CHUNK
encoding), §3 steps 1, 3, 4, 5, 6 (the policy-free core), ``dht.md`` §2 (the
envelope) and ``zap.md`` §7 (RFC 6962 Merkle trees and audit paths).  It
imports nothing from :mod:`zapstack.dht` or :mod:`zapstack.zap`.

The model is one :class:`_Pull` holding the accepted header's commitment
``(chunk_root, payload_len)``, the verified chunks, per-stream byte buffers,
and three peer sets: liars (definitive blame), commitment failures per
commitment, and disconnected peers (whose later ops are ignored).
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["BadInput", "check_input", "expected", "expected_or_error"]

CHUNK = 65_536
HEADER_FIXED = 48
MAGIC = b"ZSYN"
GARBAGE = bytes([0x02, 0x88, 0, 0, 0, 0])
"""vectors-dht.md: the ``garbage`` op's bytes (version 2)."""
KEYS = {
    "block_seed", "header_len", "payload_len", "block_id", "chunk_root", "chunk_count",
    "trusted_header", "providers", "schedule",
}  # fmt: skip
OPS = {
    "header": {"peer", "tamper"}, "chunk": {"peer", "index", "tamper"},
    "bytes": {"peer", "index", "len"}, "end": {"peer", "index"},
    "garbage": {"peer", "index"}, "disconnect": {"peer"},
}  # fmt: skip
PAYLOAD_BOUNDS = {
    0x01: (0, 0), 0x81: (0, 0), 0x02: (32, 32), 0x82: (1, 1 + 20 * 288),
    0x03: (32, 32), 0x83: (33, 32 + 65536), 0x04: (33, 32 + 65536), 0x84: (0, 0),
    0x05: (34, 288), 0x85: (0, 0), 0x06: (32, 32), 0x86: (2, 2 + 40 * 288),
    0x07: (32, 32), 0x87: (37, 36 + 2 * 16384), 0x08: (36, 36),
    0x88: (42, 32 + 4 + 4 + 65536 + 1 + 32 * 32),
}  # fmt: skip
"""dht.md §4: message type -> payload_len bounds (any other type: UNKNOWN_KIND)."""
HEADER_TAMPERS = {"none", "filler", "root"}
CHUNK_TAMPERS = {"none", "data", "proof", "short", "wrong_index", "block_id"}


class BadInput(Exception):
    """The input does not have the documented shape (``{"error": "BAD_INPUT"}``)."""


# ------------------------------------------------------------ zap.md §7, chunks.md §1


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """Merkle tree hash over leaf hashes."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return sha(b"\x01", mth(leaves[:k]), mth(leaves[k:]))


def audit_path(leaves: list[bytes], m: int) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]), bottom-up."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*audit_path(leaves[:k], m), mth(leaves[k:])]
    return [*audit_path(leaves[k:], m - k), mth(leaves[:k])]


def root_from_path(leaf: bytes, m: int, n: int, path: list[bytes]) -> bytes | None:
    """The root a leaf at ``m`` of ``n`` and its bottom-up path imply (None: wrong length)."""
    if n == 1:
        return leaf if not path else None
    if not path:
        return None
    k = _split(n)
    if m < k:
        left = root_from_path(leaf, m, k, path[:-1])
        return None if left is None else sha(b"\x01", left, path[-1])
    right = root_from_path(leaf, m - k, n - k, path[:-1])
    return None if right is None else sha(b"\x01", path[-1], right)


def expand(seed: bytes, m: int) -> bytes:
    out = b"".join(sha(seed, i.to_bytes(4, "little")) for i in range((m + 31) // 32))
    return out[:m]


def synthetic_block(seed: bytes, header_len: int, payload_len: int) -> tuple[bytes, bytes]:
    """(header, payload) of chunks.md §1's synthetic block."""
    payload = expand(seed + b"payload", payload_len)
    chunks = [payload[j : j + CHUNK] for j in range(0, payload_len, CHUNK)]
    root = mth([sha(b"\x00", c) for c in chunks])
    fixed = MAGIC + header_len.to_bytes(4, "little") + payload_len.to_bytes(8, "little") + root
    return fixed + expand(seed + b"filler", header_len - HEADER_FIXED), payload


# ------------------------------------------------------------ the pull


class _Pull:
    def __init__(self, block_id: bytes, header: bytes, payload: bytes, trusted: bool) -> None:
        self.block_id, self.true_header, self.payload = block_id, header, payload
        self.n = -(-len(payload) // CHUNK)
        self.chunks = [payload[j * CHUNK : (j + 1) * CHUNK] for j in range(self.n)]
        self.leaves = [sha(b"\x00", c) for c in self.chunks]
        self.commit: tuple[bytes, int] | None = None  # (chunk_root, payload_len) in force
        self.header: bytes | None = None
        self.header_from: str | None = None  # None: trusted
        self.kept: tuple[tuple[bytes, int], dict[int, bytes]] | None = None
        self.have: dict[int, bytes] = {}
        self.liars: set[str] = set()
        self.fails: dict[tuple[bytes, int], set[str]] = {}
        self.gone: set[str] = set()
        self.streams: dict[tuple[str, int], bytes] = {}
        self.result: bytes | None = None
        self.duplicates = 0
        if trusted:
            self.accept_header(None, header)

    # chunks.md §3 step 1 (a header is judged only while none is in force)
    def accept_header(self, peer: str | None, header: bytes) -> None:
        if len(header) < HEADER_FIXED or header[:4] != MAGIC:
            self.liars.add(str(peer))
            return
        hlen = int.from_bytes(header[4:8], "little")
        if hlen != len(header):
            self.liars.add(str(peer))
            return
        commit = (header[16:48], int.from_bytes(header[8:16], "little"))
        if self.kept is None or self.kept[0] != commit:
            self.have = {}
        self.commit, self.header, self.header_from = commit, header, peer
        if len(self.have) == -(-commit[1] // CHUNK):
            self.finish()

    def n_of(self) -> int:
        assert self.commit is not None
        return -(-self.commit[1] // CHUNK)

    # step 3
    def verifies(self, index: int, data: bytes, proof: list[bytes]) -> bool:
        assert self.commit is not None
        root, plen = self.commit
        n = self.n_of()
        if index >= n or len(data) != min(CHUNK, plen - index * CHUNK):
            return False
        return root_from_path(sha(b"\x00", data), index, n, proof) == root

    def chunk(
        self, peer: str, block_id: bytes, index: int, data: bytes, proof: list[bytes]
    ) -> None:
        if block_id != self.block_id:
            self.liars.add(peer)
        elif self.commit is None:
            return  # no header: dropped without blame
        elif not self.verifies(index, data, proof):
            self.fails.setdefault(self.commit, set()).add(peer)
        elif index in self.have:
            self.duplicates += 1
        else:
            self.have[index] = data
            if len(self.have) == self.n_of():
                self.finish()

    # step 6
    def finish(self) -> None:
        assert self.header is not None and self.commit is not None
        payload = b"".join(self.have[i] for i in range(self.n_of()))
        block = self.header + payload
        if sha(block) == self.block_id:
            self.result = block
        elif self.header_from is not None:  # the provider's header lied: drop it, keep chunks
            self.liars.add(self.header_from)
            self.kept = (self.commit, self.have)
            self.commit = self.header = self.header_from = None

    # dht.md §2 and chunks.md §2: one message per response stream, which must be a CHUNK
    def stream_bytes(self, peer: str, index: int, data: bytes) -> None:
        buf = self.streams.get((peer, index), b"") + data
        self.streams[(peer, index)] = buf
        bounds = PAYLOAD_BOUNDS.get(buf[1]) if len(buf) >= 2 else (0, 0)
        plen = int.from_bytes(buf[2:6], "little") if len(buf) >= 6 else None
        bad = (
            buf[0] != 1
            or bounds is None
            or (plen is not None and not bounds[0] <= plen <= bounds[1])
        )
        if bad:
            del self.streams[(peer, index)]
            self.liars.add(peer)
        elif plen is not None and len(buf) >= 6 + plen:
            del self.streams[(peer, index)]  # the message ended the stream
            self.message(peer, index, buf[1], buf[6 : 6 + plen])

    def message(self, peer: str, index: int, kind: int, p: bytes) -> None:
        """A whole message from stream ``(peer, index)``: only a well-formed CHUNK counts."""
        dlen = int.from_bytes(p[36:40], "little")
        count = p[40 + dlen] if kind == 0x88 and 40 + dlen < len(p) else -1
        if kind != 0x88 or not 1 <= dlen <= CHUNK or not 0 <= count <= 32:
            self.liars.add(peer)  # a reply of another type, or a malformed CHUNK
            return
        if len(p) != 41 + dlen + 32 * count:
            self.liars.add(peer)
            return
        data, at = p[40 : 40 + dlen], 41 + dlen
        proof = [p[at + 32 * j : at + 32 * (j + 1)] for j in range(count)]
        if int.from_bytes(p[32:36], "little") != index:
            self.liars.add(peer)  # a wrong echo
        else:
            self.chunk(peer, p[:32], index, data, proof)

    def stream_ended(self, peer: str, index: int) -> None:
        if self.streams.pop((peer, index), b""):
            self.liars.add(peer)  # TRUNCATED: an incomplete message


def _flip(b: bytes, at: int) -> bytes:
    return b[:at] + bytes([b[at] ^ 1]) + b[at + 1 :]


def _encode_chunk(pull: _Pull, index: int) -> bytes:
    data, proof = pull.chunks[index], audit_path(pull.leaves, index)
    body = pull.block_id + index.to_bytes(4, "little") + len(data).to_bytes(4, "little") + data
    body += bytes([len(proof)]) + b"".join(proof)
    return bytes([1, 0x88]) + len(body).to_bytes(4, "little") + body


def _apply(pull: _Pull, op: dict[str, Any]) -> None:
    kind, peer = op["op"], op["peer"]
    if pull.result is not None or peer in pull.gone:
        return  # a complete pull ignores everything; a disconnected peer is gone
    if kind == "disconnect":
        pull.gone.add(peer)
        pull.streams = {k: v for k, v in pull.streams.items() if k[0] != peer}
    elif kind == "header":
        tampered = {"none": pull.true_header, "filler": _flip(pull.true_header, 48),
                    "root": _flip(pull.true_header, 16)}[op["tamper"]]  # fmt: skip
        if pull.commit is None:
            pull.accept_header(peer, tampered)
    elif kind == "chunk":
        i, tamper = op["index"], op["tamper"]
        block_id, data, proof = pull.block_id, pull.chunks[i], audit_path(pull.leaves, i)
        if tamper == "data":
            data = _flip(data, len(data) - 1)
        elif tamper == "proof" and proof:
            proof = [_flip(proof[0], 0), *proof[1:]]
        elif tamper == "short":
            data = data[:-1]
        elif tamper == "wrong_index":
            i = (i + 1) % pull.n
        elif tamper == "block_id":
            block_id = _flip(block_id, 0)
        pull.streams.pop((peer, i), None)  # the whole response of stream (peer, i)
        pull.chunk(peer, block_id, i, data, proof)
    elif kind == "bytes":
        pull.stream_bytes(peer, op["index"], _encode_chunk(pull, op["index"])[: op["len"]])
    elif kind == "garbage":
        pull.stream_bytes(peer, op["index"], GARBAGE)
    else:
        pull.stream_ended(peer, op["index"])


def _check_op(op: Any, n: int) -> None:
    """One schedule op: its row's fields exactly, a known tamper, an index < n."""
    fields = OPS.get(str(op.get("op"))) if isinstance(op, dict) else None
    if fields is None or set(op) != fields | {"op"} or not isinstance(op["peer"], str):
        raise BadInput(f"op {op!r}")
    index, tamper = op.get("index", 0), op.get("tamper", "none")
    tampers = HEADER_TAMPERS if op["op"] == "header" else CHUNK_TAMPERS
    if type(index) is not int or not 0 <= index < n or tamper not in tampers:
        raise BadInput(f"op {op!r}")
    if op["op"] == "bytes" and (type(op["len"]) is not int or op["len"] < 1):
        raise BadInput(f"op {op!r}")


def check_input(inp: Any) -> tuple[bytes, bytes]:
    """(header, payload) of a well-formed input; :class:`BadInput` otherwise."""
    if not isinstance(inp, dict) or set(inp) != KEYS:
        raise BadInput("input keys")
    hlen, plen, seed = inp["header_len"], inp["payload_len"], inp["block_seed"]
    if type(inp["trusted_header"]) is not bool or not isinstance(inp["providers"], list):
        raise BadInput("trusted_header: a bool; providers: a list")
    if type(hlen) is not int or type(plen) is not int or not isinstance(seed, str):
        raise BadInput("header_len, payload_len: integers; block_seed: hex")
    if hlen <= HEADER_FIXED or not 1 <= plen <= 1 << 28 or len(seed) != 64:
        raise BadInput("header_len > 48, 1 <= payload_len, a 32-byte seed")
    header, payload = synthetic_block(bytes.fromhex(seed), hlen, plen)
    n = -(-plen // CHUNK)
    if (inp["block_id"], inp["chunk_root"], inp["chunk_count"]) != (
        sha(header, payload).hex(),
        header[16:48].hex(),
        n,
    ):
        raise BadInput("block_id, chunk_root or chunk_count not those of the seed")
    if not isinstance(inp["schedule"], list):
        raise BadInput("schedule: a list")
    for op in inp["schedule"]:
        _check_op(op, n)
    return header, payload


def expected(inp: Any) -> dict[str, Any]:
    """The ``expected`` object of a ``dht_refetch`` input (or :class:`BadInput`)."""
    header, payload = check_input(inp)
    pull = _Pull(bytes.fromhex(inp["block_id"]), header, payload, inp["trusted_header"])
    for op in inp["schedule"]:
        _apply(pull, op)
    blamed = set(pull.liars)
    if pull.commit is not None and (pull.header_from is None or pull.result is not None):
        blamed |= pull.fails.get(pull.commit, set())
    missing = [i for i in range(pull.n_of()) if i not in pull.have] if pull.commit else []
    return {
        "complete": pull.result is not None,
        "block_sha256": sha(pull.result).hex() if pull.result is not None else "",
        "blamed": sorted(blamed),
        "missing": missing,
        "duplicates": pull.duplicates,
    }


def expected_or_error(inp: Any) -> dict[str, Any]:
    """Like :func:`expected`; a malformed input gives ``{"error": "BAD_INPUT"}``."""
    try:
        return expected(inp)
    except (BadInput, ValueError):
        return {"error": "BAD_INPUT"}
