"""Conformance suite ``state_root``: roots, proofs and chunk proofs of small states.

Line schema: ``docs/formats/vectors-state-root.md``.  Five kinds of line
(:data:`KINDS`): the root of a key/value set; the proof of a key; the verdict
on a given (possibly tampered) proof; the chunk of a prefix; the verdict on a
given (possibly tampered) chunk.

Expected values come from the readable model
:mod:`zapstack.conformance.oracles.state_root` (written from
``docs/formats/state-root.md``, sharing no code with ZapDB).  :func:`run_case`
runs the implementation: the incremental tree (:func:`~zapstack.zapdb.smt.apply_updates`
over a :class:`~zapstack.zapdb.smt.DictNodeStore`) and
:mod:`zapstack.zapdb.proofs`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from zapstack.conformance.envelope import Case
from zapstack.conformance.oracles import state_root as ref
from zapstack.errors import ConfigError
from zapstack.zapdb.proofs import Proof, StateChunk, make_chunk, prove, verify_chunk, verify_proof
from zapstack.zapdb.smt import DictNodeStore, apply_updates, root_of_store

__all__ = ["KINDS", "NAME", "SEED", "generate", "run_case"]

NAME = "state_root"
SEED = 0x5_7A7E_0001

State = dict[bytes, bytes]


def _hex_or_none(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _state(inp: dict[str, Any]) -> State:
    return {bytes.fromhex(k): bytes.fromhex(v) for k, v in inp["entries"]}


def _store(inp: dict[str, Any]) -> DictNodeStore:
    """The implementation's tree: ``removed`` keys are inserted first, then deleted."""
    store = DictNodeStore()
    removed = [bytes.fromhex(k) for k in inp.get("removed", [])]
    apply_updates(store, [*((k, b"gone") for k in removed), *_state(inp).items()])
    if removed:
        apply_updates(store, [(k, None) for k in removed])
    return store


def _run_root(inp: dict[str, Any]) -> dict[str, Any]:
    return {"root": root_of_store(_store(inp)).hex()}


def _run_prove(inp: dict[str, Any]) -> dict[str, Any]:
    store = _store(inp)
    key = bytes.fromhex(inp["key"])
    proof = prove(store, key)
    root = root_of_store(store)
    return {
        "root": root.hex(),
        "siblings": [s.hex() for s in proof.siblings],
        "terminal": None if proof.terminal is None else proof.terminal.hex(),
        "valid": verify_proof(root, key, _state(inp).get(key), proof),
    }


def _run_verify_proof(inp: dict[str, Any]) -> dict[str, Any]:
    proof = Proof(tuple(bytes.fromhex(s) for s in inp["siblings"]), _hex_or_none(inp["terminal"]))
    key, value = bytes.fromhex(inp["key"]), _hex_or_none(inp["value"])
    return {"valid": verify_proof(bytes.fromhex(inp["root"]), key, value, proof)}


def _run_chunk(inp: dict[str, Any]) -> dict[str, Any]:
    store, state = _store(inp), _state(inp)
    c = make_chunk(store, state.get, inp["depth"], inp["index"])
    root = root_of_store(store)
    return {
        "root": root.hex(),
        "entries": [[k.hex(), v.hex()] for k, v in c.entries],
        "siblings": [s.hex() for s in c.siblings],
        "terminal": None if c.terminal is None else c.terminal.hex(),
        "valid": verify_chunk(root, c),
    }


def _run_verify_chunk(inp: dict[str, Any]) -> dict[str, Any]:
    c = StateChunk(
        inp["depth"],
        inp["index"],
        tuple((bytes.fromhex(k), bytes.fromhex(v)) for k, v in inp["entries"]),
        tuple(bytes.fromhex(s) for s in inp["siblings"]),
        _hex_or_none(inp["terminal"]),
    )
    return {"valid": verify_chunk(bytes.fromhex(inp["root"]), c)}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "root": _run_root,
    "prove": _run_prove,
    "verify_proof": _run_verify_proof,
    "chunk": _run_chunk,
    "verify_chunk": _run_verify_chunk,
}
"""``input.kind`` -> the implementation's answer."""


def run_case(case: Case) -> dict[str, Any]:
    """Run one line against the implementation."""
    handler = KINDS.get(case.input.get("kind", ""))
    if handler is None:
        raise ConfigError(f"state_root: unknown kind {case.input.get('kind')!r}")
    return handler(case.input)


# -- generator ----------------------------------------------------------------------


