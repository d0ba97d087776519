"""``zap init`` / ``zap genesis`` as an operator runs them: subprocesses only.

The network test brings up 4 validators on 4 loopback addresses (127.0.0.1 ..
127.0.0.4; one address and 4 ports where the others cannot be bound) with
nothing but the commands -- ``zap init`` x4, ``zap genesis``, the files copied
as docs/operations.md §1a says, ``zap node`` x4 -- and waits until every
validator has finalized a few heights and all agree on the block ids.  Each
node's options come from a different source (flags; its home's ``zap.toml``;
``ZAP_*`` environment variables with ``ZAP_HOME`` instead of ``--home``; a
``zap.toml`` value overridden by a flag), and the test checks what each
printed (the banner with its HTTP address, one line per finalized height) and
that every ``/health`` answers 200 and ``/metrics`` counts the heights.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from zapstack.devnet.processes import free_port_base, log_alerts, read_status
from zapstack.node.genesis import USER_BALANCE, devnet_user

TARGET = 3
"""Heights every validator must finalize."""
DEADLINE_S = 45.0


def zap(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, "-m", "zapstack.cli", *args], capture_output=True, text=True, timeout=60
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


def _addresses(n: int) -> list[tuple[str, int]]:
    """127.0.0.(i+1) on one free port, or 127.0.0.1 on n ports if those cannot be bound."""
    port = free_port_base(n)
    try:
        for i in range(n):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((f"127.0.0.{i + 1}", port))
    except OSError:
        return [("127.0.0.1", port + i) for i in range(n)]
    return [(f"127.0.0.{i + 1}", port) for i in range(n)]


def _init(home: Path, host: str, port: int) -> Path:
    zap("init", "--home", str(home), "--host", host, "--port", str(port))
    return home / "public.json"


def test_two_inits_give_different_keys(tmp_path: Path) -> None:
    a = json.loads(_init(tmp_path / "a", "127.0.0.1", 9400).read_text())
    b = json.loads(_init(tmp_path / "b", "127.0.0.1", 9400).read_text())
    for field in ("node_id", "proposer_pk", "bls_pk", "mldsa_pk", "slhdsa_pk"):
        assert a[field] != b[field], field
    ka = json.loads((tmp_path / "a" / "node.json").read_text())
    kb = json.loads((tmp_path / "b" / "node.json").read_text())
    assert all(ka[f] != kb[f] for f in ka)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["genesis", "--out", "g", "--validator", "missing.json"], "cannot read validator"),
        (
            ["genesis", "--out", "g", "--validator", "a/public.json", "--alloc", "ab=1"],
            "is not ACCOUNT=AMOUNT",
        ),
        (
            ["genesis", "--out", "g", "--validator", "a/public.json", "--policy", "{"],
            "--policy: not JSON",
        ),
        (
            ["genesis", "--out", "g", "--validator", "a/public.json", "--policy", '{"Mode": 1}'],
            "cert_policy",
        ),
        (["init", "--home", "a"], "exists; refusing to overwrite"),
        (["init", "--home", "b", "--slhdsa-params", "x"], "unknown SLH-DSA parameter set"),
        (["init", "--home", "b", "--port", "0"], "greater than or equal to 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _init(tmp_path / "a", "127.0.0.1", 9400)
    out = zap(*args, check=False)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "g" / "genesis.json").exists()


def _wait_agreed(homes: list[Path], procs: list[subprocess.Popen[bytes]]) -> dict[int, str]:
    """Block ids per height, once every validator finalized TARGET heights and they agree."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), [h.joinpath("out.txt") for h in homes]
        statuses = [read_status(h) for h in homes]
        if all(s is not None and s["height"] >= TARGET for s in statuses):
            ids: dict[int, str] = {}
            for s in statuses:
                assert s is not None
                for r in s["recent"]:
                    assert ids.setdefault(r["height"], r["block_id"]) == r["block_id"], r
            return ids
        time.sleep(0.5)
    seen = [
        {k: s.get(k) for k in ("height", "round", "peers", "stats", "fatal")} if s else None
        for s in (read_status(h) for h in homes)
    ]
    logs = [(h / "out.txt").read_text()[-1500:] + "".join(log_alerts(h)[-5:]) for h in homes]
    raise AssertionError(f"no agreement at height {TARGET} in {DEADLINE_S} s: {seen} {logs}")


