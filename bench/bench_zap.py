"""ZAP frames vs a codec baseline, measured in one run (issue 2).

Prints: typed field reads/s on a verified view, full-frame validations/s and
MB/s of the streaming ingress machine fed 500-byte txs, the same work done the
codec way (msgspec msgpack: decode into an object, validate, re-encode the
signed part to hash it), the ratio zero-copy : codec, and the raw signature
verify limit (Ed25519, ML-DSA-65) on this machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable

import msgspec

from zapstack.zap import (
    IngressMachine,
    Signer,
    SigScheme,
    build_call,
    parse_tx,
    transcript_digest,
    verify_signature,
)
from zapstack.zap.transcript import TX_DOMAIN

N_TX = 2000
TX_SIZE = 500


def rate(fn: Callable[[], int], budget: float = 1.0) -> float:
    """Units per second of ``fn`` (which returns how many units it did)."""
    fn()  # warm up
    done, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < budget:
        done += fn()
    return done / elapsed


class CodecTx(msgspec.Struct, array_like=True):
    kind: int
    version: int
    scheme: int
    chain_id: int
    pubkey: bytes
    target: bytes
    fee: int
    nonce: int
    data: bytes
    signature: bytes


class CodecUnsigned(msgspec.Struct, array_like=True):
    kind: int
    version: int
    scheme: int
    chain_id: int
    pubkey: bytes
    target: bytes
    fee: int
    nonce: int
    data: bytes


def main() -> None:
    signer = Signer(SigScheme.ED25519, bytes(range(32)))
    data = os.urandom(TX_SIZE - 185)
    frames = [build_call(signer, os.urandom(32), data, 10 + i, i) for i in range(N_TX)]
    assert len(frames[0]) == TX_SIZE
    views = [parse_tx(f) for f in frames]
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(CodecTx)
    codec_frames = [
        enc.encode(
            CodecTx(
                2,
                1,
                1,
                v.chain_id,
                bytes(v.pubkey),
                v.recipient,
                v.fee,
                v.nonce,
                bytes(v.data),
                bytes(v.signature),
            )
        )
        for v in views
    ]

    def zap_reads() -> int:
        s = 0
        for v in views:
            s += v.fee + v.nonce + len(v.data)
        return 3 * len(views)

    def codec_reads() -> int:
        s = 0
        for b in codec_frames:  # the codec must decode before it can read
            t = dec.decode(b)
            s += t.fee + t.nonce + len(t.data)
        return 3 * len(codec_frames)

    def zap_validate() -> int:
        for f in frames:
            v = parse_tx(f, verify_signatures=False)
            v.digest  # noqa: B018 - transcript straight from the buffer
        return len(frames)

    def zap_stream() -> int:
        for f in frames:
            m = IngressMachine(verify_signatures=False)
            for i in range(0, len(f), 128):
                m.receive_data(f[i : i + 128])
            ev = m.next_event()
            assert not isinstance(ev, type(None))
        return len(frames)

    def codec_validate() -> int:
        for b in codec_frames:
            t = dec.decode(b)
            if t.kind != 2 or t.version != 1 or len(t.pubkey) != 32 or len(t.target) != 32:
                raise ValueError("bad")
            if len(t.data) > 16384 or len(t.signature) != 64:
                raise ValueError("bad")
            unsigned = CodecUnsigned(
                t.kind, t.version, t.scheme, t.chain_id, t.pubkey, t.target, t.fee, t.nonce, t.data
            )
            hashlib.sha256(TX_DOMAIN + enc.encode(unsigned)).digest()  # re-marshal to hash
        return len(codec_frames)

    pq = Signer(SigScheme.MLDSA65, bytes(range(32)))
    digest = transcript_digest(TX_DOMAIN, frames[0])
    ed_sig, pq_sig = signer.sign(digest), pq.sign(digest)

    def ed_verify() -> int:
        for _ in range(200):
            verify_signature(SigScheme.ED25519, signer.public_key, digest, ed_sig)
        return 200

    def pq_verify() -> int:
        for _ in range(100):
            verify_signature(SigScheme.MLDSA65, pq.public_key, digest, pq_sig)
        return 100

    results = {
        "field_reads_per_s_zap": rate(zap_reads),
        "field_reads_per_s_codec": rate(codec_reads),
        "validations_per_s_zap": rate(zap_validate),
        "validations_per_s_stream_128B_pieces": rate(zap_stream),
        "validations_per_s_codec": rate(codec_validate),
        "ed25519_verifies_per_s": rate(ed_verify),
        "mldsa65_verifies_per_s": rate(pq_verify),
    }
    results["ingress_MBps_stream"] = results["validations_per_s_stream_128B_pieces"] * TX_SIZE / 1e6
    results["ingress_MBps_whole"] = results["validations_per_s_zap"] * TX_SIZE / 1e6
    print(
        f"ZAP frames, {TX_SIZE} B call txs, {N_TX} distinct frames, one core (python {sys.version.split()[0]})"
    )
    print(
        f"  field reads/s      zero-copy view {results['field_reads_per_s_zap']:>12,.0f}   codec decode+read {results['field_reads_per_s_codec']:>12,.0f}   ratio {results['field_reads_per_s_zap'] / results['field_reads_per_s_codec']:.2f}x"
    )
    print(
        f"  validations/s      ingress (whole) {results['validations_per_s_zap']:>11,.0f}   codec decode+check+re-encode+hash {results['validations_per_s_codec']:>10,.0f}   ratio {results['validations_per_s_zap'] / results['validations_per_s_codec']:.2f}x"
    )
    print(
        f"  streaming ingress  128-byte pieces {results['validations_per_s_stream_128B_pieces']:>11,.0f} frames/s = {results['ingress_MBps_stream']:.1f} MB/s   (whole buffers: {results['ingress_MBps_whole']:.1f} MB/s)"
    )
    print(
        f"  native limit       Ed25519 verifies/s {results['ed25519_verifies_per_s']:>9,.0f}   ML-DSA-65 verifies/s {results['mldsa65_verifies_per_s']:>8,.0f}"
    )
    out = os.environ.get("ZAP_BENCH_JSON")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
