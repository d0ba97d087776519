"""Shared fixture for real-QUIC transport tests (127.0.0.1 only, bounded)."""

from __future__ import annotations

import pytest

from zapstack.transport.bindings import BINDINGS
from zapstack.transport.driver import Binding


@pytest.fixture(params=sorted(BINDINGS))
def binding(request: pytest.FixtureRequest) -> Binding:
    return BINDINGS[request.param]()
