"""Suite name -> implementing module.  The table is the only dispatch."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, cast

from zapstack.conformance.envelope import Case
from zapstack.errors import ConfigError

__all__ = ["SUITES", "SuiteModule", "load_suite"]

SUITES: dict[str, str] = {
    "frames": "zapstack.conformance.frames",
    "mvcc_unwind": "zapstack.conformance.mvcc_unwind",
    "cert_tiers": "zapstack.conformance.cert_tiers",
    "stream_reset": "zapstack.conformance.stream_reset",
    "dht_refetch": "zapstack.conformance.dht_refetch",
    "tx_signatures": "zapstack.conformance.tx_signatures",
    "state_root": "zapstack.conformance.state_root",
    "quasar_cert": "zapstack.conformance.quasar_cert",
}
"""Every suite zapstack knows.  A suite whose module is not present yet is skipped
by ``generate`` and reported as unknown by ``run``."""


class SuiteModule(Protocol):
    """What a suite module exposes."""

    NAME: str
    SEED: int

    def generate(self, seed: int) -> list[Case]: ...

    def run_case(self, case: Case) -> dict[str, Any]: ...


def load_suite(name: str) -> SuiteModule:
    """Import the module implementing suite ``name``."""
    path = SUITES.get(name)
    if path is None:
        raise ConfigError(f"unknown vector suite {name!r}; known: {sorted(SUITES)}")
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name == path:
            raise ConfigError(f"suite {name!r} is not implemented yet ({path})") from exc
        raise
    return cast(SuiteModule, module)
