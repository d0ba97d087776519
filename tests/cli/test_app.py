"""The ``zap`` command line under bad input, run as an operator runs it (a subprocess).

One row per bad input of issue 18: each exits 2 with exactly ONE line on stderr
(``error: ...``, no traceback) and leaves the data folder byte-identical (the
tree is hashed before and after).  Rows refused at parse time never start a
devnet or a node.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from zapstack.cli.app import QUIC_BINDINGS
from zapstack.devnet.processes import free_port_base
from zapstack.node.datadir import HomeLock
from zapstack.node.genesis import make_devnet


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-validator devnet (genesis.json + node-0/node.json), copied per row."""
    home = tmp_path_factory.mktemp("tpl") / "net"
    make_devnet(home, 1, base_port=free_port_base(1), users=2)
    return home


def tree_digest(root: Path) -> str:
    """sha256 over every path, file mode and file content under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(oct(path.stat().st_mode).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def edit_json(path: Path, fn: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


def port_of(net: Path) -> int:
    return int(json.loads((net / "genesis.json").read_text())["validators"][0]["port"])


def set_policy_string(g: dict[str, Any]) -> dict[str, Any]:
    g["quasar"]["cert_policy"] = "PQ-fast"
    return g


def set_host(g: dict[str, Any]) -> dict[str, Any]:
    g["validators"][0]["host"] = "no-such-host.invalid"
    return g


@contextlib.contextmanager
def nothing(net: Path) -> Iterator[None]:
    yield


@contextlib.contextmanager
def udp_taken(net: Path) -> Iterator[None]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", port_of(net)))
        yield


@contextlib.contextmanager
def tcp_taken(net: Path) -> Iterator[None]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port_of(net) + 1000))
        s.listen()
        yield


@contextlib.contextmanager
def locked(net: Path) -> Iterator[None]:
    lock = HomeLock(net / "node-0")  # as a running node holds it
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def read_only(net: Path) -> Iterator[None]:
    home = net / "node-0"
    if os.geteuid() != 0:
        home.chmod(0o555)
        try:
            yield
        finally:
            home.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(home), str(home)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(home)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def foreign_chain(net: Path) -> None:
    body = {"chain_id": 7, "genesis_id": "ab" * 32}
    (net / "node-0" / "chain.json").write_text(json.dumps(body))


NODE = ["node", "--home", "{home}"]

# (row id, what the one line must say, how to spoil the data folder first, a context held
# during the run, argv)
ROWS: list[tuple[str, str, Callable[[Path], None] | None, Any, list[str]]] = [
    ("missing home", "does not exist", None, nothing, ["node", "--home", "{net}/node-9"]),
    ("read-only home", "is not writable", None, read_only, NODE),
    (
        "home that is a file",
        "is not a folder",
        None,
        nothing,
        ["node", "--home", "{net}/genesis.json"],
    ),
    ("UDP port in use", "UDP port 127.0.0.1:", None, udp_taken, NODE),
    (
        "HTTP port in use",
        "HTTP port",
        None,
        tcp_taken,
        [*NODE, "--http-port", "{metrics}"],
    ),
    (
        "unresolvable host",
        "cannot resolve the validator's host",
        lambda n: edit_json(n / "genesis.json", set_host),
        nothing,
        NODE,
    ),
    ("--http-port 70000", "'--http-port'", None, nothing, [*NODE, "--http-port", "70000"]),
    ("--quic quiche", "'quiche' is not one of", None, nothing, [*NODE, "--quic", "quiche"]),
    (
        "genesis allocations: 5",
        "at `$.allocations`",
        lambda n: edit_json(n / "genesis.json", lambda g: {**g, "allocations": 5}),
        nothing,
        NODE,
    ),
    (
        "node.json that is a list",
        "node keys",
        lambda n: edit_json(n / "node-0" / "node.json", lambda k: [k]),
        nothing,
        NODE,
    ),
    (
        "cert_policy a string",
        "at `$.quasar.cert_policy`",
        lambda n: edit_json(n / "genesis.json", set_policy_string),
        nothing,
        NODE,
    ),
    ("--halt-height -3", "'--halt-height'", None, nothing, [*NODE, "--halt-height", "-3"]),
    ("--rate -5", "'--rate'", None, nothing, ["devnet", "--home", "{net}/dn", "--rate", "-5"]),
    (
        "devnet --blocks 0",
        "'--blocks'",
        None,
        nothing,
        ["devnet", "--home", "{net}/dn", "--blocks", "0"],
    ),
    ("soak --seconds 0", "'--seconds'", None, nothing, ["soak", "--seconds", "0"]),
    (
        "--suite nope",
        "unknown suite 'nope'",
        None,
        nothing,
        ["conformance", "generate", "{net}/vectors", "--suite", "nope"],
    ),
    (
        "conformance generate FILE",
        "'out_dir'",
        None,
        nothing,
        ["conformance", "generate", "{net}/genesis.json"],
    ),
    ("devnet --home FILE", "'--home'", None, nothing, ["devnet", "--home", "{net}/genesis.json"]),
    ("second node on a locked home", "in use by another zap node", None, locked, NODE),
    ("data folder of another chain", "holds chain 0x7", foreign_chain, nothing, NODE),
    (
        "zap.toml value of the wrong type",
        "zap.toml: http_port: expected an integer, got str",
        lambda n: (n / "node-0" / "zap.toml").write_text('http_port = "x"\n'),
        nothing,
        NODE,
    ),
    (
        "zap.toml unknown key",
        "unknown key 'http_prot'",
        lambda n: (n / "node-0" / "zap.toml").write_text("http_prot = 1\n"),
        nothing,
        NODE,
    ),
    (
        "--config missing",
        "nope.toml does not exist",
        None,
        nothing,
        [*NODE, "--config", "{net}/nope.toml"],
    ),
    (
        "--log-format xml",
        "'xml' is not one of text, json",
        None,
        nothing,
        [*NODE, "--log-format", "xml"],
    ),
    ("--log-level loud", "'--log-level'", None, nothing, [*NODE, "--log-level", "loud"]),
    (
        "garbage BLS key",
        "bls_sk is not a valid key",
        lambda n: edit_json(n / "node-0" / "node.json", lambda k: {**k, "bls_sk": "ff" * 32}),
        nothing,
        NODE,
    ),
]


@pytest.mark.parametrize(
    ("expect", "spoil", "during", "argv"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_bad_input_is_one_line_exit_2_and_touches_nothing(
    template: Path, tmp_path: Path, expect: str, spoil: Any, during: Any, argv: list[str]
) -> None:
    net = tmp_path / "net"
    shutil.copytree(template, net)
    if spoil is not None:
        spoil(net)
    values = {"net": str(net), "home": str(net / "node-0"), "metrics": str(port_of(net) + 1000)}
    args = [a.format(**values) for a in argv]
    before = tree_digest(net)
    with during(net):
        proc = subprocess.run(
            [sys.executable, "-m", "zapstack.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expect in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert tree_digest(net) == before


def test_quic_choices_are_the_bindings() -> None:
    from zapstack.transport.bindings import BINDINGS

    assert set(QUIC_BINDINGS) == set(BINDINGS)


@pytest.mark.parametrize(
    ("env", "expect"),
    [
        ({"ZAP_HTTP_PORT": "abc"}, "ZAP_HTTP_PORT='abc': not an integer"),
        ({"ZAP_STATE_SYNC": "maybe"}, "ZAP_STATE_SYNC='maybe': 'maybe' is not a boolean"),
        ({"ZAP_LOG_LEVEL": "loud"}, "ZAP_LOG_LEVEL='loud': 'loud' is not one of"),
    ],
)
def test_bad_environment_value_is_one_line_exit_2(
    template: Path, tmp_path: Path, env: dict[str, str], expect: str
) -> None:
    net = tmp_path / "net"
    shutil.copytree(template, net)
    before = tree_digest(net)
    proc = subprocess.run(
        [sys.executable, "-m", "zapstack.cli", "node", "--home", str(net / "node-0")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expect in lines[0]
    assert tree_digest(net) == before


def test_version() -> None:
    from importlib.metadata import version

    proc = subprocess.run(
        [sys.executable, "-m", "zapstack.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout == f"zap {version('zapstack')}\n"


def test_node_help_names_the_defaults_the_settings_use() -> None:
    from zapstack.node.settings import OPTIONS

    proc = subprocess.run(
        [sys.executable, "-m", "zapstack.cli", "node", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},  # one line per option
    )
    assert proc.returncode == 0
    for name in ("http_host", "db_max_gib", "state_hold_blocks", "log_level"):
        flag = "--" + name.replace("_", "-")
        [line] = [ln for ln in proc.stdout.splitlines() if f" {flag} " in ln]
        assert f"(default {OPTIONS[name].default}" in line, line
