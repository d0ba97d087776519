"""The ``zap`` command line (typer + rich): one function per command.

The commands import what they drive lazily (``zap --help`` stays fast); the
console-script entry point is :func:`main` (``zapstack.cli:main``).  Bad input
never prints a traceback: an option out of its range (checked at parse time,
the table in ``docs/operations.md`` §9), a :class:`~zapstack.errors.ZapError`
(bad genesis, busy port, foreign data folder ...) or an ``OSError`` becomes ONE
line ``error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer._click.exceptions import ClickException  # typer's vendored click

from zapstack.cli.ceremony import register as register_ceremony
from zapstack.cli.wallet import register as register_wallet
from zapstack.conformance import SUITES, generate_all, run_files
from zapstack.errors import ZapError
from zapstack.node.settings import LOG_FORMATS, LOG_LEVELS, OPTIONS, zap_version

app = typer.Typer(
    help="zapstack: the Lux ZAP Stack (LP-0202) -- frames, ZapDB, QUIC, QuasarCert, DHT.",
    no_args_is_help=True,
    add_completion=False,
)
conformance_app = typer.Typer(help="Cross-implementation test vectors.", no_args_is_help=True)
app.add_typer(conformance_app, name="conformance")
register_ceremony(app)  # zap init, zap genesis
register_wallet(app)  # zap keys, tx, account, block, status, api-spec

console = Console()

QUIC_BINDINGS = ("qh3", "aioquic")
"""``--quic`` choices: the keys of ``zapstack.transport.bindings.BINDINGS`` (a test keeps
them equal; importing the bindings here would load both QUIC stacks for ``zap --help``)."""


def _fail(message: str, code: int = 2) -> None:
    """Print ONE line ``error: message`` on stderr and exit with ``code``."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(code)


def _not_a_file(value: Path | None) -> Path | None:
    if value is not None and value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{value} exists and is not a folder")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"{value} must be > 0")
    return value


def _binding(value: str | None) -> str | None:
    if value is not None and value not in QUIC_BINDINGS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(QUIC_BINDINGS)}")
    return value


def _choice(name: str, choices: tuple[str, ...]) -> Any:
    def check(value: str | None) -> str | None:
        if value is not None and value.lower() not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return None if value is None else value.lower()

    check.__name__ = name
    return check


_log_level = _choice("_log_level", LOG_LEVELS)
_log_format = _choice("_log_format", LOG_FORMATS)


