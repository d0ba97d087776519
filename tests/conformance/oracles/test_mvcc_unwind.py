"""The mvcc_unwind model agrees with every vector and, on random op sequences, with ZapDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.conformance import Case, mvcc_unwind
from zapstack.conformance.oracles.mvcc_unwind import expected_or_error
from zapstack.conformance.runner import actual_output

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "pipeline" / "mvcc_unwind.jsonl"


def test_checked_in_vectors_match_the_model() -> None:
    for line in VECTORS.read_text().splitlines():
        case = json.loads(line)
        assert expected_or_error(case["input"]) == case["expected"], case["id"]


_KEY = st.sampled_from(["6b00", "6b01", "6b02", "00", "ffffff"])
_VALUE = st.sampled_from(["", "01", "0203", "ffffffffffffffff"])
_SNAP = st.sampled_from(["a", "b", "ghost"])  # "ghost" is rarely opened
_DIFF = st.sampled_from(["d0", "d1"])  # reused within and across branches
_OP = st.one_of(
    st.fixed_dictionaries({"op": st.just("insert"), "key": _KEY, "value": _VALUE}),
    st.fixed_dictionaries({"op": st.just("delete"), "key": _KEY}),
    st.fixed_dictionaries({"op": st.just("snapshot"), "snap": st.sampled_from(["a", "b"])}),
    st.fixed_dictionaries({"op": st.just("insert_on"), "snap": _SNAP, "key": _KEY, "value": _VALUE}),
    st.fixed_dictionaries({"op": st.just("delete_on"), "snap": _SNAP, "key": _KEY}),
    st.fixed_dictionaries(
        {"op": st.just("tx"), "snap": _SNAP, "diff": _DIFF,
         "writes": st.lists(st.tuples(_KEY, st.one_of(st.none(), _VALUE)).map(list), max_size=3)}
    ),
    st.fixed_dictionaries({"op": st.just("rollback"), "snap": _SNAP, "diff": _DIFF}),
    st.fixed_dictionaries({"op": st.sampled_from(["root_on", "commit", "discard"]), "snap": _SNAP}),
)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(st.lists(_OP, max_size=16), st.integers(min_value=0, max_value=2**32 - 1))
def test_zapdb_agrees_with_the_model_on_random_sequences(
    ops: list[dict[str, Any]], seed: int
) -> None:
    inp = {"initial": [["6b00", "aa"], ["00", "bb"]], "ops": ops, "write_order_seed": seed}
    assert actual_output(Case(mvcc_unwind.NAME, "h", inp, {})) == expected_or_error(inp)
