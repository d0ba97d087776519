"""Read-only wallet commands: ``zap account``, ``zap block``, ``zap status``, ``zap api-spec``.

Contract: as :mod:`zapstack.cli.wallet` (``--node``, ``--json``, one-line
errors).  ``zap account`` prints only what it verified itself
(:func:`zapstack.lightclient.proofs.verify_account`) and names the genesis
whose validator set it trusted; a failed check is exit 1.  ``zap api-spec``
writes the OpenAPI document generated from the route table
(:data:`zapstack.node.http.api_spec.OPS`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import typer

from zapstack.cli.wallet import JsonOpt, KeyOpt, NodeOpt, _emit, api, load_key, out
from zapstack.errors import InvalidCert

__all__ = ["account", "api_spec", "block", "status", "status_text"]


def _trusted_genesis(node: str | None, path: Path | None) -> tuple[Any, str]:
    from zapstack.node.genesis import genesis_from_dict, load_genesis

    if path is not None:
        return load_genesis(path), str(path)
    return genesis_from_dict(api(node, "GET", "/v1/genesis")), "the node's own /v1/genesis"


def account(
    account_id: str = typer.Argument(None, help="Account id (default: the key file's)."),
    genesis: Path = typer.Option(
        None, "--genesis", envvar="ZAP_GENESIS", help="Trusted genesis.json (validator set)."
    ),
    key: Path = KeyOpt,
    node: str = NodeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Balance and nonce, with its state proof verified against a cert checked here."""
    from zapstack.lightclient.proofs import verify_account

    if account_id is None:
        account_id = hashlib.sha256(bytes(load_key(key).public_key)).hexdigest()
    g, source = _trusted_genesis(node, genesis)
    doc = api(node, "GET", f"/v1/accounts/{account_id}", ok=(200,))
    result = {"account": account_id, "balance": doc["balance"], "nonce": doc["nonce"],
              "height": doc["height"], "genesis": source}  # fmt: skip
    try:
        checked = verify_account(g, doc)
    except InvalidCert as exc:
        result |= {"verified": False, "error": str(exc)}
        _emit(result, as_json, f"[red]NOT verified[/red]: {exc}")
        raise typer.Exit(1) from None
    result |= {"verified": True, "block_id": checked.block_id.hex(), "tier": checked.tier}
    text = (
        f"account {account_id}\nbalance {checked.balance}\nnonce   {checked.nonce}\n"
        f"proof verified against cert at height {checked.height} "
        f"(block {checked.block_id.hex()[:16]}, tier {checked.tier}; validator set from {source})"
    )
    _emit(result, as_json, text)


def block(
    ref: str = typer.Argument("latest", help="Height, `latest` or block id (64 hex)."),
    node: str = NodeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A finalized block: header, txs, cert tiers."""
    doc = api(node, "GET", f"/v1/blocks/{ref}")
    tier = doc.get("tier") or {}
    lines = [
        f"height {doc['height']}  id {doc['block_id']}",
        f"parent {doc['parent']}\nstate  {doc['state_root']}",
        f"txs {doc['tx_count']}  size {doc['size']} B  round {doc.get('round')}  "
        f"tier {tier.get('accepted')} (observed {tier.get('observed')}, "
        f"legs {', '.join(tier.get('legs', []))})",
    ]
    for tx in doc["txs"]:
        lines.append(
            f"  {tx['tx_id'][:16]} {tx['kind']} {tx['sender'][:12]} -> {tx['recipient'][:12]} "
            f"amount {tx['amount']} fee {tx['fee']} nonce {tx['nonce']}"
        )
    _emit(doc, as_json, "\n".join(lines))


def status_text(doc: dict[str, Any]) -> str:
    """``/v1/status`` for people: one field a line, a record's fields as ``name=value``."""

    def cell(value: Any) -> str:
        if isinstance(value, dict):
            return " ".join(f"{k}={v}" for k, v in value.items())
        return str(value)

    return "\n".join(f"{k:12} {cell(v)}" for k, v in doc.items())


def status(node: str = NodeOpt, as_json: bool = JsonOpt) -> None:
    """The node's view of the chain."""
    doc = api(node, "GET", "/v1/status")
    _emit(doc, as_json, status_text(doc))


def api_spec(
    out_path: Path = typer.Option(Path("docs/openapi.json"), "--out", help="Where to write it."),
) -> None:
    """Write the OpenAPI document generated from the API's route table."""
    from zapstack.node.http.api_spec import OPS, openapi

    out_path.write_text(json.dumps(openapi(OPS), indent=2) + "\n", encoding="utf-8")
    out.print(f"{len(OPS)} operations -> {out_path}", highlight=False)
