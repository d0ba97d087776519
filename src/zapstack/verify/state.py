"""The account state model: keys, values and the state-transition function of one tx.

``docs/formats/state.md`` is the normative definition; this module is its
reference implementation.  In short:

* An account is keyed ``b"acct/" || account_id`` (37 bytes) where
  ``account_id = sha256(pubkey)`` (a tx's ``sender``; a transfer's
  ``recipient`` is an account id).  Its value is ``balance u64 LE || nonce u64
  LE`` (16 bytes).  An absent key *is* the account ``(0, 0)``; writing
  ``(0, 0)`` deletes the key, so the state root is canonical.
* A call stores ``sha256(data)`` (32 bytes) under
  ``b"call/" || target || sender`` (69 bytes).
* Fees are credited to the block proposer's account (``sha256(proposer
  pubkey)``) as part of each tx.  Nothing is minted or burned after genesis, so
  the total supply is constant and bounded by the genesis check
  (``<= 2**64 - 1``): no balance can overflow.

Every tx checks first (nonce, balance) and writes afterwards, in a fixed order
(sender, then recipient/call record, then proposer), each write reading the
value left by the previous one -- so self-transfers and a proposer paying its
own fee are well defined.  Per-tx undo is the store's: the executor brackets
each tx with ZapDB's ``begin_tx``/``end_tx`` and undoes a failing one with
``rollback(diff)`` (O(diff)).

Concurrency: none here; the serial phase is serial by definition.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from zapstack.errors import ConfigError, InvalidTx, WireCode
from zapstack.zap.schema import FrameKind
from zapstack.zap.views import TxView

__all__ = [
    "ACCOUNT_PREFIX",
    "CALL_PREFIX",
    "MAX_SUPPLY",
    "Account",
    "StateTxn",
    "account_id",
    "account_key",
    "apply_genesis",
    "apply_tx",
    "call_key",
    "genesis_state",
    "read_account",
]

ACCOUNT_PREFIX = b"acct/"
CALL_PREFIX = b"call/"
MAX_SUPPLY = 2**64 - 1
"""Largest total supply a genesis may allocate (so no u64 balance overflows)."""

_ACCOUNT = struct.Struct("<QQ")


class StateTxn(Protocol):
    """What the state model needs of a ZapDB block txn or speculative branch."""

    def get(self, key: bytes) -> bytes | None:
        """The value at ``key``, or None if absent."""
        ...

    def set(self, key: bytes, value: bytes) -> None:
        """Write ``value`` at ``key``."""
        ...

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (no-op if absent)."""
        ...


@dataclass(frozen=True, slots=True)
class Account:
    """One account's value."""

    balance: int = 0
    """Spendable balance, u64."""
    nonce: int = 0
    """Number of txs this account has sent; the next tx must carry exactly this."""

    def encode(self) -> bytes:
        """``balance u64 LE || nonce u64 LE``."""
        return _ACCOUNT.pack(self.balance, self.nonce)

    @classmethod
    def decode(cls, value: bytes | None) -> Account:
        """Decode a stored value (None = absent = the zero account)."""
        if value is None:
            return _ZERO
        balance, nonce = _ACCOUNT.unpack(value)
        return cls(balance, nonce)

    @property
    def is_zero(self) -> bool:
        """True for ``(0, 0)``, which is stored as an absent key."""
        return self.balance == 0 and self.nonce == 0


_ZERO = Account()


def account_id(pubkey: bytes | memoryview) -> bytes:
    """``sha256(pubkey)``: the 32-byte id of the account a key controls."""
    return hashlib.sha256(pubkey).digest()


def account_key(acct: bytes) -> bytes:
    """``b"acct/" || account_id``."""
    return ACCOUNT_PREFIX + acct


def call_key(target: bytes, sender: bytes) -> bytes:
    """``b"call/" || target || sender``: where a call's ``sha256(data)`` is stored."""
    return CALL_PREFIX + target + sender


def read_account(txn: StateTxn, acct: bytes) -> Account:
    """The account ``acct`` (the zero account if absent)."""
    return Account.decode(txn.get(account_key(acct)))


