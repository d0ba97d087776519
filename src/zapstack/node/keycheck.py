"""Launch check of a node's secret keys against what genesis lists for it.

Contract
--------
:func:`check_keys` derives each public key from the secret in ``node.json``
and compares it with the validator's genesis entry, in the order of
:data:`CHECKS`; the first mismatch raises one
:class:`~zapstack.errors.ConfigError` that names the key (``bls_sk``,
``mldsa_sk``, ``slhdsa_sk``, ``corona_share``, ``proposer_seed``,
``transport_key``).  A key genesis leaves empty must be empty in
``node.json`` too, and the other way round.  SLH-DSA public keys are not
cheap to derive (a whole hypertree root), so its secret key is checked by its
embedded public half and one signature that must verify under the genesis
key (measured on the 2-core dev box: 22 ms for 128f, 3.5 s for 192s).
"""

from __future__ import annotations

from collections.abc import Callable

from zapstack.crypto import bls, mldsa, slhdsa
from zapstack.errors import ConfigError, ZapError
from zapstack.node.genesis import Genesis, NodeKeys

__all__ = ["CHECKS", "check_keys"]

_PROBE = b"zapstack/keycheck/v1"
"""The message the SLH-DSA launch signature signs (never sent anywhere)."""


def _bls(keys: NodeKeys, g: Genesis) -> bool:
    return bls.public_key(keys.secrets.bls_sk) == g.vset.validators[keys.index].bls_pk


def _mldsa(keys: NodeKeys, g: Genesis) -> bool:
    return mldsa.public_key(keys.secrets.mldsa_sk) == g.vset.validators[keys.index].mldsa_pk


def _slhdsa(keys: NodeKeys, g: Genesis) -> bool:
    sk, pk = keys.secrets.slhdsa_sk, g.vset.validators[keys.index].slhdsa_pk
    params = g.vset.slh_params
    if len(sk) != slhdsa.PARAMS[params].secret_key_size or sk[len(sk) - len(pk) :] != pk:
        return False
    return slhdsa.verify(pk, _PROBE, slhdsa.sign(sk, _PROBE, params), params)


def _corona(keys: NodeKeys, g: Genesis) -> bool:
    share = keys.secrets.corona_share
    to_bytes = getattr(share, "to_bytes", None)
    if to_bytes is None:
        return False
    return bool(
        share.index == keys.index + 1  # type: ignore[union-attr]
        and share.n == g.vset.n  # type: ignore[union-attr]
        and share.public_key.to_bytes() == g.vset.corona_pk  # type: ignore[union-attr]
    )


def _proposer(keys: NodeKeys, g: Genesis) -> bool:
    return keys.proposer.public_key == g.addresses[keys.index].proposer_pk


def _transport(keys: NodeKeys, g: Genesis) -> bool:
    return keys.identity.node_id == g.addresses[keys.index].node_id


def _has_bls(g: Genesis, i: int) -> bool:
    return bool(g.vset.validators[i].bls_pk)


def _has_mldsa(g: Genesis, i: int) -> bool:
    return bool(g.vset.validators[i].mldsa_pk)


def _has_slhdsa(g: Genesis, i: int) -> bool:
    return bool(g.vset.validators[i].slhdsa_pk)


def _has_corona(g: Genesis, i: int) -> bool:
    return bool(g.vset.corona_pk)


def _always(g: Genesis, i: int) -> bool:
    return True


Check = tuple[str, str, Callable[[Genesis, int], bool], Callable[[NodeKeys, Genesis], bool]]

CHECKS: tuple[Check, ...] = (
    ("transport_key", "node_id", _always, _transport),
    ("proposer_seed", "proposer_pk", _always, _proposer),
    ("bls_sk", "bls_pk", _has_bls, _bls),
    ("mldsa_sk", "mldsa_pk", _has_mldsa, _mldsa),
    ("slhdsa_sk", "slhdsa_pk", _has_slhdsa, _slhdsa),
    ("corona_share", "corona_pk", _has_corona, _corona),
)
"""(node.json field, genesis field it must derive, does genesis list one?, the check)."""


def _present(keys: NodeKeys, field: str) -> bool:
    s = keys.secrets
    held = {
        "bls_sk": bool(s.bls_sk),
        "mldsa_sk": bool(s.mldsa_sk),
        "slhdsa_sk": bool(s.slhdsa_sk),
        "corona_share": s.corona_share is not None,
    }
    return held.get(field, True)


def check_keys(keys: NodeKeys, g: Genesis, where: str) -> None:
    """Raise ConfigError naming the first secret key that does not match genesis."""
    for field, public, listed, matches in CHECKS:
        in_genesis, in_file = listed(g, keys.index), _present(keys, field)
        if in_genesis != in_file:
            has, lacks = ("genesis", "node.json") if in_genesis else ("node.json", "genesis")
            raise ConfigError(
                f"{where}: {field}: {has} has a key for validator {keys.index}, {lacks} has none"
            )
        if not in_genesis:
            continue
        try:
            ok = matches(keys, g)
        except (ZapError, ValueError) as exc:
            raise ConfigError(f"{where}: {field} is not a valid key: {exc}") from exc
        if not ok:
            raise ConfigError(
                f"{where}: {field} does not derive the {public} genesis lists for "
                f"validator {keys.index}"
            )