def _version(value: bool) -> None:
    if value:
        print(f"zap {zap_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """zapstack: the Lux ZAP Stack (LP-0202) -- frames, ZapDB, QUIC, QuasarCert, DHT."""


def _suites(value: list[str] | None) -> list[str] | None:
    for name in value or []:
        if name not in SUITES:
            raise typer.BadParameter(f"unknown suite {name!r}; known: {', '.join(sorted(SUITES))}")
    return value


@conformance_app.command("run")
def conformance_run(
    paths: list[Path] = typer.Argument(..., help="JSONL vector files to run."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every failure."),
) -> None:
    """Run vector files; print per-suite pass/fail; exit 1 on any failure."""
    try:
        reports = run_files(paths)
    except (ZapError, OSError) as exc:  # unreadable file, malformed lines: listed, exit 2
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    table = Table(title="conformance")
    table.add_column("suite")
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    failed = 0
    for name, report in sorted(reports.items()):
        failed += report.failed
        colour = "green" if report.failed == 0 else "red"
        table.add_row(name, str(report.passed), f"[{colour}]{report.failed}[/{colour}]")
    console.print(table)
    for report in reports.values():
        for result in report.failures[: None if verbose else 3]:
            detail = escape(f"{result.suite}/{result.id}: {result.detail}")
            console.print(f"[red]FAIL[/red] {detail}")
    total = sum(r.passed + r.failed for r in reports.values())
    print(f"{total - failed} passed, {failed} failed")
    if failed or total == 0:
        raise typer.Exit(1)


@conformance_app.command("generate")
def conformance_generate(
    out_dir: Path = typer.Argument(
        Path("vectors/pipeline"), help="Output folder.", callback=_not_a_file
    ),
    suite: list[str] = typer.Option(None, "--suite", help="Only these suites.", callback=_suites),
) -> None:
    """Regenerate the seeded vector files."""
    counts = generate_all(out_dir, suite or None)
    for name, n in sorted(counts.items()):
        console.print(f"{name}: {n} cases -> {out_dir / (name + '.jsonl')}")


@app.command("demo")
def demo() -> None:
    """Build and validate a block of signed txs; show reject stages of bad frames."""
    from zapstack.cli.demo import run_demo

    run_demo(console)


@app.command("devnet")
def devnet(
    n: int = typer.Option(4, "-n", min=1, help="Validators (separate processes on loopback)."),
    blocks: int = typer.Option(
        20, "--blocks", min=1, help="Stop after this many finalized heights."
    ),
    rate: float = typer.Option(
        150.0, "--rate", callback=_positive, help="Load: signed txs per second over QUIC."
    ),
    malformed_every: int = typer.Option(
        40, "--malformed-every", min=0, help="Every k-th tx stream is malformed (0: none)."
    ),
    home: Path = typer.Option(
        None, "--home", callback=_not_a_file, help="Data folder (default: a new temp folder)."
    ),
    timeout: float = typer.Option(
        600.0, "--timeout", callback=_positive, help="Give up after this many seconds."
    ),
    no_live: bool = typer.Option(False, "--no-live", help="No live view (CI logs)."),
) -> None:
    """Run a local devnet: validators, load, light client, live view; check agreement."""
    from zapstack.devnet import run_devnet

    result = run_devnet(
        n,
        blocks,
        home=home,
        rate=rate,
        malformed_every=malformed_every,
        timeout_s=timeout,
        live=not no_live,
        console=console,
    )
    if not result.ok:
        raise typer.Exit(1)


@app.command("node")
def node(
    home: Path = typer.Option(
        None,
        "--home",
        help="Node home (node.json; genesis.json here or in the parent). "
        "Default: $ZAP_HOME, else ~/.zapstack.",
    ),
    config: Path = typer.Option(
        None, "--config", help="TOML config file (default: $ZAP_CONFIG, else HOME/zap.toml)."
    ),
    http_port: int = typer.Option(
        None,
        "--http-port",
        min=0,
        max=65535,
        help="Serve the JSON API, /health, /metrics and the explorer on HTTP-HOST:PORT (0: off).",
    ),
    http_host: str = typer.Option(
        None,
        "--http-host",
        help=f"Address the HTTP server binds (default {OPTIONS['http_host'].default}).",
    ),
    binding: str = typer.Option(None, "--quic", callback=_binding, help="qh3 or aioquic."),
    halt_height: int = typer.Option(
        None, "--halt-height", min=0, help="Stop deciding after this height (0: never)."
    ),
    state_sync: bool = typer.Option(
        None,
        "--state-sync/--no-state-sync",
        help="With an empty data dir: download and verify a recent finalized state from peers.",
    ),
    db_max_gib: int = typer.Option(
        None,
        "--db-max-gib",
        min=1,
        max=1 << 16,
        help=f"GiB the state store may grow to at most (default "
        f"{OPTIONS['db_max_gib'].default}; address space only).",
    ),
    state_hold_blocks: int = typer.Option(
        None,
        "--state-hold-blocks",
        min=1,
        max=1 << 20,
        help="Blocks a state root peers sync from stays served after the last 4 "
        f"(default {OPTIONS['state_hold_blocks'].default}).",
    ),
    log_level: str = typer.Option(
        None,
        "--log-level",
        callback=_log_level,
        help=f"Terminal log level: {', '.join(LOG_LEVELS)} "
        f"(default {OPTIONS['log_level'].default}).",
    ),
    log_format: str = typer.Option(
        None, "--log-format", callback=_log_format, help="Terminal format: text or json."
    ),
) -> None:
    """Run one validator until SIGINT/SIGTERM; exit 1 if a fault halted it.

    Every option also comes from $ZAP_<OPTION> (ZAP_HTTP_PORT ...) or the config
    file; precedence: flag > environment > file > default."""
    import os

    from zapstack.cli.repair import repair_blocks
    from zapstack.node.run import run_node
    from zapstack.node.settings import resolve

    flags = {
        "http_port": http_port,
        "http_host": http_host,
        "quic": binding,
        "halt_height": halt_height,
        "state_sync": state_sync,
        "db_max_gib": db_max_gib,
        "state_hold_blocks": state_hold_blocks,
        "log_level": log_level,
        "log_format": log_format,
    }
    settings = resolve(flags, os.environ, home=home, config=config)
    fatal = run_node(settings, repair=repair_blocks)
    if fatal is not None:
        _fail(f"node halted: {fatal} (see {settings.home / 'node.log'})", 1)


@app.command("bench")
def bench(
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Smaller sizes (minutes: the e2e devnet row).",
    ),
    validators: int = typer.Option(0, "--validators", min=0, help="Consensus row validators."),
    out: Path = typer.Option(Path("bench/out"), "--out", help="Where perf.json/perf.png go."),
) -> None:
    """LP-0202's performance table: each row pipelined vs serial, measured in one run."""
    from zapstack.benchmarks.table import FULL, QUICK, run_and_report

    code = run_and_report(QUICK if quick else FULL, out, validators=validators, console=console)
    if code:
        raise typer.Exit(code)


@app.command("soak")
def soak(
    seconds: float = typer.Option(300.0, "--seconds", min=1, help="How long to soak (bounded)."),
    n: int = typer.Option(4, "-n", min=4, help="Validators (separate processes, n >= 4)."),
) -> None:
    """Soak a devnet: load, a validator SIGKILLed and restarted, a malicious peer; exit 1
    if any validator lost a committed block or they disagree."""
    from zapstack.devnet import run_soak

    if not run_soak(seconds, n, console=console).ok:
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run ``zap``; bad input is one line on stderr, exit 2."""
    try:
        code = app(args=argv, prog_name="zap", standalone_mode=False)
    except ClickException as exc:  # usage errors, options out of range: exit 2
        if not exc.format_message().strip():
            sys.exit(exc.exit_code)  # no arguments: the help was printed
        _fail(exc.format_message(), exc.exit_code)
    except (ZapError, OSError) as exc:
        _fail(str(exc))
    except typer.Abort:
        _fail("aborted", 130)
    sys.exit(code if isinstance(code, int) else 0)
