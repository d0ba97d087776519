"""Wallet commands against a node's JSON API: ``zap keys|tx|account|block|status``.

Contract
--------
* Every command talks to ``--node URL`` (default ``$ZAP_NODE``, else
  ``http://127.0.0.1:8545``) over aiohttp, never to a data folder, and prints
  rich text or, with ``--json``, one JSON object on stdout.
* ``zap keys new`` writes a key file (``--key``, default ``$ZAP_KEY``, else
  ``~/.zap/key.json``): ``{"scheme": "ed25519", "seed", "public_key",
  "account"}``, created with mode 0600 and never overwritten without
  ``--force``.  ``--devnet-user N --genesis PATH`` writes a devnet's funded
  user key instead.  ``zap keys show`` prints the public half; the seed only
  with ``--secret``.
* ``zap tx send`` reads the sender's committed nonce from the API (or
  ``--nonce``), signs a transfer, submits it (``POST /v1/txs``: the TX_SUBMIT
  admission), prints the answer, then waits for inclusion with a progress
  display on stderr and prints the height.  Exit 1 when it was rejected or not
  included within ``--timeout``.
* ``zap account`` verifies what it prints (:mod:`zapstack.lightclient.proofs`):
  the cert against the validator set of ``--genesis`` (default
  ``$ZAP_GENESIS``), else of the node's own ``/v1/genesis`` -- which it says,
  since a genesis from the node being checked proves only self-consistency.
* Unreachable node, bad answers: a :class:`~zapstack.errors.ZapError` (one
  line, exit 2 via :func:`zapstack.cli.app.main`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import typer
from rich.console import Console

from zapstack.errors import ConfigError, TransportError
from zapstack.zap import Signer, SigScheme, build_transfer

__all__ = ["DEFAULT_NODE", "register"]

DEFAULT_NODE = "http://127.0.0.1:8545"
"""Where the wallet looks for a node when neither ``--node`` nor ``$ZAP_NODE`` says."""

out = Console()
err = Console(stderr=True)

keys_app = typer.Typer(help="Wallet key files (Ed25519).", no_args_is_help=True)
tx_app = typer.Typer(help="Sign and submit txs through a node's API.", no_args_is_help=True)

NodeOpt = typer.Option(
    None, "--node", envvar="ZAP_NODE", help=f"Node API URL (default {DEFAULT_NODE})."
)
KeyOpt = typer.Option(None, "--key", envvar="ZAP_KEY", help="Key file (default ~/.zap/key.json).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")


def _key_path(path: Path | None) -> Path:
    return path if path is not None else Path.home() / ".zap" / "key.json"


def _emit(doc: dict[str, Any], as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(doc))
    else:
        out.print(text, highlight=False, soft_wrap=True)


async def _request(node: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with (
            aiohttp.ClientSession(node, timeout=timeout) as session,
            session.request(method, path, **kw) as r,
        ):
            return r.status, await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise TransportError(f"node {node}: {type(exc).__name__}: {exc}") from None


def api(
    node: str | None, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kw: Any
) -> Any:
    """One request to the node's API; its JSON body (``TransportError`` otherwise)."""
    url = (node or DEFAULT_NODE).rstrip("/")
    status, body = asyncio.run(_request(url, method, path, **kw))
    if status not in ok:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else body
        raise TransportError(f"{method} {path}: HTTP {status}: {message}")
    return body


def load_key(path: Path | None) -> Signer:
    """The signer of a key file."""
    p = _key_path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        return Signer(SigScheme.ED25519, bytes.fromhex(doc["seed"]))
    except FileNotFoundError:
        raise ConfigError(f"no key file {p} (make one with `zap keys new`)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{p} is not a zap key file: {exc}") from None


def _key_doc(signer: Signer, seed: bytes) -> dict[str, str]:
    import hashlib

    pk = bytes(signer.public_key)
    return {
        "scheme": "ed25519",
        "seed": seed.hex(),
        "public_key": pk.hex(),
        "account": hashlib.sha256(pk).digest().hex(),
    }


