"""Verify once per node: the verified-signature cache and the cached parallel phase."""

from __future__ import annotations

import hashlib
import threading

import pytest

from zapstack.errors import LocalProtocolError
from zapstack.verify import parallel
from zapstack.verify.parallel import ThreadVerifier, verify_sequential
from zapstack.verify.sigcache import VerifiedCache, cache_key
from zapstack.zap import Signer, SigScheme, build_block, build_transfer, parse_block, parse_tx

USERS = [Signer(SigScheme.ED25519, hashlib.sha256(b"sc%d" % i).digest()) for i in range(4)]
PROPOSER = Signer(SigScheme.ED25519, bytes(32))


def _txs(n: int, forged: set[int] = frozenset()) -> list[bytes]:  # type: ignore[assignment]
    out = []
    for i in range(n):
        raw = build_transfer(USERS[i % 4], bytes(32), 1, 2, i // 4)
        if i in forged:
            raw = raw[:-1] + bytes([raw[-1] ^ 1])
        out.append(raw)
    return out


def _block(raws: list[bytes]):  # type: ignore[no-untyped-def]
    views = [parse_tx(r, verify_signatures=False) for r in raws]
    raw = build_block(
        PROPOSER, height=1, parent=bytes(32), timestamp_ms=0, state_root=bytes(32), txs=views
    )
    return parse_block(raw, verify_signatures=False)


def test_cached_verdicts_equal_the_readable_reference_and_skip_known_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    block = _block(_txs(40, forged={3, 17}))
    cache = VerifiedCache()
    calls = 0
    real = parallel.verify_signature

    def counting(*args: object) -> bool:
        nonlocal calls
        calls += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel, "verify_signature", counting)
    with ThreadVerifier(2, cache=cache) as v:
        first = v.verify(block)
        assert calls == 40 and len(cache) == 38  # only successes are remembered
        second = v.verify(block)
        assert calls == 42  # the two forged txs are checked again, nothing else
    reference = verify_sequential(block)
    assert first == reference and second == reference
    assert [x.index for x in reference.rejected] == [3, 17]
    assert cache.hits == 38


def test_admission_fills_the_cache_block_verify_uses_it() -> None:
    raws = _txs(8)
    cache = VerifiedCache()
    for r in raws[:5]:  # admitted earlier: verified at admission
        cache.add(parse_tx(r))
    block = _block(raws)
    with ThreadVerifier(2, cache=cache) as v:
        assert v.verify(block) == verify_sequential(block)
    assert cache.hits == 5 and cache.misses == 3 and len(cache) == 8


def test_same_tx_id_with_other_signature_bytes_is_not_trusted() -> None:
    good = parse_tx(_txs(1)[0])
    cache = VerifiedCache()
    cache.add(good)
    forged = _block(_txs(1, forged={0}))
    assert forged.tx(0).tx_id == good.tx_id and cache_key(forged.tx(0)) != cache_key(good)
    with ThreadVerifier(1, cache=cache) as v:
        assert not v.verify(forged).ok


def test_cache_is_bounded_fifo() -> None:
    views = [parse_tx(r) for r in _txs(10)]
    cache = VerifiedCache(capacity=4)
    for v in views:
        cache.add(v)
        cache.add(v)  # idempotent
    assert len(cache) == 4
    assert [cache.verified(v) for v in views] == [False] * 6 + [True] * 4
    with pytest.raises(LocalProtocolError):
        VerifiedCache(0)


def test_cache_is_thread_safe() -> None:
    views = [parse_tx(r) for r in _txs(64)]
    cache = VerifiedCache(capacity=32)

    def worker() -> None:
        for v in views:
            cache.add(v)
            cache.verified(v)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 32 and cache.hits + cache.misses == 4 * 64
