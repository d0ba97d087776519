import pytest

from zapstack.zap import Signer, SigScheme


@pytest.fixture(scope="session")
def ed_signer() -> Signer:
    return Signer(SigScheme.ED25519, bytes(range(32)))


@pytest.fixture(scope="session")
def pq_signer() -> Signer:
    return Signer(SigScheme.MLDSA65, bytes(range(1, 33)))
