"""``zap init`` and ``zap genesis``: a network's keys and genesis without a shared seed.

``zap init`` runs on each validator's host and makes its keys there
(:func:`zapstack.node.keygen.init_home`); ``zap genesis`` runs once, on the
trusted dealer's host, over the public files the operators sent
(:func:`zapstack.node.ceremony.build_genesis`).  Bad input is a
:class:`~zapstack.errors.ZapError` or ``typer.BadParameter``: one line on
stderr and exit 2 (:func:`zapstack.cli.app.main`).  Walkthrough:
``docs/operations.md`` §1a.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from zapstack.errors import ConfigError

__all__ = ["genesis", "init", "register"]

console = Console()

_ACCOUNT_HEX = 64


def _alloc(value: str) -> tuple[bytes, int]:
    account, sep, amount = value.partition("=")
    if not sep or len(account) != _ACCOUNT_HEX or not amount.isdigit():
        raise typer.BadParameter(f"{value!r} is not ACCOUNT=AMOUNT (64 hex digits = integer)")
    try:
        acct = bytes.fromhex(account)
    except ValueError:
        raise typer.BadParameter(f"{account!r} is not 64 hex digits") from None
    if int(amount) > 2**64 - 1:
        raise typer.BadParameter(f"{amount} exceeds 2^64 - 1")
    return acct, int(amount)


def _allocs(values: list[str] | None) -> list[str] | None:
    for v in values or []:
        _alloc(v)
    return values


def _policy(value: str | None) -> dict[str, Any] | None:
    """A CertPolicy block: inline JSON (starts with ``{``) or a JSON file's path."""
    if value is None:
        return None
    text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
    try:
        block = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--policy: not JSON: {exc}") from exc
    if not isinstance(block, dict):
        raise ConfigError("--policy: must be a JSON object (the cert_policy block)")
    return block


def _devnet_users(n: int) -> tuple[dict[bytes, int], dict[str, Any]]:
    """Allocations of ``n`` test accounts and the ``devnet_seed`` that derives their keys."""
    if n == 0:
        return {}, {}
    import hashlib
    import os

    from zapstack.node.genesis import USER_BALANCE, devnet_user

    seed = os.urandom(32)
    accounts = {
        hashlib.sha256(devnet_user(seed, u).public_key).digest(): USER_BALANCE for u in range(n)
    }
    return accounts, {"devnet_seed": seed.hex()}


def init(
    home: Path = typer.Option(..., "--home", help="The validator's home (created, mode 0700)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address the other validators dial (UDP, QUIC)."
    ),
    port: int = typer.Option(9400, "--port", min=1, max=65535, help="UDP port to listen on."),
    slhdsa_params: str = typer.Option(
        "slh-dsa-sha2-128f",
        "--slhdsa-params",
        help="SLH-DSA parameter set; must equal the chain policy's MagnetarParams.",
    ),
) -> None:
    """Make this validator's keys in its home; export the public parts to send to genesis."""
    from zapstack.crypto.slhdsa import ParamSet
    from zapstack.node.keygen import KEY_FILE, SHARE_FILE, init_home

    public = init_home(home, host, port, ParamSet.from_label(slhdsa_params))
    node_id = json.loads(public.read_text(encoding="utf-8"))["node_id"]
    console.print(f"secret keys: {escape(str(home / KEY_FILE))} (mode 0600; never leaves here)")
    console.print(f"public part: {escape(str(public))} -> send it to whoever runs zap genesis")
    console.print(f"node id:     {node_id}")
    console.print(
        f"then copy genesis.json and your share-<i>.json into {escape(str(home))} "
        f"(as {SHARE_FILE}) and run: zap node --home {escape(str(home))}"
    )


def genesis(
    out: Path = typer.Option(..., "--out", help="Folder for genesis.json and share-<i>.json."),
    validator: list[Path] = typer.Option(
        ..., "--validator", help="A public.json from zap init; repeat, in index order."
    ),
    alloc: list[str] = typer.Option(
        None, "--alloc", callback=_allocs, help="ACCOUNT=AMOUNT genesis balance; repeat."
    ),
    policy: str = typer.Option(
        None, "--policy", help="cert_policy block: inline JSON or a JSON file (default PQ-fast)."
    ),
    devnet_users: int = typer.Option(
        0,
        "--devnet-users",
        min=0,
        max=100_000,
        help="Also fund N test accounts whose keys ANYONE derives from genesis (devnet_seed).",
    ),
    chain_id: int = typer.Option(
        0x4C5558, "--chain-id", min=0, max=2**32 - 1, help="In every frame and cert."
    ),
    block_interval_ms: int = typer.Option(
        400, "--block-interval-ms", min=1, max=3_600_000, help="Wait after a final block."
    ),
) -> None:
    """Build genesis.json from the validators' public files; deal the Corona shares."""
    from zapstack.node.ceremony import DEALER_WARNING, build_genesis, load_public, write_genesis
    from zapstack.node.genesis import DEFAULT_POLICY

    publics = [load_public(p) for p in validator]
    allocations, extra = _devnet_users(devnet_users)
    for a in alloc or []:
        acct, amount = _alloc(a)
        if acct in allocations:
            raise ConfigError(f"--alloc: account {acct.hex()} given twice")
        allocations[acct] = amount
    g, shares = build_genesis(
        publics,
        chain_id=chain_id,
        block_interval_ms=block_interval_ms,
        policy=_policy(policy) or DEFAULT_POLICY,
        allocations=allocations,
        extra=extra,
    )
    paths = write_genesis(out, g, shares)
    console.print(f"genesis: {escape(str(out / 'genesis.json'))} ({len(paths)} validator(s))")
    for i, path in enumerate(paths):
        console.print(f"  share for validator {i}: {escape(str(path))} (mode 0600)")
    console.print(f"[bold red]TRUST:[/bold red] {escape(DEALER_WARNING)}")


def register(app: typer.Typer) -> None:
    """Add ``init`` and ``genesis`` to the ``zap`` app."""
    app.command("init")(init)
    app.command("genesis")(genesis)
