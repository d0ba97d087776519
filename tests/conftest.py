"""Shared fixture: one ``zap node`` process (a one-validator chain) serving the HTTP API.

Used by the API, wallet and light-client proof tests; started once per session,
only when a test asks for it.  Each test that submits txs uses its own funded
devnet user (``api_chain.user(i)``) so the tests do not share nonces.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from zapstack.devnet.processes import ProcessCluster, free_port_base, spawn_node
from zapstack.node.genesis import Genesis, devnet_user, load_genesis, make_devnet
from zapstack.zap import Signer


@dataclass
class ApiChain:
    """A running one-validator chain and how to reach it."""

    url: str
    home: Path
    genesis_path: Path
    genesis: Genesis
    proc: subprocess.Popen[bytes]

    def user(self, i: int) -> Signer:
        """The i-th funded devnet user (8 of them)."""
        return devnet_user(bytes.fromhex(self.genesis.raw["devnet_seed"]), i)

    def get(self, path: str) -> dict:  # type: ignore[type-arg]
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            doc: dict = json.load(r)  # type: ignore[type-arg]
            return doc

    def wait_height(self, height: int, limit_s: float = 60.0) -> int:
        """Wait until the node finalized ``height`` (bounded); its height."""
        deadline = time.monotonic() + limit_s
        while True:
            try:
                h = int(self.get("/v1/status")["height"])
                if h >= height:
                    return h
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                cluster = ProcessCluster([self.home])
                cluster.procs[0] = self.proc  # what it was doing, for the failure message
                raise AssertionError(
                    f"node did not reach height {height}: {self.home}\n{cluster.report()}"
                )
            time.sleep(0.2)


@pytest.fixture(scope="session")
def api_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiChain]:
    root = tmp_path_factory.mktemp("apichain")
    base = free_port_base(1)
    home = make_devnet(root, 1, base_port=base, users=8)[0]
    proc = spawn_node(home, http_port=base + 1000)
    chain = ApiChain(
        f"http://127.0.0.1:{base + 1000}",
        home,
        root / "genesis.json",
        load_genesis(root / "genesis.json"),
        proc,
    )
    try:
        chain.wait_height(1)
        yield chain
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def markdown_rows(doc: Path, header_start: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table in ``doc`` whose header line
    starts with ``header_start``: what the format docs pin, read back by the tests."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows
