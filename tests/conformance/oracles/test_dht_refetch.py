"""The dht_refetch oracle (the docs read alone) agrees with every vector and with the pull."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.conformance import dht_refetch, encode_line
from zapstack.conformance.oracles import dht_refetch as oracle
from zapstack.conformance.runner import run_case
from zapstack.dht.reassembly import Reassembly
from zapstack.zap import merkle

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "pipeline" / "dht_refetch.jsonl"


def test_checked_in_vectors_match_the_independent_model() -> None:
    lines = VECTORS.read_text().splitlines()
    assert len(lines) >= 39
    for line in lines:
        case = json.loads(line)
        assert oracle.expected_or_error(case["input"]) == case["expected"], case["id"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_audit_paths_match_rfc6962_as_zap_builds_them(n: int) -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(n)]
    root = oracle.mth(leaves)
    assert root == merkle.root_of_leaf_hashes(leaves)
    for m in range(n):
        path = oracle.audit_path(leaves, m)
        assert path == merkle.inclusion_proof(leaves, m)
        assert oracle.root_from_path(leaves[m], m, n, path) == root
        if path:
            assert oracle.root_from_path(leaves[m], m, n, path[:-1]) != root


def test_expected_values_do_not_come_from_the_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reassembler that drops its chunks on every new header generates the same file and
    fails the cases where a liar's header is replaced (chunks.md §3 step 6)."""
    real = Reassembly.adopt

    def forgetful(self: Reassembly, *args: Any) -> None:
        self.buf = None
        real(self, *args)

    monkeypatch.setattr(Reassembly, "adopt", forgetful)
    cases = dht_refetch.generate(dht_refetch.SEED)
    assert "".join(encode_line(c) + "\n" for c in cases) == VECTORS.read_text(encoding="utf-8")
    failed = {c.id for c in cases if not run_case(c).passed}
    lying = {c.id for c in cases if c.id.startswith("refetch") and int(c.id[-2:]) % 6 == 3}
    assert failed and failed <= lying | {"edge-liar-not-caught-before-honest-header"}


@pytest.mark.parametrize(
    "change",
    [
        {"block_id": "00" * 32},
        {"chunk_count": 4},
        {"schedule": [{"op": "chunk", "peer": "p0", "index": 3, "tamper": "none"}]},
        {"schedule": [{"op": "chunk", "peer": "p0", "index": 0, "tamper": "evil"}]},
        {"schedule": [{"op": "header", "peer": "p0", "tamper": "data"}]},
        {"schedule": [{"op": "bytes", "peer": "p0", "index": 0}]},
        {"trusted_header": 1},
        {"extra": 1},
    ],
)
def test_malformed_inputs_are_refused(change: dict[str, Any]) -> None:
    case = dht_refetch._edge_case("x", *dht_refetch._edges()["end-mid-message"])
    bad = type(case)(case.suite, case.id, {**case.input, **change}, {"error": "BAD_INPUT"})
    assert oracle.expected_or_error(bad.input) == {"error": "BAD_INPUT"}
    assert run_case(bad).passed


_PEERS = st.sampled_from(["p0", "p1", "x0", "x1"])
_INDEX = st.integers(min_value=0, max_value=2)
_OP = st.one_of(
    st.fixed_dictionaries(
        {"op": st.just("header"), "peer": _PEERS,
         "tamper": st.sampled_from(["none", "none", "filler", "root"])}
    ),
    st.fixed_dictionaries(
        {"op": st.just("chunk"), "peer": _PEERS, "index": _INDEX,
         "tamper": st.sampled_from(["none", "none", "none", *sorted(oracle.CHUNK_TAMPERS)])}
    ),
    st.fixed_dictionaries(
        {"op": st.just("bytes"), "peer": _PEERS, "index": _INDEX,
         "len": st.sampled_from([1, 5, 6, 7, 100, 70_000])}
    ),
    st.fixed_dictionaries({"op": st.sampled_from(["end", "garbage"]), "peer": _PEERS,
                           "index": _INDEX}),
    st.fixed_dictionaries({"op": st.just("disconnect"), "peer": _PEERS}),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.booleans(), st.lists(_OP, max_size=14))
def test_the_pull_agrees_with_the_model_on_random_schedules(
    trusted: bool, schedule: list[dict[str, Any]]
) -> None:
    case = dht_refetch._edge_case("h", trusted, schedule)
    assert dht_refetch.run_case(case) == case.expected
