"""Proof JSON round-trips; account JSON decodes the state value it carries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zapstack.node.http.api_views import account_json, proof_from_json, proof_json
from zapstack.verify import Account
from zapstack.zapdb.proofs import Proof

proofs = st.builds(
    Proof,
    st.lists(st.binary(min_size=32, max_size=32), max_size=8).map(tuple),
    st.none() | st.binary(min_size=64, max_size=64),
)


@given(proofs)
def test_proof_json_round_trips(proof: Proof) -> None:
    assert proof_from_json(proof_json(proof)) == proof


@pytest.mark.parametrize(
    "doc",
    [{"siblings": ["00"], "terminal": None}, {"siblings": [], "terminal": 5}, {"terminal": None},
     {"siblings": ["zz" * 32], "terminal": None}],
)  # fmt: skip
def test_malformed_proofs_are_refused(doc: object) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        proof_from_json(doc)


def test_account_json_reports_the_value_it_proves() -> None:
    value = Account(1234, 7).encode()
    doc = account_json(b"\x01" * 32, b"acct/k", value, Proof((), None), height=3,
                       state_root=b"\x02" * 32, block=b"\x03", cert=None)  # fmt: skip
    assert (doc["balance"], doc["nonce"], doc["value"]) == (1234, 7, value.hex())
    absent = account_json(b"\x01" * 32, b"k", None, Proof((), None), height=0,
                          state_root=b"\x02" * 32, block=None, cert=None)  # fmt: skip
    assert (absent["balance"], absent["nonce"], absent["value"], absent["cert"]) == (
        0,
        0,
        None,
        None,
    )
