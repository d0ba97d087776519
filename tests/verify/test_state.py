"""The state model (docs/formats/state.md): encodings and the per-tx transition."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.errors import ConfigError, InvalidTx, WireCode
from zapstack.verify.state import (
    MAX_SUPPLY,
    Account,
    account_id,
    account_key,
    apply_genesis,
    apply_tx,
    call_key,
    genesis_state,
    read_account,
)
from zapstack.zap import Signer, SigScheme, build_call, build_transfer, parse_tx


class DictTxn:
    """The smallest StateTxn: a dict."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)


def _key(i: int) -> Signer:
    return Signer(SigScheme.ED25519, hashlib.sha256(b"state/%d" % i).digest())


ALICE, BOB, PROP = _key(1), _key(2), _key(3)
A, B, P = (account_id(s.public_key) for s in (ALICE, BOB, PROP))


def test_encodings_are_byte_exact() -> None:
    assert Account(5, 7).encode() == bytes.fromhex("05000000000000000700000000000000")
    assert Account.decode(bytes.fromhex("ff" * 8 + "01" + "00" * 7)) == Account(2**64 - 1, 1)
    assert Account.decode(None) == Account(0, 0)
    assert account_key(A) == b"acct/" + hashlib.sha256(ALICE.public_key).digest()
    assert len(account_key(A)) == 37
    assert call_key(B, A) == b"call/" + B + A and len(call_key(B, A)) == 69


def test_transfer_moves_amount_and_fee() -> None:
    txn = DictTxn(genesis_state({A: 100}))
    apply_tx(txn, parse_tx(build_transfer(ALICE, B, 30, 2, 0)), P)
    assert read_account(txn, A) == Account(68, 1)
    assert read_account(txn, B) == Account(30, 0)
    assert read_account(txn, P) == Account(2, 0)


def test_self_transfer_and_proposer_paying_itself() -> None:
    txn = DictTxn(genesis_state({A: 100}))
    apply_tx(txn, parse_tx(build_transfer(ALICE, A, 30, 2, 0)), P)
    assert read_account(txn, A) == Account(98, 1)
    apply_tx(txn, parse_tx(build_transfer(ALICE, B, 10, 5, 1)), A)  # A proposes its own tx
    assert read_account(txn, A) == Account(88, 2)


def test_zero_accounts_are_absent() -> None:
    txn = DictTxn(genesis_state({A: 10}))
    apply_tx(txn, parse_tx(build_transfer(ALICE, B, 0, 0, 0)), P)
    assert account_key(B) not in txn.data and account_key(P) not in txn.data
    assert read_account(txn, A) == Account(10, 1)


def test_call_stores_data_hash_and_debits_fee() -> None:
    txn = DictTxn(genesis_state({A: 10}))
    apply_tx(txn, parse_tx(build_call(ALICE, B, b"hello", 3, 0)), P)
    assert txn.data[call_key(B, A)] == hashlib.sha256(b"hello").digest()
    assert read_account(txn, A) == Account(7, 1)
    assert read_account(txn, P) == Account(3, 0)


@pytest.mark.parametrize(
    ("tx", "code"),
    [
        (build_transfer(ALICE, B, 1, 0, 1), WireCode.BAD_NONCE),
        (build_transfer(ALICE, B, 100, 1, 0), WireCode.INSUFFICIENT_BALANCE),
        (build_call(ALICE, B, b"", 101, 0), WireCode.INSUFFICIENT_BALANCE),
        (build_transfer(BOB, A, 0, 0, 0), WireCode.NO_ERROR),
    ],
)
def test_failing_checks_write_nothing(tx: bytes, code: WireCode) -> None:
    txn = DictTxn(genesis_state({A: 100}))
    before = dict(txn.data)
    if code is WireCode.NO_ERROR:
        apply_tx(txn, parse_tx(tx), P)
        assert read_account(txn, B) == Account(0, 1)
        return
    with pytest.raises(InvalidTx) as err:
        apply_tx(txn, parse_tx(tx), P, index=4)
    assert err.value.code is code and err.value.index == 4
    assert txn.data == before


def test_credit_overflow_guard_fires_after_the_debit() -> None:
    txn = DictTxn(
        {account_key(A): Account(5, 0).encode(), account_key(B): Account(MAX_SUPPLY, 0).encode()}
    )
    with pytest.raises(InvalidTx) as err:
        apply_tx(txn, parse_tx(build_transfer(ALICE, B, 1, 0, 0)), P)
    assert err.value.code is WireCode.BAD_BLOCK
    assert read_account(txn, A) == Account(4, 1)  # partial write: the executor rolls it back


def test_genesis_checks() -> None:
    assert genesis_state({A: 0, B: 5}) == {account_key(B): Account(5, 0).encode()}
    with pytest.raises(ConfigError):
        genesis_state({A: MAX_SUPPLY, B: 1})
    with pytest.raises(ConfigError):
        genesis_state({b"short": 1})
    with pytest.raises(ConfigError):
        genesis_state({A: -1})
    txn = DictTxn()
    apply_genesis(txn, {A: 3})
    assert read_account(txn, A) == Account(3, 0)


KEYS = [ALICE, BOB, PROP]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.integers(0, 2),
            st.integers(0, 60),
            st.integers(0, 5),
            st.integers(0, 3),
        ),
        max_size=12,
    )
)
def test_supply_is_conserved(ops: list[tuple[int, int, int, int, int]]) -> None:
    """Bank invariant: valid or not, no tx changes the total supply."""
    txn = DictTxn(genesis_state({A: 100, B: 50}))
    for src, dst, amount, fee, nonce in ops:
        dst_id = account_id(KEYS[dst].public_key)
        tx = parse_tx(build_transfer(KEYS[src], dst_id, amount, fee, nonce))
        with contextlib.suppress(InvalidTx):
            apply_tx(txn, tx, P)
        total = sum(read_account(txn, account_id(k.public_key)).balance for k in KEYS)
        assert total == 150
