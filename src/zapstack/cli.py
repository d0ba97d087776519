"""The ``zap`` command line (typer + rich)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from zapstack.conformance import generate_all, run_files
from zapstack.errors import ZapError

app = typer.Typer(
    help="zapstack: the Lux ZAP Stack (LP-0202) -- frames, ZapDB, QUIC, QuasarCert, DHT.",
    no_args_is_help=True,
    add_completion=False,
)
conformance_app = typer.Typer(help="Cross-implementation test vectors.", no_args_is_help=True)
app.add_typer(conformance_app, name="conformance")

console = Console()


@conformance_app.command("run")
def conformance_run(
    paths: list[Path] = typer.Argument(..., help="JSONL vector files to run."),  # noqa: B008
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every failure."),
) -> None:
    """Run vector files; print per-suite pass/fail; exit 1 on any failure."""
    try:
        reports = run_files(paths)
    except (ZapError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
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
            console.print(f"[red]FAIL[/red] {result.suite}/{result.id}: {result.detail}")
    total = sum(r.passed + r.failed for r in reports.values())
    print(f"{total - failed} passed, {failed} failed")
    if failed or total == 0:
        raise typer.Exit(1)


@conformance_app.command("generate")
def conformance_generate(
    out_dir: Path = typer.Argument(Path("vectors/pipeline"), help="Output folder."),  # noqa: B008
    suite: list[str] = typer.Option(None, "--suite", help="Only these suites."),  # noqa: B008
) -> None:
    """Regenerate the seeded vector files."""
    counts = generate_all(out_dir, suite or None)
    for name, n in sorted(counts.items()):
        console.print(f"{name}: {n} cases -> {out_dir / (name + '.jsonl')}")


@app.command("demo")
def demo() -> None:
    """Build and validate a block of signed txs; show reject stages of bad frames."""
    from zapstack.zap.demo import run_demo

    run_demo(console)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ZapError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
