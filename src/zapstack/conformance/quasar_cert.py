"""Conformance suite ``quasar_cert``: decode and verify outcomes of QuasarCerts.

Line schema: ``docs/formats/vectors-quasar-cert.md``.  Every line carries the
relying party's validator set (4 validators, weights 4/1/1/1, threshold
weight 5, every leg keyed, SLH-DSA-SHA2-128f), the block it expects and the
cert bytes; the expected output is ``malformed``, ``invalid`` (naming the
leg) or ``valid`` (present legs, signers, and the modes the cert meets).

Expected values come from :mod:`zapstack.conformance.oracles.quasar_cert`
(a model of quasarcert.md and certpolicy.md; see its docstring for which
signature checks are library calls).  :func:`run_case` runs the
implementation: :func:`zapstack.consensus.cert.decode`,
:func:`~zapstack.consensus.cert.verify_cert`,
:func:`~zapstack.consensus.policy.observed_tier` and ``meets``.

Keys come from seeds; signing is deterministic (BLS; ML-DSA-65 with
dilithium-py's deterministic variant; SLH-DSA with the pure ``slhdsa``
package's deterministic variant; Ringtail with nonces derived from the
session), so the file regenerates byte for byte.  Generating needs the dev
dependency ``dilithium-py``; running does not.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from zapstack.conformance.envelope import Case
from zapstack.conformance.oracles import quasar_cert as ref
from zapstack.consensus.cert import decode, verify_cert
from zapstack.consensus.digest import CertContext
from zapstack.consensus.policy import MODES, meets, observed_tier
from zapstack.consensus.validators import (
    Validator,
    ValidatorSecrets,
    ValidatorSet,
    generate_validators,
)
from zapstack.crypto import bls
from zapstack.crypto.slhdsa import PARAMS, ParamSet
from zapstack.errors import InvalidCert

__all__ = ["NAME", "SEED", "generate", "run_case"]

NAME = "quasar_cert"
SEED = 0x0C_E7_0001
WEIGHTS = (4, 1, 1, 1)
PARAMS_LABEL = "slh-dsa-sha2-128f"
_KEYS = ("bls_pk", "bls_pop", "mldsa_pk", "slhdsa_pk")


def _vset(inp: dict[str, Any]) -> ValidatorSet:
    validators = [
        Validator(i, v["weight"], **{k: bytes.fromhex(v[k]) for k in _KEYS})
        for i, v in enumerate(inp["validators"])
    ]
    params = ParamSet.from_label(inp["slh_params"])
    return ValidatorSet.create(validators, params, bytes.fromhex(inp["corona_pk"]))


def run_case(case: Case) -> dict[str, Any]:
    """Decode and verify the line's cert with the implementation."""
    inp = case.input
    vset = _vset(inp)
    try:
        cert = decode(bytes.fromhex(inp["cert"]))
    except InvalidCert as exc:
        return {"outcome": "malformed", "error": exc.code.name}
    try:
        verdict = verify_cert(cert, vset, block_bytes=bytes.fromhex(inp["block"]))
    except InvalidCert as exc:
        return {"outcome": "invalid", "error": exc.code.name, "leg": exc.leg}
    present = sorted(verdict.present)
    met = [
        mode.value
        for mode, spec in MODES.items()
        if meets(observed_tier(spec.variant, verdict.present), mode)
    ]
    return {
        "outcome": "valid",
        "present": [leg.label for leg in present],
        "signers": {leg.label: list(verdict.signers[leg]) for leg in present},
        "meets": met,
    }


# -- generator ----------------------------------------------------------------------

Header = tuple[int, int, int, bytes, bytes]


def _bitmap(indices: list[int], nbytes: int = 1) -> bytes:
    out = bytearray(nbytes)
    for i in indices:
        out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def _cert(header: Header, fields: dict[str, bytes]) -> bytes:
    chain_id, height, round_, block_id, root = header
    out = b"QCRT\x01" + struct.pack(">QQI", chain_id, height, round_) + block_id + root
    for leg in ref.LEGS:
        value = fields.get(leg, b"")
        out += struct.pack(">I", len(value)) + value
    return out


