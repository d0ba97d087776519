"""Consensus: QuasarCert legs, CertPolicy tiers and the sans-IO round (LP-0202 §3).

Layout
------
* :mod:`.digest`      per-leg transcript digest, leg ids
* :mod:`.validators`  validator set, PoP admission, root, bitmaps
* :mod:`.legs`        BLS, Pulsar, Corona (Ringtail), Magnetar
* :mod:`.cert`        QuasarCert wire format and verification
* :mod:`.policy`      CertPolicy modes table and launch validation
* :mod:`.tiers`       the pure tier tracker (vector suite ``cert_tiers``)
* :mod:`.round`       one height's round: legs in parallel, ``abandon()``
* :mod:`.finality`    finalized heights; no competing block at a final height
* :mod:`.pool`        persistent signing processes (GIL-holding signers)

Concurrency: everything but :mod:`.pool` is sans-IO and takes ``now_ms``;
``ConsensusRound`` is single-threaded (no lock): the caller serialises the
calls on one round.  Corona (numpy) is imported on first use.
"""

from zapstack.consensus.cert import CertVerdict, QuasarCert, decode, verify_cert
from zapstack.consensus.digest import CertContext, LegId, block_id, leg_digest
from zapstack.consensus.finality import FinalityLedger, FinalizedBlock
from zapstack.consensus.policy import (
    MODES,
    CertPolicy,
    Mode,
    Variant,
    accepted_tier,
    load_policy,
    observed_tier,
    validate_policy,
)
from zapstack.consensus.round import ConsensusRound, Phase
from zapstack.consensus.tiers import Action, Decision, LegEvent, TierTracker, replay
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet, generate_validators

__all__ = [
    "MODES",
    "Action",
    "CertContext",
    "CertPolicy",
    "CertVerdict",
    "ConsensusRound",
    "Decision",
    "FinalityLedger",
    "FinalizedBlock",
    "LegEvent",
    "LegId",
    "Mode",
    "Phase",
    "QuasarCert",
    "TierTracker",
    "ValidatorSecrets",
    "ValidatorSet",
    "Variant",
    "accepted_tier",
    "block_id",
    "decode",
    "generate_validators",
    "leg_digest",
    "load_policy",
    "observed_tier",
    "replay",
    "validate_policy",
    "verify_cert",
]
