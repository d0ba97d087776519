"""The state_root vector file: expected values come from the readable oracle."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from zapstack.conformance import decode_line, encode_line, run_files, state_root
from zapstack.conformance.envelope import Case
from zapstack.conformance.oracles import state_root as ref
from zapstack.conformance.runner import run_case
from zapstack.zapdb import proofs, smt

FILE = Path(__file__).resolve().parents[2] / "vectors" / "pipeline" / "state_root.jsonl"


def _cases() -> list[Case]:
    return [decode_line(line) for line in FILE.read_text(encoding="utf-8").splitlines()]


def _failed() -> list[str]:
    return [c.id for c in _cases() if not run_case(c).passed]


def test_vector_file_passes_through_the_runner() -> None:
    report = run_files([FILE])[state_root.NAME]
    assert report.failed == 0, report.failures[:1]
    assert report.passed == len(_cases()) >= 100


def test_regeneration_is_byte_identical() -> None:
    text = "".join(encode_line(c) + "\n" for c in state_root.generate(state_root.SEED))
    assert text == FILE.read_text(encoding="utf-8")


def _state(case: Case) -> dict[bytes, bytes]:
    return {bytes.fromhex(k): bytes.fromhex(v) for k, v in case.input["entries"]}


def test_expected_roots_are_the_oracles() -> None:
    for case in _cases():
        if case.input["kind"] in ("root", "prove", "chunk"):
            assert case.expected["root"] == ref.root(_state(case)).hex(), case.id


def test_every_kind_and_verdict_is_present() -> None:
    seen = {(c.input["kind"], c.expected.get("valid")) for c in _cases()}
    assert {("root", None), ("prove", True), ("chunk", True)} <= seen
    for kind in ("verify_proof", "verify_chunk"):
        assert {(kind, True), (kind, False)} <= seen
    terminals = {
        (c.input["kind"], c.expected["terminal"] is None)
        for c in _cases()
        if "terminal" in c.expected
    }
    assert {("prove", True), ("prove", False), ("chunk", True), ("chunk", False)} <= terminals


def test_a_root_with_a_flipped_byte_fails_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(store: smt.NodeStore) -> bytes:
        root = smt.root_of_store(store)
        return bytes([root[0] ^ 1]) + root[1:]

    monkeypatch.setattr(state_root, "root_of_store", wrong)
    assert any(i.startswith("root-") for i in _failed())


def test_a_proof_verifier_that_skips_the_fold_fails_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lenient(root: bytes, key: bytes, value: bytes | None, proof: proofs.Proof) -> bool:
        """Checks the terminal against the claim, never folds up to the root."""
        term, kh = proof.terminal, smt.key_hash(key)
        if value is None:
            return term is None or term[:32] != kh
        return term == kh + hashlib.sha256(value).digest()

    monkeypatch.setattr(state_root, "verify_proof", lenient)
    failed = _failed()
    assert "verify_proof-sibling-flipped-01" in failed and "verify_proof-wrong-root-01" in failed


def test_a_chunk_verifier_that_skips_the_order_check_fails_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def lenient(root: bytes, chunk: proofs.StateChunk) -> bool:
        ordered = tuple(sorted(set(chunk.entries), key=lambda kv: smt.key_hash(kv[0])))
        return proofs.verify_chunk(root, proofs.StateChunk(
            chunk.depth, chunk.index, ordered, chunk.siblings, chunk.terminal
        ))  # fmt: skip

    monkeypatch.setattr(state_root, "verify_chunk", lenient)
    assert {"verify_chunk-unsorted-01", "verify_chunk-duplicate-entry-01"} <= set(_failed())