class _Signers:
    """Every validator's deterministic signature of each leg, per header."""

    def __init__(self, vset: ValidatorSet, secrets: list[ValidatorSecrets]) -> None:
        from zapstack.conformance.oracles import mldsa65

        self.vset, self.secrets = vset, secrets
        self.mldsa_sk = [mldsa65.keygen(s.mldsa_sk)[1] for s in secrets]
        self._sign_mldsa = mldsa65.sign

    def bls(self, header: Header, who: list[int]) -> list[bytes]:
        digest = ref.leg_digest("bls", header)
        return [bls.sign(self.secrets[i].bls_sk, digest) for i in who]

    def pulsar(self, header: Header, who: list[int]) -> list[bytes]:
        digest = ref.leg_digest("pulsar", header)
        return [self._sign_mldsa(self.mldsa_sk[i], digest) for i in who]

    def magnetar(self, header: Header, who: list[int]) -> list[bytes]:
        import slhdsa

        digest = ref.leg_digest("magnetar", header)
        par = PARAMS[self.vset.slh_params].pure
        return [
            slhdsa.SecretKey.from_digest(self.secrets[i].slhdsa_sk, par).sign_pure(digest)
            for i in who
        ]

    def corona(self, header: Header) -> bytes:
        from zapstack.consensus.legs import corona

        ctx = CertContext(*header)
        sess = corona.session_of(ctx)
        chosen = list(range(self.vset.corona_threshold))
        signers = {i: corona.CoronaSigner(self.secrets[i], sess) for i in chosen}
        commits = {i: s.commitment for i, s in signers.items()}
        responses = {i: s.respond(ctx, chosen, commits) for i, s in signers.items()}
        return corona.aggregate(self.vset, ctx, chosen, commits, responses)


def _model(vset: ValidatorSet) -> ref.VSet:
    validators = [
        {"weight": v.weight, **{k: getattr(v, k) for k in _KEYS}} for v in vset.validators
    ]
    return ref.VSet(validators, PARAMS_LABEL, vset.corona_pk)


def _fields(s: _Signers, a: Header, b: Header) -> dict[str, bytes]:
    """Named leg fields: ``*_ok`` verify for header ``a``; ``*_other_block`` are
    signed for header ``b`` (another block, at round 1)."""
    duo = [0, 1]  # weight 5: exactly the threshold
    b0, b1, b2, b3 = s.bls(a, [0, 1, 2, 3])
    p0, p1, p2, p3 = s.pulsar(a, [0, 1, 2, 3])
    m0, m1 = s.magnetar(a, duo)
    c_ok = s.corona(a)
    agg = bls.aggregate
    return {
        "bls_ok": _bitmap(duo) + agg([b0, b1]),
        "bls_all": _bitmap([0, 1, 2, 3]) + agg([b0, b1, b2, b3]),
        "bls_2_byte_bitmap": _bitmap(duo, 2) + agg([b0, b1]),
        "bls_no_bitmap": agg([b0, b1]),
        "bls_non_member_bit": _bitmap([0, 1, 4]) + agg([b0, b1]),
        "bls_below_threshold": _bitmap([1, 2, 3]) + agg([b1, b2, b3]),
        "bls_heaviest_alone": _bitmap([0]) + b0,
        "bls_signer_twice": _bitmap(duo) + agg([b0, b0, b1]),
        "bls_trailing_byte": _bitmap(duo) + agg([b0, b1]) + b"\x00",
        "bls_other_block": _bitmap(duo) + agg(s.bls(b, duo)),
        "pulsar_ok": _bitmap(duo) + p0 + p1,
        "pulsar_all": _bitmap([0, 1, 2, 3]) + p0 + p1 + p2 + p3,
        "pulsar_heavy_and_light": _bitmap([0, 2, 3]) + p0 + p2 + p3,
        "pulsar_truncated": (_bitmap(duo) + p0 + p1)[:-1],
        "pulsar_trailing_byte": _bitmap(duo) + p0 + p1 + b"\x00",
        "pulsar_duplicate_signature": _bitmap(duo) + p0 + p0,
        "pulsar_non_member_bit": _bitmap([0, 1, 5]) + p0 + p1 + p1,
        "pulsar_below_threshold": _bitmap([1, 2, 3]) + p1 + p2 + p3,
        "pulsar_out_of_order": _bitmap(duo) + p1 + p0,
        "pulsar_other_block": _bitmap(duo) + b"".join(s.pulsar(b, duo)),
        "magnetar_ok": _bitmap(duo) + m0 + m1,
        "magnetar_bad_signature": _bitmap(duo) + m0 + m1[:-7] + bytes([m1[-7] ^ 1]) + m1[-6:],
        "magnetar_other_block": _bitmap(duo) + b"".join(s.magnetar(b, duo)),
        "corona_ok": c_ok,
        "corona_flipped": c_ok[:100] + bytes([c_ok[100] ^ 1]) + c_ok[101:],
        "corona_truncated": c_ok[:-1],
        "corona_other_block": s.corona(b),
    }


