"""verify_account: an account answer from a running node checks against our own genesis,
and every tampering (value, proof, root, cert, foreign validator set, height 0) is refused."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from zapstack.errors import InvalidCert
from zapstack.lightclient.proofs import verify_account
from zapstack.node.genesis import load_genesis, make_devnet
from zapstack.verify import Account


@pytest.fixture(scope="module")
def answer(api_chain: Any) -> dict[str, Any]:
    api_chain.wait_height(1)
    alice = hashlib.sha256(bytes(api_chain.user(7).public_key)).hexdigest()
    doc: dict[str, Any] = api_chain.get(f"/v1/accounts/{alice}")
    return doc


def test_a_true_answer_verifies(api_chain: Any, answer: dict[str, Any]) -> None:
    got = verify_account(api_chain.genesis, answer)
    expected = Account.decode(bytes.fromhex(answer["value"]))  # the proven state value
    assert (got.balance, got.nonce) == (expected.balance, expected.nonce)
    assert got.balance > 0 and got.height == answer["height"]
    assert got.block_id == hashlib.sha256(bytes.fromhex(answer["block"])).digest()


def _flip(hex_string: str) -> str:
    return ("1" if hex_string[0] == "0" else "0") + hex_string[1:]


TAMPER = {
    "balance": lambda d: d.update(balance=d["balance"] + 1),
    "value": lambda d: d.update(value=Account(1, 0).encode().hex()),
    "sibling": lambda d: d["proof"]["siblings"].__setitem__(0, _flip(d["proof"]["siblings"][0])),
    "state_root": lambda d: d.update(state_root=_flip(d["state_root"])),
    "block": lambda d: d.update(block=d["block"][:-2] + _flip(d["block"][-2:])),
    "cert": lambda d: d.update(cert=d["cert"][:-2] + _flip(d["cert"][-2:])),
    "height": lambda d: d.update(height=d["height"] + 1),
    "height0": lambda d: d.update(height=0, cert=None, block=None),
    "proof": lambda d: d.update(proof={"siblings": "x"}),
}


@pytest.mark.parametrize("what", sorted(TAMPER))
def test_tampered_answers_are_refused(api_chain: Any, answer: dict[str, Any], what: str) -> None:
    doc = copy.deepcopy(answer)
    TAMPER[what](doc)
    with pytest.raises(InvalidCert):
        verify_account(api_chain.genesis, doc)


def test_a_foreign_validator_set_refuses_the_cert(answer: dict[str, Any], tmp_path: Path) -> None:
    make_devnet(tmp_path, 1, base_port=1, users=1)
    with pytest.raises(InvalidCert):
        verify_account(load_genesis(tmp_path / "genesis.json"), answer)