def _random_state(rng: random.Random, n: int) -> State:
    state: State = {}
    while len(state) < n:
        state[rng.randbytes(rng.randint(1, 12))] = rng.randbytes(rng.randint(0, 8))
    return state


def _states(rng: random.Random) -> dict[str, State]:
    states = {"empty": {}, "one": {b"a": b"1"}, "worked-example": {b"a": b"1", b"b": b"2"}}
    for n in (3, 5, 8, 16, 40):
        states[f"n{n}"] = _random_state(rng, n)
    states["n5"][b"k" * 511] = b""  # the longest key, an empty value
    return states


def _entries(state: State) -> list[list[str]]:
    return [[k.hex(), v.hex()] for k, v in state.items()]


def _h(items: Sequence[bytes]) -> list[str]:
    return [x.hex() for x in items]


def _flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


class _Gen:
    """Collects lines; every expected value is the oracle's."""

    def __init__(self) -> None:
        self.cases: list[Case] = []
        self._n: dict[str, int] = {}

    def add(self, kind: str, label: str, inp: dict[str, Any], expected: dict[str, Any]) -> None:
        tag = f"{kind}-{label}"
        n = self._n[tag] = self._n.get(tag, 0) + 1
        self.cases.append(Case(NAME, f"{tag}-{n:02d}", {"kind": kind, **inp}, expected))

    def root(self, label: str, state: State, removed: Sequence[bytes] = ()) -> None:
        inp: dict[str, Any] = {"entries": _entries(state)}
        if removed:
            inp["removed"] = _h(removed)
        self.add("root", label, inp, {"root": ref.root(state).hex()})

    def prove(self, label: str, state: State, key: bytes) -> None:
        sibs, term = ref.prove(state, key)
        root = ref.root(state)
        expected = {
            "root": root.hex(),
            "siblings": _h(sibs),
            "terminal": None if term is None else term.hex(),
            "valid": ref.verify_proof(root, key, state.get(key), sibs, term),
        }
        self.add("prove", label, {"entries": _entries(state), "key": key.hex()}, expected)

    def verify_proof(
        self, label: str, root: bytes, key: bytes, value: bytes | None,
        sibs: list[bytes], term: bytes | None,
    ) -> None:  # fmt: skip
        inp = {
            "root": root.hex(),
            "key": key.hex(),
            "value": None if value is None else value.hex(),
            "siblings": _h(sibs),
            "terminal": None if term is None else term.hex(),
        }
        self.add(
            "verify_proof", label, inp, {"valid": ref.verify_proof(root, key, value, sibs, term)}
        )

    def chunk(self, label: str, state: State, depth: int, index: int) -> None:
        entries, sibs, term = ref.chunk(state, depth, index)
        root = ref.root(state)
        expected = {
            "root": root.hex(),
            "entries": [[k.hex(), v.hex()] for k, v in entries],
            "siblings": _h(sibs),
            "terminal": None if term is None else term.hex(),
            "valid": ref.verify_chunk(root, depth, index, entries, sibs, term),
        }
        inp = {"entries": _entries(state), "depth": depth, "index": index}
        self.add("chunk", label, inp, expected)

    def verify_chunk(
        self, label: str, root: bytes, depth: int, index: int,
        entries: list[tuple[bytes, bytes]], sibs: list[bytes], term: bytes | None,
    ) -> None:  # fmt: skip
        inp = {
            "root": root.hex(),
            "depth": depth,
            "index": index,
            "entries": [[k.hex(), v.hex()] for k, v in entries],
            "siblings": _h(sibs),
            "terminal": None if term is None else term.hex(),
        }
        valid = ref.verify_chunk(root, depth, index, entries, sibs, term)
        self.add("verify_chunk", label, inp, {"valid": valid})


