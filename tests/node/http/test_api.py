"""The /v1 JSON API of a running ``zap node`` (one validator), with a real HTTP client.

Expected values come from outside the API: block ids are sha256 of the block files the
node wrote (BlockStore), a tx's id is parse_tx of the frame we built, the proof is checked
with zapdb.verify_proof against the state root parsed from the certified block, and the
answer codes are the pool's rules (docs/formats/mempool.md)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from types import SimpleNamespace
from typing import Any

import aiohttp

from zapstack.consensus.cert import decode as decode_cert
from zapstack.consensus.cert import verify_cert
from zapstack.mempool import Mempool
from zapstack.mempool.handler import TxSubmitService
from zapstack.mempool.receive import TxReceiver
from zapstack.node.blockstore import BlockStore
from zapstack.node.http.api import ApiConfig, routes
from zapstack.node.http.server import MAX_BODY, NodeHttp
from zapstack.node.txindex import ChainIndex
from zapstack.verify import account_key
from zapstack.zap import build_transfer, parse_block, parse_tx
from zapstack.zapdb import verify_proof

Reply = tuple[int, Any]


async def _get(s: aiohttp.ClientSession, path: str) -> Reply:
    async with s.get(path) as r:
        return r.status, await r.json()


async def _post(s: aiohttp.ClientSession, data: Any, ctype: str = "text/plain") -> Reply:
    async with s.post("/v1/txs", data=data, headers={"Content-Type": ctype}) as r:
        return r.status, await r.json()


def test_status_genesis_and_blocks(api_chain: Any) -> None:
    api_chain.wait_height(2)
    store = BlockStore(api_chain.home / "blocks")
    block1 = store.block(1)
    assert block1 is not None
    block_id = hashlib.sha256(block1).hexdigest()

    async def main() -> dict[str, Reply]:
        async with aiohttp.ClientSession(api_chain.url) as s:
            paths = ["/v1/status", "/v1/genesis", "/v1/blocks/1", f"/v1/blocks/{block_id}",
                     "/v1/blocks/1?bytes=1", "/v1/blocks/latest", "/v1/blocks/99999999",
                     f"/v1/blocks/{'ab' * 32}", "/v1/blocks/-1", "/v1/blocks/xyz"]  # fmt: skip
            return {p: await _get(s, p) for p in paths}

    got = asyncio.run(main())
    g = api_chain.genesis
    status = got["/v1/status"][1]
    assert (status["chain_id"], status["genesis_id"]) == (g.chain_id, g.genesis_id.hex())
    assert status["node_index"] == 0 and status["height"] >= 2 and not status["halted"]
    assert status["state_sync"] is None and not status["catching_up"]
    assert got["/v1/genesis"] == (200, json.loads(api_chain.genesis_path.read_text()))
    code, doc = got["/v1/blocks/1"]
    assert code == 200 and doc["block_id"] == block_id and doc["height"] == 1
    assert doc["parent"] == g.genesis_id.hex()
    _check_cert(api_chain, doc["cert"], 1, block1)
    assert doc["tier"]["accepted"] is not None and "bls" in doc["tier"]["legs"]
    assert "bytes" not in doc
    assert got[f"/v1/blocks/{block_id}"] == got["/v1/blocks/1"]
    assert got["/v1/blocks/1?bytes=1"][1]["bytes"] == block1.hex()
    assert got["/v1/blocks/latest"][1]["height"] >= 2
    for path, (code, err) in [("/v1/blocks/99999999", (404, "unknown_block")),
                              (f"/v1/blocks/{'ab' * 32}", (404, "unknown_block")),
                              ("/v1/blocks/-1", (400, "bad_ref")),
                              ("/v1/blocks/xyz", (400, "bad_ref"))]:  # fmt: skip
        assert (got[path][0], got[path][1]["error"]["code"]) == (code, err), path


def test_submit_then_tx_status_then_account_with_a_proof(api_chain: Any) -> None:
    g = api_chain.genesis
    alice = api_chain.user(0)
    bob = hashlib.sha256(b"test_api bob").digest()
    frame = build_transfer(alice, bob, 777, 10, 0, g.chain_id)
    tx_id = parse_tx(frame).tx_id.hex()
    stale = build_transfer(alice, bob, 778, 10, 0, g.chain_id)  # nonce 0 again, once used

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession(api_chain.url) as s:
            out["unknown"] = await _get(s, f"/v1/txs/{tx_id}")
            out["first"] = await _post(s, frame, "application/octet-stream")
            out["again"] = await _post(s, "0x" + frame.hex())
            out["json"] = await _post(s, json.dumps({"tx": frame.hex()}), "application/json")
            out["seen"] = await _get(s, f"/v1/txs/{tx_id}")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                out["final"] = await _get(s, f"/v1/txs/{tx_id}")
                if out["final"][1]["status"] == "included":
                    break
                await asyncio.sleep(0.2)
            out["stale"] = await _post(s, stale, "application/octet-stream")
            out["stale_status"] = await _get(s, f"/v1/txs/{parse_tx(stale).tx_id.hex()}")
            out["bob"] = await _get(s, f"/v1/accounts/{bob.hex()}")
            out["nobody"] = await _get(s, f"/v1/accounts/{'00' * 32}")
            out["bad"] = await _get(s, "/v1/accounts/1234")
            out["bad_tx"] = await _get(s, "/v1/txs/nothex")
        return out

    out = asyncio.run(main())
    assert out["unknown"] == (200, {"tx_id": tx_id, "status": "unknown"})
    code, doc = out["first"]
    assert code == 202 and doc["answer"] == {"code": "NO_ERROR", "admitted": True,
        "tx_id": tx_id, "credit": 64, "account_nonce": 0}  # fmt: skip
    for key in ("again", "json"):  # hex text and JSON bodies: the same frame, a DUPLICATE
        code, doc = out[key]
        assert code == 422 and doc["answer"]["code"] == "DUPLICATE" == doc["error"]["code"]
    assert out["seen"][1]["status"] in ("pending", "included")
    final = out["final"][1]
    assert final["status"] == "included" and final["result"] == "applied"
    block = BlockStore(api_chain.home / "blocks").block(final["height"])
    assert block is not None
    ids = [t.tx_id.hex() for t in parse_block(block).txs()]
    assert ids[final["index"]] == tx_id and final["tx"]["amount"] == 777
    code, doc = out["stale"]
    assert code == 422 and doc["answer"]["code"] == "NONCE_TOO_LOW"
    assert doc["answer"]["account_nonce"] == 1
    assert out["stale_status"][1]["status"] == "rejected"
    assert out["stale_status"][1]["code"] == "NONCE_TOO_LOW"
    _check_account(api_chain, out["bob"], bob, 777)
    _check_account(api_chain, out["nobody"], bytes(32), 0)
    assert out["bad"][0] == 400 and out["bad"][1]["error"]["code"] == "bad_account"
    assert out["bad_tx"][0] == 400 and out["bad_tx"][1]["error"]["code"] == "bad_tx_id"


def _check_cert(api_chain: Any, cert_hex: str, height: int, block: bytes) -> None:
    """The cert answered certifies ``block``; the store's may since have been upgraded by
    legs that came later (never downgraded): same block, at least the answered legs."""
    answered = decode_cert(bytes.fromhex(cert_hex))
    legs = verify_cert(answered, api_chain.genesis.vset, block_bytes=block).present
    stored_cert = BlockStore(api_chain.home / "blocks").cert(height)
    assert stored_cert is not None
    stored = decode_cert(stored_cert)
    assert stored.block_id == answered.block_id
    assert legs <= verify_cert(stored, api_chain.genesis.vset).present


def _check_account(api_chain: Any, reply: Reply, account: bytes, balance: int) -> None:
    from zapstack.node.http.api_views import proof_from_json

    code, doc = reply
    assert code == 200 and doc["balance"] == balance and doc["account"] == account.hex()
    block = bytes.fromhex(doc["block"])
    header = parse_block(block)  # the certified block the answer names
    assert header.height == doc["height"] and header.state_root.hex() == doc["state_root"]
    _check_cert(api_chain, doc["cert"], doc["height"], block)
    value = None if doc["value"] is None else bytes.fromhex(doc["value"])
    proof = proof_from_json(doc["proof"])
    key = account_key(account)
    assert verify_proof(header.state_root, key, value, proof)
    # the proof shows nothing else about this key: not the opposite claim ...
    assert not verify_proof(header.state_root, key, b"\x00" if value is None else None, proof)
    if value is not None:  # ... and a membership proof holds for this key alone (an
        # absence proof ending in an empty subtree rightly holds for every absent key
        # whose path runs into it: with a small state, often another one)
        assert not verify_proof(header.state_root, account_key(b"\x01" * 32), value, proof)


def test_bad_submits_get_4xx_json(api_chain: Any) -> None:
    async def main() -> list[Reply]:
        async with aiohttp.ClientSession(api_chain.url) as s:
            return [
                await _post(s, "zz-not-hex"),
                await _post(s, b"", "application/octet-stream"),
                await _post(s, '{"frame": "00"}', "application/json"),
                await _post(s, b"\x7fZIP" + bytes(60), "application/octet-stream"),
                await _post(s, b"\x00" * (MAX_BODY + 1), "application/octet-stream"),
            ]

    replies = asyncio.run(main())
    codes = [(status, body["error"]["code"]) for status, body in replies]
    assert codes == [(400, "bad_hex"), (400, "empty_body"), (400, "bad_body"),
                     (422, "BAD_MAGIC"), (413, "request_entity_too_large")]  # fmt: skip
    assert replies[3][1]["answer"] == {"code": "BAD_MAGIC", "admitted": False, "tx_id": "",
                                       "credit": 0, "account_nonce": 0}  # fmt: skip


def _fake_node() -> Any:
    """Enough of a node for routes() and /v1/openapi.json."""
    rx = TxReceiver(Mempool())
    return SimpleNamespace(txindex=ChainIndex(), txsvc=TxSubmitService(rx, clock=time.monotonic))


def test_each_client_ip_is_rate_limited_with_a_429_json() -> None:
    config = ApiConfig(rate=1e-6, burst=3)  # no refill within the test: deterministic

    async def main() -> list[tuple[int, str | None, Any]]:
        server = NodeHttp(_fake_node(), "127.0.0.1", 0, tables=[lambda n: routes(n, config)])
        await server.start()
        try:
            async with aiohttp.ClientSession(server.url) as s:
                out = []
                for _ in range(5):
                    async with s.get("/v1/openapi.json") as r:
                        out.append((r.status, r.headers.get("Retry-After"), await r.json()))
                return out
        finally:
            await server.close()

    replies = asyncio.run(main())
    assert [r[0] for r in replies] == [200, 200, 200, 429, 429]
    _, retry, body = replies[3]
    assert body["error"]["code"] == "rate_limited" and retry is not None and int(retry) >= 1
