"""Loopback ports for validator processes."""

from __future__ import annotations

from pathlib import Path

from zapstack.devnet.processes import _ephemeral_low, free_port_base, stop_processes


def test_devnet_ports_stay_below_the_ephemeral_range() -> None:
    for n in (4, 40):
        base = free_port_base(n)
        assert base >= 20000 and base + n + 1000 <= _ephemeral_low()


def test_log_alerts_are_the_lines_an_operator_is_paged_for(tmp_path: Path) -> None:
    from zapstack.devnet.processes import log_alerts

    assert log_alerts(tmp_path) == []  # no log yet
    lines = [
        '{"event": "listening", "level": "info", "logger": "zapstack.node"}',
        '{"event": "peer closed", "level": "debug", "logger": "quic"}',
        '{"event": "catch-up failed", "level": "warning", "logger": "zapstack.node"}',
        '{"event": "halted at height 3", "level": "error", "logger": "zapstack.node"}',
        '{"event": "boom", "level": "CRITICAL", "logger": "x"}',
        "Traceback (most recent call last):",
        '{"event": "no level"}',
    ]
    (tmp_path / "node.log").write_text("\n".join(lines) + "\n")
    assert log_alerts(tmp_path) == lines[2:]


def test_stop_processes_terms_then_kills_one_that_ignores_sigterm() -> None:
    import subprocess
    import sys

    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    stop_processes([polite, stubborn], grace=0.5)
    assert polite.returncode == -15  # SIGTERM ended it
    assert stubborn.returncode == -9  # it ignored SIGTERM: killed after the grace
    stubborn.stdout.close()
    stop_processes([polite, stubborn])  # already stopped: nothing to do


def test_report_says_what_each_validator_is_doing(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from zapstack.devnet.processes import ProcessCluster

    homes = [tmp_path / f"node-{i}" for i in range(3)]
    for home in homes:
        home.mkdir()
    (homes[0] / "status.json").write_text(json.dumps({"height": 7}))
    (homes[0] / "stdout.txt").write_text("one\ntwo\nthree\nfour\n")
    (homes[1] / "node.log").write_text('{"event": "x", "level": "error"}\n')
    cluster = ProcessCluster(homes)
    cluster.procs[1] = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    cluster.procs[1].wait()
    assert cluster.report().splitlines() == [
        "validator 0: not started, height 7",
        "  stdout: two",
        "  stdout: three",
        "  stdout: four",
        "validator 1: exited 3, no status",
        '  log: {"event": "x", "level": "error"}',
        "validator 2: not started, no status",
    ]