@keys_app.command("new")
def keys_new(
    key: Path = KeyOpt,
    devnet_user: int = typer.Option(-1, "--devnet-user", help="A devnet's funded user N."),
    genesis: Path = typer.Option(None, "--genesis", help="genesis.json (with --devnet-user)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing key file."),
    as_json: bool = JsonOpt,
) -> None:
    """Make a key file (mode 0600); print its account id."""
    import hashlib

    from zapstack.node.genesis import load_genesis

    if devnet_user >= 0:
        if genesis is None:
            raise typer.BadParameter("--devnet-user needs --genesis PATH")
        devnet_seed = bytes.fromhex(load_genesis(genesis).raw["devnet_seed"])
        seed = hashlib.sha256(devnet_seed + b"user" + devnet_user.to_bytes(4, "big")).digest()
    else:
        seed = os.urandom(32)
    doc = _key_doc(Signer(SigScheme.ED25519, seed), seed)
    p = _key_path(key)
    p.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(p, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{p} exists (use --force to replace it)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f)
    os.chmod(p, 0o600)
    public = {k: doc[k] for k in ("scheme", "public_key", "account")} | {"file": str(p)}
    _emit(public, as_json, f"account {doc['account']}\nkey file {p} (mode 0600)")


@keys_app.command("show")
def keys_show(
    key: Path = KeyOpt,
    secret: bool = typer.Option(False, "--secret", help="Also print the secret seed."),
    as_json: bool = JsonOpt,
) -> None:
    """Print a key file's account id and public key (the seed only with --secret)."""
    signer = load_key(key)
    seed = json.loads(_key_path(key).read_text(encoding="utf-8"))["seed"]
    doc = _key_doc(signer, bytes.fromhex(seed))
    if not secret:
        doc.pop("seed")
    lines = [f"account    {doc['account']}", f"public key {doc['public_key']}"]
    if secret:
        lines.append(f"seed       {doc['seed']}  (secret: anyone holding it can spend)")
    _emit(doc, as_json, "\n".join(lines))


def _wait_included(node: str | None, tx_id: str, timeout: float, quiet: bool) -> dict[str, Any]:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    deadline = time.monotonic() + timeout
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"tx {tx_id[:16]}: waiting for inclusion", total=None)
        while True:
            doc: dict[str, Any] = api(node, "GET", f"/v1/txs/{tx_id}")
            status = doc["status"]
            progress.update(task, description=f"tx {tx_id[:16]}: {status}")
            if status in ("included", "rejected") or time.monotonic() > deadline:
                return doc
            time.sleep(0.25)


@tx_app.command("send")
def tx_send(
    to: str = typer.Option(..., "--to", help="Recipient account id (64 hex)."),
    amount: int = typer.Option(..., "--amount", min=0, help="Amount to transfer."),
    fee: int = typer.Option(10, "--fee", min=0, help="Fee for the proposer."),
    nonce: int = typer.Option(-1, "--nonce", help="Nonce (default: the committed one)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for inclusion."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Inclusion wait, seconds."),
    key: Path = KeyOpt,
    node: str = NodeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Sign a transfer, submit it, print the admission answer and the inclusion height."""
    import hashlib

    try:
        recipient = bytes.fromhex(to)
    except ValueError:
        recipient = b""
    if len(recipient) != 32:
        raise typer.BadParameter("--to must be a 64-hex account id")
    signer = load_key(key)
    sender = hashlib.sha256(bytes(signer.public_key)).hexdigest()
    chain_id = api(node, "GET", "/v1/status")["chain_id"]
    if nonce < 0:
        nonce = api(node, "GET", f"/v1/accounts/{sender}")["nonce"]
    frame = build_transfer(signer, recipient, amount, fee, nonce, chain_id)
    headers = {"Content-Type": "application/octet-stream"}
    doc = api(node, "POST", "/v1/txs", ok=(202, 422, 429), data=frame, headers=headers)
    answer = doc["answer"]
    result: dict[str, Any] = {"answer": answer, "nonce": nonce}
    if not as_json:
        out.print(f"admission: {answer['code']} tx {answer['tx_id']} credit {answer['credit']}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    if answer["admitted"] and wait:
        result["status"] = _wait_included(node, answer["tx_id"], timeout, as_json)
    included = result.get("status", {}).get("status") == "included"
    if included and not as_json:
        st = result["status"]
        out.print(f"included at height {st['height']} (index {st['index']})", highlight=False)
    elif answer["admitted"] and wait and not as_json:
        out.print(f"not included within {timeout:g} s: {result['status']['status']}")
    if as_json:
        print(json.dumps(result))
    if not answer["admitted"] or (wait and not included):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the wallet commands to ``zap``."""
    from zapstack.cli.wallet_read import account, api_spec, block, status

    app.add_typer(keys_app, name="keys")
    app.add_typer(tx_app, name="tx")
    app.command("account")(account)
    app.command("block")(block)
    app.command("status")(status)
    app.command("api-spec")(api_spec)
