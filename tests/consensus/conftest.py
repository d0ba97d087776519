"""Shared fixtures: small deterministic validator sets (keys generated once per session)."""

from __future__ import annotations

import importlib.util

import pytest

from zapstack.consensus.digest import CertContext, block_id
from zapstack.consensus.validators import ValidatorSecrets, ValidatorSet, generate_validators

HAVE_RINGTAIL = importlib.util.find_spec("zapstack.crypto.ringtail") is not None and hasattr(
    importlib.import_module("zapstack.crypto.ringtail"), "deal"
)

BLOCK = b"block bytes at height 7"
OTHER_BLOCK = b"a competing block at height 7"


@pytest.fixture(scope="session")
def devnet() -> tuple[ValidatorSet, list[ValidatorSecrets]]:
    """Five equal-weight validators (threshold 4), every leg keyed."""
    return generate_validators(5, b"consensus-tests", corona=HAVE_RINGTAIL)


@pytest.fixture(scope="session")
def vset(devnet: tuple[ValidatorSet, list[ValidatorSecrets]]) -> ValidatorSet:
    return devnet[0]


@pytest.fixture(scope="session")
def secrets(devnet: tuple[ValidatorSet, list[ValidatorSecrets]]) -> list[ValidatorSecrets]:
    return devnet[1]


@pytest.fixture(scope="session")
def ctx(vset: ValidatorSet) -> CertContext:
    return CertContext(
        chain_id=96369, height=7, round=0, block_id=block_id(BLOCK), vset_root=vset.root
    )


@pytest.fixture(scope="session")
def other_ctx(vset: ValidatorSet) -> CertContext:
    """Same height and round, another block."""
    return CertContext(96369, 7, 0, block_id(OTHER_BLOCK), vset.root)