def _tampered_proofs(g: _Gen, state: State, other: State, rng: random.Random) -> None:
    root = ref.root(state)
    keys = list(state)
    present, second = keys[0], keys[1]
    absent = rng.randbytes(9)
    sibs, term = ref.prove(state, present)
    g.verify_proof("member", root, present, state[present], sibs, term)
    a_sibs, a_term = ref.prove(state, absent)
    g.verify_proof("non-member", root, absent, None, a_sibs, a_term)
    assert term is not None and sibs
    g.verify_proof(
        "sibling-flipped", root, present, state[present], [_flip(sibs[0]), *sibs[1:]], term
    )
    g.verify_proof("wrong-value", root, present, state[present] + b"x", sibs, term)
    g.verify_proof("present-claimed-absent", root, present, None, sibs, term)
    g.verify_proof("absent-claimed-present", root, absent, b"1", a_sibs, a_term)
    g.verify_proof("terminal-flipped", root, present, state[present], sibs, _flip(term, 40))
    g.verify_proof("extra-sibling", root, present, state[present], [*sibs, ref.EMPTY], term)
    g.verify_proof("sibling-dropped", root, present, state[present], sibs[:-1], term)
    g.verify_proof("terminal-63-bytes", root, present, state[present], sibs, term[:63])
    g.verify_proof(
        "sibling-31-bytes", root, present, state[present], [sibs[0][:31], *sibs[1:]], term
    )
    g.verify_proof("wrong-root", ref.root(other), present, state[present], sibs, term)
    g.verify_proof("another-keys-proof", root, second, state[second], sibs, term)
    g.verify_proof("another-keys-proof-absent", root, second, None, sibs, term)
    g.verify_proof("too-many-siblings", root, absent, None, [ref.EMPTY] * 256, None)


def _tampered_chunks(g: _Gen, state: State, other: State) -> None:
    root = ref.root(state)
    entries, sibs, term = ref.chunk(state, 2, 1)
    more, _, _ = ref.chunk(state, 2, 2)
    assert len(entries) >= 2 and term is None and more
    g.verify_chunk("valid", root, 2, 1, entries, sibs, term)
    g.verify_chunk("entry-dropped", root, 2, 1, entries[1:], sibs, term)
    g.verify_chunk("foreign-entry", root, 2, 1, [*entries, more[0]], sibs, term)
    k0, v0 = entries[0]
    g.verify_chunk("value-changed", root, 2, 1, [(k0, v0 + b"x"), *entries[1:]], sibs, term)
    g.verify_chunk("unsorted", root, 2, 1, entries[::-1], sibs, term)
    g.verify_chunk("duplicate-entry", root, 2, 1, [entries[0], *entries], sibs, term)
    g.verify_chunk("sibling-flipped", root, 2, 1, entries, [_flip(sibs[0]), *sibs[1:]], term)
    g.verify_chunk("terminal-added", root, 2, 1, entries, sibs, bytes(64))
    g.verify_chunk("wrong-index", root, 2, 2, entries, sibs, term)
    g.verify_chunk("index-out-of-range", root, 2, 4, entries, sibs, term)
    g.verify_chunk("depth-over-24", root, 25, 1, [], [], None)
    g.verify_chunk("wrong-root", ref.root(other), 2, 1, entries, sibs, term)
    g.verify_chunk("extra-sibling", root, 2, 1, entries, [*sibs, ref.EMPTY, ref.EMPTY], term)
    # a walk that stops early at a lone leaf: dropping the leaf, or claiming it is absent
    one = {b"a": b"1"}
    lone_root = ref.root(one)
    for index in range(4):
        ents, s, t = ref.chunk(one, 2, index)
        g.verify_chunk("lone-leaf", lone_root, 2, index, ents, s, t)
        g.verify_chunk("lone-leaf-terminal-dropped", lone_root, 2, index, ents, s, None)
        if ents:
            g.verify_chunk("lone-leaf-entry-dropped", lone_root, 2, index, [], s, t)


def generate(seed: int) -> list[Case]:
    """Every line, from states drawn with ``seed``."""
    rng = random.Random(seed)
    states = _states(rng)
    g = _Gen()
    for label, state in states.items():
        g.root(label, state)
    removed = [rng.randbytes(5) for _ in range(6)]
    g.root("after-deletes", states["n8"], removed)
    g.root("all-deleted", {}, list(states["n3"]))
    for label in ("empty", "one", "worked-example", "n8", "n40"):
        state = states[label]
        for key in list(state)[:2] + [rng.randbytes(7) for _ in range(2)]:
            g.prove(label, state, key)
    for label in ("n16", "n40"):
        _tampered_proofs(g, states[label], states["n8"], rng)
    for label, depth, indices in [
        ("empty", 1, range(2)), ("one", 2, range(4)), ("n3", 1, range(2)),
        ("n16", 0, [0]), ("n16", 2, range(4)), ("n40", 1, range(2)), ("n40", 3, range(8)),
        ("n40", 8, [0, 77, 255]), ("n40", 24, [0x123456]),
    ]:  # fmt: skip
        for index in indices:
            g.chunk(label, states[label], depth, index)
    _tampered_chunks(g, states["n40"], states["n16"])
    return g.cases
