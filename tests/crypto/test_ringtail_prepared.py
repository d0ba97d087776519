"""Round 2's message-independent half: computed ahead, reused only for identical inputs."""

from __future__ import annotations

import hashlib

import pytest

from zapstack.crypto.ringtail import (
    GroupPublicKey,
    KeyShare,
    SignerSession,
    combine,
    deal,
    prepare,
    round1,
    round2,
    sign_in_process,
    verify,
)
from zapstack.errors import InvalidCert, LocalProtocolError

MSG = b"zapstack corona leg transcript digest.."
SID = b"height=7/round=0"
RNG = b"r" * 32

# the KAT of ringtail.md section 7 (pinned in test_ringtail_signing.py): the same
# run with every round 2 and the combine primed must give the same signature
KAT_SEED = b"zapstack-ringtail-kat-seed-00001"
KAT_SIG_SHA256 = "1bc3be6568a81d35b45e3d825335ea69a5385e157353f4cef3c43dca5ace69ad"

Dealt = tuple[GroupPublicKey, list[KeyShare]]


@pytest.fixture(scope="module")
def kat() -> Dealt:
    return deal(5, 3, KAT_SEED)


def _round1(
    shares: list[KeyShare], signers: tuple[int, ...], rng: bytes = RNG
) -> tuple[dict[int, SignerSession], dict[int, bytes]]:
    states, commits = {}, {}
    for i in signers:
        states[i], commits[i] = round1(shares[i - 1], SID, rng + i.to_bytes(2, "big"))
    return states, commits


def test_primed_rounds_give_the_known_answer(kat: Dealt) -> None:
    pk, shares = kat
    signers = (1, 3, 5)
    states, commits = _round1(shares, signers)
    for i in signers:
        states[i].prime(signers, commits)  # before the message exists
    responses = {i: round2(states[i], MSG, signers, commits) for i in signers}
    prep = prepare(pk, SID, signers, commits)
    sig = combine(pk, MSG, SID, signers, commits, responses, prep)
    assert hashlib.sha256(sig).hexdigest() == KAT_SIG_SHA256
    assert sig == sign_in_process([shares[i - 1] for i in signers], MSG, SID, RNG)
    assert verify(pk, MSG, sig)


def test_prepared_is_reused_only_for_identical_inputs(kat: Dealt) -> None:
    pk, shares = kat
    signers = (1, 3, 5)
    _, commits = _round1(shares, signers)
    prep = prepare(pk, SID, signers, commits)
    assert prep.matches(SID, signers, commits)
    assert not prep.matches(b"another session", signers, commits)
    assert not prep.matches(SID, (1, 3), {1: commits[1], 3: commits[3]})
    flipped = dict(commits)
    blob = bytearray(commits[3])
    blob[-1] ^= 1
    flipped[3] = bytes(blob)
    assert not prep.matches(SID, signers, flipped)


def test_a_stale_prepared_is_recomputed_not_trusted(kat: Dealt) -> None:
    # a prepared made from other commitments must not leak into the answer:
    # primed for set A, asked with set B, the signer answers exactly as an
    # unprimed twin with B's (deterministic) nonces does
    pk, shares = kat
    signers = (1, 3, 5)
    _, commits_a = _round1(shares, signers)
    states_b, commits_b = _round1(shares, signers, b"s" * 32)
    twins, _ = _round1(shares, signers, b"s" * 32)
    for i in signers:
        states_b[i].prepared = prepare(pk, SID, signers, commits_a)  # stale on purpose
    primed = {i: round2(states_b[i], MSG, signers, commits_b) for i in signers}
    plain = {i: round2(twins[i], MSG, signers, commits_b) for i in signers}
    assert primed == plain
    assert verify(pk, MSG, combine(pk, MSG, SID, signers, commits_b, primed))


def test_prime_keeps_round2_single_use(kat: Dealt) -> None:
    _, shares = kat
    signers = (1, 3, 5)
    states, commits = _round1(shares, signers)
    states[1].prime(signers, commits)
    round2(states[1], MSG, signers, commits)
    with pytest.raises(LocalProtocolError, match="nonce reuse"):
        round2(states[1], b"another message", signers, commits)


def test_prepare_checks_commitments(kat: Dealt) -> None:
    pk, shares = kat
    _, commits = _round1(shares, (1, 3, 5))
    with pytest.raises(LocalProtocolError, match="one commitment per signer"):
        prepare(pk, SID, (1, 3), commits)
    with pytest.raises(InvalidCert, match="another session"):
        prepare(pk, b"height=8/round=0", (1, 3, 5), commits)
    with pytest.raises(InvalidCert, match="wrong length"):
        prepare(pk, SID, (1, 3, 5), {**commits, 5: commits[5][:-1]})