def _launch(i: int, home: Path, http: tuple[str, int]) -> subprocess.Popen[bytes]:
    """``zap node`` for validator i, its HTTP address given by a different source each."""
    host, port = http
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAP_")}
    argv = [sys.executable, "-m", "zapstack.cli", "node"]
    if i == 0:  # flags only
        argv += ["--home", str(home), "--http-port", str(port), "--http-host", host]
    elif i == 1:  # the home's zap.toml
        (home / "zap.toml").write_text(f'http_port = {port}\nhttp_host = "{host}"\n')
        argv += ["--home", str(home)]
    elif i == 2:  # the environment, the home too
        env.update(ZAP_HOME=str(home), ZAP_HTTP_PORT=str(port), ZAP_HTTP_HOST=host)
    else:  # a flag beats the file
        (home / "zap.toml").write_text(f'http_port = 1\nhttp_host = "{host}"\n')
        argv += ["--home", str(home), "--http-port", str(port)]
    out = (home / "out.txt").open("wb")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _check_operable(homes: list[Path], https: list[tuple[str, int]]) -> None:
    """Banner + per-block lines on each terminal; /health 200 (within a deadline), /metrics."""
    for i, (h, (host, port)) in enumerate(zip(homes, https, strict=True)):
        text = (h / "out.txt").read_text()
        lines = text.splitlines()
        assert lines[0].startswith("zapstack ") and lines[0].endswith(" -- zap node"), text
        banner = {ln.split(maxsplit=1)[0]: ln for ln in lines[1:12]}
        assert banner["validator"].split()[1:] == [str(i), "of", "4"], text
        assert f"http://{host}:{port} " in banner["http"], text
        blocks = [
            int(m.group(1)) for m in re.finditer(r"^height +(\d+) +id [0-9a-f]{12} ", text, re.M)
        ]
        assert blocks and blocks == sorted(set(blocks)), text  # each finalized height once
        assert "Traceback" not in text and "[warning" not in text and "[error" not in text, text
    deadline = time.monotonic() + DEADLINE_S
    health: list[Any] = []
    while time.monotonic() < deadline:
        health = [_get(f"http://{host}:{port}/health") for host, port in https]
        if all(status == 200 for status, _ in health):
            break
        time.sleep(0.5)
    assert all(status == 200 for status, _ in health), health
    for (host, port), (_, body) in zip(https, health, strict=True):
        verdict = json.loads(body)
        assert verdict["ok"] and len(verdict["connected"]) >= 2, verdict
        status, metrics = _get(f"http://{host}:{port}/metrics")
        found = re.search(rb"^zap_blocks_finalized_total (\S+)$", metrics, re.M)
        assert status == 200 and found and float(found.group(1)) >= TARGET


def test_four_validators_from_init_and_genesis_finalize(tmp_path: Path) -> None:
    homes = [tmp_path / f"host{i}" for i in range(4)]
    addresses = _addresses(4)
    publics = [_init(h, host, port) for h, (host, port) in zip(homes, addresses, strict=True)]
    args = ["genesis", "--out", str(tmp_path / "dealer")]
    for p in publics:
        args += ["--validator", str(p)]
    out = zap(*args, "--alloc", "11" * 32 + "=1000", "--devnet-users", "2")
    assert "must be trusted" in " ".join(out.stdout.split())
    g = json.loads((tmp_path / "dealer" / "genesis.json").read_text())
    user = devnet_user(bytes.fromhex(g["devnet_seed"]), 1)
    funded = {a["account"]: a["balance"] for a in g["allocations"]}
    assert funded == {
        hashlib.sha256(
            devnet_user(bytes.fromhex(g["devnet_seed"]), 0).public_key
        ).hexdigest(): USER_BALANCE,
        hashlib.sha256(user.public_key).hexdigest(): USER_BALANCE,
        "11" * 32: 1000,
    }
    for i, h in enumerate(homes):
        shutil.copy(tmp_path / "dealer" / "genesis.json", h / "genesis.json")
        shutil.copy(tmp_path / "dealer" / f"share-{i}.json", h / "share.json")
    https = [(host, port + 1000) for host, port in addresses]
    procs = [_launch(i, h, https[i]) for i, h in enumerate(homes)]
    try:
        ids = _wait_agreed(homes, procs)
        _check_operable(homes, https)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert set(range(1, TARGET + 1)) <= set(ids)
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