def _write_account(txn: StateTxn, acct: bytes, value: Account) -> None:
    key = account_key(acct)
    if value.is_zero:
        txn.delete(key)
    else:
        txn.set(key, value.encode())


def _credit(txn: StateTxn, acct: bytes, amount: int, index: int) -> None:
    current = read_account(txn, acct)
    balance = current.balance + amount
    if balance > MAX_SUPPLY:  # unreachable from a checked genesis; kept as a guard
        raise InvalidTx("credit overflows u64", code=WireCode.BAD_BLOCK, index=index)
    _write_account(txn, acct, Account(balance, current.nonce))


def _debit_sender(txn: StateTxn, tx: TxView, cost: int, index: int) -> bytes:
    sender = tx.sender
    acct = read_account(txn, sender)
    nonce = tx.nonce
    if nonce != acct.nonce or nonce == MAX_SUPPLY:
        raise InvalidTx(
            f"nonce {nonce}, account expects {acct.nonce}", code=WireCode.BAD_NONCE, index=index
        )
    if acct.balance < cost:
        raise InvalidTx(
            f"balance {acct.balance} < cost {cost}",
            code=WireCode.INSUFFICIENT_BALANCE,
            index=index,
        )
    _write_account(txn, sender, Account(acct.balance - cost, nonce + 1))
    return sender


def _apply_transfer(txn: StateTxn, tx: TxView, proposer: bytes, index: int) -> None:
    amount, fee = tx.amount, tx.fee
    _debit_sender(txn, tx, amount + fee, index)
    _credit(txn, tx.recipient, amount, index)
    _credit(txn, proposer, fee, index)


def _apply_call(txn: StateTxn, tx: TxView, proposer: bytes, index: int) -> None:
    fee = tx.fee
    sender = _debit_sender(txn, tx, fee, index)
    txn.set(call_key(tx.recipient, sender), hashlib.sha256(tx.data).digest())
    _credit(txn, proposer, fee, index)


_HANDLERS: dict[int, Callable[[StateTxn, TxView, bytes, int], None]] = {
    FrameKind.TRANSFER: _apply_transfer,
    FrameKind.CALL: _apply_call,
}
"""TxKind -> state-transition function."""


def apply_tx(txn: StateTxn, tx: TxView, proposer: bytes, index: int = -1) -> None:
    """Apply one tx to ``txn``; ``proposer`` is the fee recipient's account id.

    Raises :class:`~zapstack.errors.InvalidTx` (``BAD_NONCE``,
    ``INSUFFICIENT_BALANCE``, ...) carrying ``index``.  All checks precede the
    first write except the u64 credit guard, so a failing tx normally wrote
    nothing -- but callers must not rely on it: the executor brackets every tx
    with the store's ``begin_tx``/``end_tx`` and rolls a failing one back with
    ``rollback(diff)``.
    """
    handler = _HANDLERS.get(tx.kind)
    if handler is None:
        raise InvalidTx(
            f"no state transition for kind 0x{tx.kind:02x}", code=WireCode.UNKNOWN_KIND, index=index
        )
    handler(txn, tx, proposer, index)


def genesis_state(allocations: Mapping[bytes, int]) -> dict[bytes, bytes]:
    """The key/value set of a genesis allocating ``balance`` to each account id.

    Raises :class:`~zapstack.errors.ConfigError` for a malformed id, a negative
    balance or a total above :data:`MAX_SUPPLY`.  Zero balances are omitted.
    """
    total = 0
    state: dict[bytes, bytes] = {}
    for acct, balance in allocations.items():
        if len(acct) != 32:
            raise ConfigError(f"account id must be 32 bytes, got {len(acct)}")
        if balance < 0:
            raise ConfigError("negative genesis balance")
        total += balance
        if balance:
            state[account_key(acct)] = Account(balance, 0).encode()
    if total > MAX_SUPPLY:
        raise ConfigError(f"genesis supply {total} exceeds 2**64 - 1")
    return state


def apply_genesis(txn: StateTxn, allocations: Mapping[bytes, int]) -> None:
    """Write :func:`genesis_state` into an (empty) txn."""
    for key, value in sorted(genesis_state(allocations).items()):
        txn.set(key, value)
