"""The JSON API's route table: one :class:`Op` per endpoint registers it AND describes it.

Contract
--------
* :data:`OPS` is the single source of the ``/v1`` API: method, path, path and
  query parameters, request body and every response (status, description,
  JSON schema).  :func:`route_defs` turns it into aiohttp routes (one handler
  per ``Op.op_id``; a missing or extra handler is a ``LookupError`` at
  start-up), :func:`openapi` into the OpenAPI 3.1 document served at
  ``/v1/openapi.json`` and checked in as ``docs/openapi.json`` (``zap
  api-spec`` rewrites it; a test keeps it current).  A route therefore cannot
  exist without its description, nor a description without its route.
* Schemas are plain JSON-schema dicts (hex strings for bytes, integers for
  amounts).  Every error body is :data:`ERROR`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["OPS", "Op", "Param", "openapi", "route_defs"]

Schema = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEX32: Schema = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "32 bytes, hex"}
HEX: Schema = {"type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "bytes, hex"}
U64: Schema = {"type": "integer", "minimum": 0}
ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
STATUS: Schema = {
    "type": "object",
    "properties": {
        "chain_id": U64,
        "genesis_id": HEX32,
        "node_index": U64,
        "height": {**U64, "description": "last finalized height (0: genesis only)"},
        "head": HEX32,
        "state_root": HEX32,
        "round": U64,
        "mempool": {**U64, "description": "txs waiting in the pool"},
        "peers": {"type": "array", "items": U64},
        "halted": {"type": "boolean"},
        "catching_up": {"type": "boolean"},
        "state_sync": {
            "type": ["object", "null"],
            "description": "the running state sync's progress (null when none runs)",
            "properties": {
                "target": {**U64, "type": ["integer", "null"], "description": "target height"},
                "chunks": {**U64, "description": "chunks verified"},
                "of": {**U64, "description": "chunks to download (0: depth not chosen yet)"},
                "entries": {**U64, "description": "entries written"},
                "seconds": {"type": "number", "description": "since the sync started"},
                "idle_s": {"type": "number", "description": "since its last progress"},
                "retargets": {**U64, "description": "times it started over at a newer block"},
                "not_found": {
                    **U64,
                    "description": "STATE_CHUNK requests the peers refused NOT_FOUND",
                },
            },
        },
    },
}
TIER: Schema = {
    "type": "object",
    "properties": {
        "legs": {"type": "array", "items": {"type": "string"}},
        "accepted": {"type": ["string", "null"], "description": "policy tier met (final)"},
        "observed": {"type": ["string", "null"], "description": "strongest tier the legs reach"},
    },
}
TX: Schema = {
    "type": "object",
    "properties": {
        "tx_id": HEX32,
        "kind": {"enum": ["transfer", "call"]},
        "sender": HEX32,
        "recipient": HEX32,
        "amount": U64,
        "fee": U64,
        "nonce": U64,
        "size": U64,
    },
}
BLOCK: Schema = {
    "type": "object",
    "properties": {
        "height": U64,
        "block_id": HEX32,
        "parent": HEX32,
        "state_root": HEX32,
        "tx_root": HEX32,
        "timestamp_ms": U64,
        "proposer": HEX32,
        "size": U64,
        "tx_count": U64,
        "txs": {"type": "array", "items": TX},
        "cert": {**HEX, "description": "the QuasarCert (docs/formats/quasarcert.md)"},
        "round": U64,
        "tier": TIER,
        "bytes": {**HEX, "description": "the block frame (only with ?bytes=1)"},
    },
}
TX_STATUS: Schema = {
    "type": "object",
    "required": ["tx_id", "status"],
    "properties": {
        "tx_id": HEX32,
        "status": {"enum": ["pending", "included", "rejected", "unknown"]},
        "height": U64,
        "index": U64,
        "block_id": HEX32,
        "result": {"enum": ["applied"], "description": "a finalized block applies every tx"},
        "code": {"type": "string", "description": "the reject code (status rejected)"},
        "reason": {"type": "string"},
        "tx": TX,
    },
}
ACCOUNT: Schema = {
    "type": "object",
    "properties": {
        "account": HEX32,
        "balance": U64,
        "nonce": U64,
        "height": {**U64, "description": "finalized height whose post-state this is"},
        "state_root": HEX32,
        "key": HEX,
        "value": {"type": ["string", "null"], "description": "the state value, hex; null: absent"},
        "proof": {
            "type": "object",
            "properties": {
                "siblings": {"type": "array", "items": HEX32},
                "terminal": {"type": ["string", "null"]},
            },
        },
        "cert": {"type": ["string", "null"], "description": "cert of `height` (null at 0)"},
        "block": {"type": ["string", "null"], "description": "block `height`, hex (null at 0)"},
    },
}
ANSWER: Schema = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "WireCode name; NO_ERROR = admitted"},
        "admitted": {"type": "boolean"},
        "tx_id": {"type": "string", "description": "hex; empty for a frame refused at 1-4"},
        "credit": U64,
        "account_nonce": U64,
    },
}
SUBMIT: Schema = {
    "type": "object",
    "properties": {"answer": ANSWER, "error": ERROR["properties"]["error"]},
}


@dataclass(frozen=True, slots=True)
class Param:
    """One path or query parameter."""

    name: str
    where: str
    """``path`` or ``query``."""
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    required: bool = True


@dataclass(frozen=True, slots=True)
class Op:
    """One endpoint: how it is routed and how it is described."""

    method: str
    path: str
    op_id: str
    summary: str
    responses: Mapping[int, tuple[str, Schema]]
    """Status -> (description, JSON schema of the body)."""
    params: tuple[Param, ...] = ()
    body: Mapping[str, Schema] | None = None
    """Request content type -> schema (None: no body)."""
    media: str = "application/json"
    """Content type of the success responses."""


_REF = Param("ref", "path", "a height (decimal), `latest`, or a block id (64 hex)")
_BAD = (400, ("bad request (malformed parameter or body)", ERROR))
_404 = (404, ("not found", ERROR))
_429 = (429, ("rate limited: retry after the `Retry-After` seconds", ERROR))

OPS: tuple[Op, ...] = (
    Op("GET", "/v1/status", "status", "The node's view of the chain.", {200: ("status", STATUS)}),
    Op("GET", "/v1/genesis", "genesis", "The genesis the node runs (trust it only if it is "
       "the one you expect: compare `genesis_id`).", {200: ("genesis.json", {"type": "object"})}),
    Op("GET", "/v1/blocks/{ref}", "block", "A finalized block with its cert and tiers.",
       {200: ("the block", BLOCK), **dict([_BAD, _404, _429])},
       (_REF, Param("bytes", "query", "1: include the block frame as hex", required=False))),
    Op("GET", "/v1/txs/{tx_id}", "tx", "Where a tx stands: pending, included, rejected, unknown.",
       {200: ("its status", TX_STATUS), **dict([_BAD, _429])},
       (Param("tx_id", "path", "the tx id (64 hex)", HEX32),)),
    Op("POST", "/v1/txs", "submit", "Submit one tx frame: the TX_SUBMIT admission and answer.",
       {202: ("admitted", SUBMIT), 413: ("body over the size limit", ERROR),
        422: ("rejected: `error.code` is the WireCode", SUBMIT),
        **dict([_BAD, _429])},
       body={"application/octet-stream": {"type": "string", "format": "binary"},
             "text/plain": {**HEX, "description": "the frame as hex (0x optional)"},
             "application/json": {"type": "object", "properties": {"tx": HEX}}}),
    Op("GET", "/v1/accounts/{account}", "account",
       "Balance and nonce with a state proof against the root of a certified block.",
       {200: ("the account and its proof", ACCOUNT), **dict([_BAD, _429])},
       (Param("account", "path", "the account id = sha256(public key), 64 hex", HEX32),)),
    Op("GET", "/v1/events/blocks", "events",
       "Server-sent events: one `block` event per finalized block (data: the block JSON).",
       {200: ("text/event-stream", BLOCK), **dict([_BAD, _429])},
       (Param("from", "query", "replay from this height first (also: Last-Event-ID + 1)",
              U64, required=False),), media="text/event-stream"),
    Op("GET", "/v1/openapi.json", "openapi", "This document.", {200: ("OpenAPI 3.1", {})}),
)  # fmt: skip
"""Every endpoint of the JSON API, in documentation order."""


def route_defs(ops: Sequence[Op], handlers: Mapping[str, Handler]) -> list[web.RouteDef]:
    """aiohttp routes for ``ops``; every op needs exactly one handler and vice versa."""
    missing = {op.op_id for op in ops} ^ set(handlers)
    if missing:
        raise LookupError(f"ops without handler or handlers without op: {sorted(missing)}")
    return [web.route(op.method, op.path, handlers[op.op_id]) for op in ops]


def _operation(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary}
    if op.params:
        out["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
             "description": p.description, "schema": p.schema}
            for p in op.params
        ]  # fmt: skip
    if op.body is not None:
        content = {media: {"schema": schema} for media, schema in op.body.items()}
        out["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status, (description, schema) in sorted(op.responses.items()):
        media = op.media if status < 300 else "application/json"
        content = {media: {"schema": schema}}
        responses[str(status)] = {"description": description, "content": content}
    out["responses"] = responses
    return out


def openapi(ops: Sequence[Op] = OPS, *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``ops`` (deterministic: same ops, same JSON)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zapstack node API",
            "version": version,
            "description": "JSON API of a zapstack node (docs/api.md §4). Bytes are hex.",
        },
        "paths": paths,
    }
