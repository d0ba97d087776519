"""Two-round threshold signing: any t of n sign, t-1 cannot, nonces are single-use."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from zapstack.crypto.ringtail import (
    GroupPublicKey,
    KeyShare,
    combine,
    combine_unchecked,
    deal,
    round1,
    round2,
    sign_in_process,
    verify,
    verify_signature,
)
from zapstack.crypto.ringtail.ring import Q, center
from zapstack.crypto.ringtail.signing import _respond, spread_ok
from zapstack.errors import InvalidCert, LocalProtocolError

MSG = b"zapstack corona leg transcript digest.."
SID = b"height=7/round=0"
RNG = b"r" * 32

# Known answer: deal(5, 3, KAT_SEED), signers {1, 3, 5}, sign_in_process(MSG, SID, RNG).
KAT_SEED = b"zapstack-ringtail-kat-seed-00001"
KAT_PK_SHA256 = "a807903b66d554ed1f26608c7904b38a3a778b7cb35884fb8ba27407174a35fe"
KAT_SIG_SHA256 = "1bc3be6568a81d35b45e3d825335ea69a5385e157353f4cef3c43dca5ace69ad"

Dealt = tuple[GroupPublicKey, list[KeyShare]]


@pytest.fixture(scope="module")
def five() -> Dealt:
    return deal(5, 3, b"five-parties-three-threshold-001")


@pytest.fixture(scope="module")
def six() -> Dealt:
    return deal(6, 4, b"six-parties-four-threshold-00001")


def _run(
    shares: list[KeyShare], signers: list[int], sid: bytes = SID
) -> tuple[dict[int, bytes], dict[int, bytes]]:
    states, commitments = {}, {}
    for i in signers:
        states[i], commitments[i] = round1(shares[i - 1], sid, RNG + bytes([i]))
    responses = {i: round2(states[i], MSG, signers, commitments) for i in signers}
    return commitments, responses


@pytest.mark.parametrize("signers", [[1, 2, 3], [1, 3, 5], [2, 4, 5], [1, 2, 4, 5]])
def test_any_t_of_five_sign(five: Dealt, signers: list[int]) -> None:
    pk, shares = five
    commitments, responses = _run(shares, signers)
    sig = combine(pk, MSG, SID, signers, commitments, responses)
    assert len(sig) == 15648
    assert verify(pk, MSG, sig)


@pytest.mark.parametrize("signers", [[1, 2, 3, 4], [3, 4, 5, 6], [1, 2, 5, 6]])
def test_any_t_of_six_sign(six: Dealt, signers: list[int]) -> None:
    pk, shares = six
    sig = sign_in_process([shares[i - 1] for i in signers], MSG, SID, RNG)
    assert verify(pk, MSG, sig)
    assert not verify(five_pk_other(), MSG, sig)


def five_pk_other() -> GroupPublicKey:
    return deal(2, 2, b"an-unrelated-key-for-cross-check")[0]


def test_t_minus_one_cannot_sign(five: Dealt) -> None:
    pk, shares = five
    signers = [2, 4]
    states, commitments = {}, {}
    for i in signers:
        states[i], commitments[i] = round1(shares[i - 1], SID, RNG + bytes([i]))
    with pytest.raises(LocalProtocolError):  # the policy check
        round2(states[2], MSG, signers, commitments)
    # A coalition that skips the policy check still cannot produce a valid signature.
    responses = {
        i: _respond(states[i], states[i]._take_nonces(), MSG, (2, 4), commitments) for i in signers
    }
    with pytest.raises(InvalidCert):
        combine(pk, MSG, SID, signers, commitments, responses)
    sig = combine_unchecked(pk, MSG, SID, signers, commitments, responses)
    assert not verify_signature(pk, MSG, sig)


def test_nonce_reuse_is_refused(five: Dealt) -> None:
    _, shares = five
    signers = [1, 2, 3]
    states, commitments = {}, {}
    for i in signers:
        states[i], commitments[i] = round1(shares[i - 1], SID, RNG + bytes([i]))
    round2(states[1], MSG, signers, commitments)
    assert states[1].used
    with pytest.raises(LocalProtocolError):
        round2(states[1], b"another message", signers, commitments)
    states[2].discard()
    states[2].discard()  # idempotent
    with pytest.raises(LocalProtocolError):
        round2(states[2], MSG, signers, commitments)


def test_failed_round2_does_not_burn_the_session(five: Dealt) -> None:
    _, shares = five
    states, commitments = {}, {}
    for i in (1, 2, 3):
        states[i], commitments[i] = round1(shares[i - 1], SID, RNG + bytes([i]))
    with pytest.raises(LocalProtocolError):
        round2(states[1], MSG, [1, 2, 3], {1: commitments[1], 2: commitments[2]})
    assert not states[1].used
    round2(states[1], MSG, [1, 2, 3], commitments)


def test_responses_are_masked_but_sum_is_short(five: Dealt) -> None:
    _, shares = five
    _, responses = _run(shares, [1, 2, 3])
    zs = [np.frombuffer(r[34:], dtype=np.uint8).reshape(-1, 7) for r in responses.values()]
    values = [np.pad(z, ((0, 0), (0, 1))).view("<i8").reshape(-1) for z in zs]
    for v in values:
        assert int(np.abs(center(v.astype(np.int64))).max()) > Q // 8  # looks uniform
    total = center(sum(v.astype(object) for v in values) % Q)  # type: ignore[arg-type]
    assert max(abs(int(x)) for x in total) < 1 << 44  # masks cancelled: short


def test_commitment_checks(five: Dealt) -> None:
    _, shares = five
    signers = [1, 2, 3]
    states, commitments = {}, {}
    for i in signers:
        states[i], commitments[i] = round1(shares[i - 1], SID, RNG + bytes([i]))
    _, foreign = round1(shares[2], b"another session", RNG)
    with pytest.raises(InvalidCert):
        round2(states[1], MSG, signers, {**commitments, 3: foreign})
    with pytest.raises(InvalidCert):
        round2(states[1], MSG, signers, {**commitments, 3: commitments[2]})
    with pytest.raises(InvalidCert):
        round2(states[1], MSG, signers, {**commitments, 3: commitments[3][:-1]})
    with pytest.raises(LocalProtocolError):
        round2(states[1], MSG, signers, {**commitments, 1: commitments[2]})
    with pytest.raises(LocalProtocolError):
        round2(states[1], MSG, [1, 2, 3, 9], commitments)
    assert not states[1].used


def test_bad_response_breaks_combination(five: Dealt) -> None:
    pk, shares = five
    commitments, responses = _run(shares, [1, 2, 3])
    blob = bytearray(responses[2])
    blob[40] ^= 1
    with pytest.raises(InvalidCert):
        combine(pk, MSG, SID, [1, 2, 3], commitments, {**responses, 2: bytes(blob)})
    with pytest.raises(InvalidCert):  # a response filed under another party
        combine(pk, MSG, SID, [1, 2, 3], commitments, {**responses, 2: responses[3]})
    with pytest.raises(InvalidCert):  # the combiner hashes another message
        combine(pk, b"other", SID, [1, 2, 3], commitments, responses)


def test_round1_binds_session_and_seed(five: Dealt) -> None:
    _, shares = five
    a = round1(shares[0], SID, RNG)[1]
    assert a == round1(shares[0], SID, RNG)[1]
    assert a != round1(shares[0], SID + b"!", RNG)[1]
    assert a != round1(shares[0], SID, b"s" * 32)[1]
    with pytest.raises(LocalProtocolError):
        round1(shares[0], SID, b"short")


def test_spread_check(five: Dealt) -> None:
    rng = np.random.default_rng(5)
    d = rng.integers(0, Q, (8, 49, 256))
    assert spread_ok(d, five[0].params)
    d[:, 1:, :] = d[:1, 1:, :]  # every row equal: rank one in every slot
    assert not spread_ok(d, five[0].params)


def test_known_answer() -> None:
    pk, shares = deal(5, 3, KAT_SEED)
    sig = sign_in_process([shares[0], shares[2], shares[4]], MSG, SID, RNG)
    assert verify(pk, MSG, sig)
    assert hashlib.sha256(pk.to_bytes()).hexdigest() == KAT_PK_SHA256
    assert hashlib.sha256(sig).hexdigest() == KAT_SIG_SHA256