_VALID = {  # label -> the fields of header a that the cert carries
    "empty": [],
    "pq-off": ["bls_ok"],
    "pq-fast": ["bls_ok", "pulsar_ok"],
    "pq-strict": ["bls_ok", "pulsar_ok", "corona_ok"],
    "pq-heavy": ["bls_ok", "pulsar_ok", "corona_ok", "magnetar_ok"],
    "strict-pq-fast": ["pulsar_ok"],
    "strict-pq-strict": ["pulsar_ok", "corona_ok"],
    "strict-pq-heavy": ["pulsar_ok", "corona_ok", "magnetar_ok"],
    "bls-every-signer": ["bls_all"],
    "pulsar-every-signer": ["bls_ok", "pulsar_all"],
    "pulsar-heavy-and-light": ["pulsar_heavy_and_light"],
    "corona-alone": ["corona_ok"],
    "magnetar-alone": ["magnetar_ok"],
}
_BAD_LEG = [  # one field that must not verify, with valid legs beside it
    "bls_2_byte_bitmap", "bls_no_bitmap", "bls_non_member_bit", "bls_below_threshold",
    "bls_heaviest_alone", "bls_signer_twice", "bls_trailing_byte", "bls_other_block",
    "pulsar_truncated", "pulsar_trailing_byte", "pulsar_duplicate_signature",
    "pulsar_non_member_bit", "pulsar_below_threshold", "pulsar_out_of_order",
    "pulsar_other_block", "magnetar_bad_signature", "magnetar_other_block", "corona_flipped",
    "corona_truncated", "corona_other_block",
]  # fmt: skip


def _certs(f: dict[str, bytes], a: Header, b: Header) -> list[tuple[str, bytes]]:
    out = [
        (label, _cert(a, {k.split("_")[0]: f[k] for k in keys})) for label, keys in _VALID.items()
    ]
    for bad in _BAD_LEG:
        leg = bad.split("_")[0]
        fields = {"bls": f["bls_ok"], leg: f[bad]}  # a valid leg beside the bad one
        out.append(("bad-" + bad.replace("_", "-"), _cert(a, fields)))
    out.append(("header-of-another-block", _cert(b, {"bls": f["bls_other_block"]})))
    foreign = (a[0], a[1], a[2], a[3], hashlib.sha256(b"another validator set").digest())
    out.append(("foreign-vset-root", _cert(foreign, {})))
    pq_fast = _cert(a, {"bls": f["bls_ok"], "pulsar": f["pulsar_ok"]})
    empty = _cert(a, {})
    over = bytearray(empty[:-4] + struct.pack(">I", (1 << 24) + 1))
    out += [
        ("short-header", pq_fast[:88]),
        ("header-only", pq_fast[:89]),
        ("bad-magic", b"QCRX" + pq_fast[4:]),
        ("bad-version", pq_fast[:4] + b"\x02" + pq_fast[5:]),
        ("trailing-byte", empty + b"\x00"),
        ("zero-padding", pq_fast + bytes(16)),
        ("field-past-end", pq_fast[:-9]),  # the pulsar field loses its last byte
        ("last-length-missing", empty[:-4]),
        ("length-over-limit", bytes(over)),
    ]
    return out


def generate(seed: int) -> list[Case]:
    """Every line; keys from ``seed``, certs for two blocks at height 7."""
    master = hashlib.sha256(b"quasar_cert/%d" % seed).digest()
    vset, secrets = generate_validators(4, master, weights=WEIGHTS, slh_params=ParamSet.SHA2_128F)
    model = _model(vset)
    root = ref.vset_root(model)
    block_a, block_b = b"quasar_cert block A at height 7", b"quasar_cert block B at height 7"
    a: Header = (96369, 7, 0, hashlib.sha256(block_a).digest(), root)
    b: Header = (96369, 7, 1, hashlib.sha256(block_b).digest(), root)
    fields = _fields(_Signers(vset, secrets), a, b)
    validators = [
        {"weight": v["weight"], **{k: v[k].hex() for k in _KEYS}} for v in model.validators
    ]
    cases = []
    for label, cert in _certs(fields, a, b):
        inp = {
            "validators": validators,
            "slh_params": PARAMS_LABEL,
            "corona_pk": vset.corona_pk.hex(),
            "block": block_a.hex(),
            "cert": cert.hex(),
        }
        cases.append(Case(NAME, f"qcert-{label}", inp, ref.expected(cert, model, block_a)))
    return cases
