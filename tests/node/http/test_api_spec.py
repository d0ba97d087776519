"""The route table registers what it documents; docs/openapi.json is the generated document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiohttp import web

from zapstack.node.http.api_spec import OPS, openapi, route_defs

DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_the_checked_in_document_is_current() -> None:
    expected = json.dumps(openapi(OPS), indent=2) + "\n"
    assert DOC.read_text(encoding="utf-8") == expected, "run `zap api-spec` to regenerate"


def test_every_path_parameter_is_declared_and_every_op_is_unique() -> None:
    doc = openapi(OPS)
    assert doc["openapi"].startswith("3.")
    ids = [op.op_id for op in OPS]
    assert len(ids) == len(set(ids))
    for op in OPS:
        in_path = set(re.findall(r"{(\w+)}", op.path))
        declared = {p.name for p in op.params if p.where == "path"}
        assert in_path == declared, op.path
        entry = doc["paths"][op.path][op.method.lower()]
        assert entry["operationId"] == op.op_id and entry["responses"]
        assert all(s.startswith("/v1/") for s in [op.path])


async def _noop(_: web.Request) -> web.Response:
    return web.json_response({})


def test_a_route_without_handler_or_a_handler_without_route_is_refused() -> None:
    handlers = {op.op_id: _noop for op in OPS}
    assert len(route_defs(OPS, handlers)) == len(OPS)
    with pytest.raises(LookupError):
        route_defs(OPS, {k: v for k, v in handlers.items() if k != "tx"})
    with pytest.raises(LookupError):
        route_defs(OPS, {**handlers, "extra": _noop})
