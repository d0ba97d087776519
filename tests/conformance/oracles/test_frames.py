"""The frames oracle (zap.md read alone) agrees with every vector and with ingress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zapstack.conformance import Case, encode_line, frames
from zapstack.conformance.oracles.frames import CODES, verdict
from zapstack.conformance.runner import run_case
from zapstack.zap.frames import build_transfer
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.sigschemes import Signer, SigScheme

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "pipeline" / "frames.jsonl"
ED = Signer(SigScheme.ED25519, bytes(range(32)))
TX = build_transfer(ED, b"r" * 32, 5, 2, 1)


def test_checked_in_vectors_match_the_independent_model() -> None:
    lines = VECTORS.read_text().splitlines()
    assert len(lines) >= 66
    for line in lines:
        case = json.loads(line)
        if "error" in case["expected"]:
            continue
        inp = case["input"]
        got = verdict(bytes.fromhex(inp["frame"]), inp["stream"], inp["chain_id"])
        assert got == case["expected"], case["id"]


def test_bytes_after_a_frame_are_trailing_data() -> None:
    want = {"verdict": "rejected", "stage": "BODY", "code": CODES["TRAILING_DATA"], "offset": 193}
    assert verdict(TX + b"\x00", "tx", None) == want
    assert run_case(Case("frames", "t", {"stream": "tx", "frame": (TX + TX).hex()}, want)).passed


def test_every_prefix_agrees_with_ingress() -> None:
    """Truncations at every byte: TRUNCATED in the stage of the next pending check."""
    for n in range(len(TX) + 1):
        case = Case("frames", "p", {"stream": "tx", "frame": TX[:n].hex(), "split": 1}, {})
        assert frames.run_case(case) == verdict(TX[:n], "tx", None), n


def test_the_10001st_frame_is_bad_field_at_its_first_byte() -> None:
    txs = [build_transfer(ED, bytes(32), 1, 1, i) for i in range(10_001)]
    block = frames.edge_block(ED, b"".join(txs))
    want = verdict(block, "block", None)
    payload_start = len(block) - 64 - 193 * 10_001
    assert want == {
        "verdict": "rejected",
        "stage": "BODY",
        "code": CODES["BAD_FIELD"],
        "offset": payload_start + 193 * 10_000,
    }
    assert run_case(Case("frames", "big", {"stream": "block", "frame": block.hex()}, want)).passed


def test_expected_values_do_not_come_from_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingress that skips the chain check generates the same file, and fails it."""
    monkeypatch.setattr(IngressMachine, "_check_chain", lambda self, mv, pos: None)
    cases = frames.generate(frames.SEED)
    assert "".join(encode_line(c) + "\n" for c in cases) == VECTORS.read_text(encoding="utf-8")
    failed = {c.id for c in cases if not run_case(c).passed}
    assert failed == {"tx-chain-mismatch", "block-payload-frame-of-another-chain"}


@pytest.mark.parametrize(
    "inp",
    [
        {"stream": "quic", "frame": ""},
        {"stream": "tx", "frame": "zz"},
        {"stream": "tx", "frame": "00", "split": -1},
        {"stream": "tx", "frame": "00", "chain_id": "1"},
        {"stream": "tx", "frame": "00", "extra": 1},
    ],
)
def test_malformed_inputs_are_refused(inp: dict[str, object]) -> None:
    assert run_case(Case("frames", "m", inp, {"error": "BAD_INPUT"})).passed


BLOCK = frames.edge_block(ED, TX + build_transfer(ED, b"s" * 32, 9, 3, 2))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["tx", "block"]),
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=3),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([0, 1, 5, 64]),
)
def test_ingress_agrees_with_the_model_on_mutated_frames(
    stream: str, writes: list[tuple[int, int]], cut: int, split: int
) -> None:
    """Random byte writes, truncations and extensions of a valid tx or block, fed in pieces."""
    data = bytearray(TX if stream == "tx" else BLOCK)
    for at, value in writes:
        data[at % len(data)] = value
    frame = bytes(data[:cut] if cut < 0 else data + bytes(cut))
    inp = {"stream": stream, "frame": frame.hex(), "chain_id": None, "split": split}
    assert frames.run_case(Case("frames", "h", inp, {})) == verdict(frame, stream, None)


def test_ml_dsa_frames_agree_too() -> None:
    """ML-DSA-65 signing is randomised, so these are not in the file; the model still agrees."""
    pq = Signer(SigScheme.MLDSA65, bytes(range(1, 33)))
    tx = build_transfer(pq, b"r" * 32, 5, 2, 1)
    assert len(tx) == 21 + 20 + 1952 + 32 + 24 + 3309
    bad_sig = tx[:-1] + bytes([tx[-1] ^ 1])
    in_block = frames.edge_block(pq, tx)
    for stream, frame in (("tx", tx), ("tx", bad_sig), ("block", in_block)):
        inp = {"stream": stream, "frame": frame.hex(), "split": 0}
        assert frames.run_case(Case("frames", "pq", inp, {})) == verdict(frame, stream, None)
    assert verdict(tx, "tx", None)["verdict"] == "accepted"
    assert verdict(bad_sig, "tx", None)["code"] == CODES["BAD_SIGNATURE"]
