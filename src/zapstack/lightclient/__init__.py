"""The light client: finalized blocks re-fetched through the DHT and verified.

What users import::

    from zapstack.lightclient import LightClient

:class:`LightClient` takes each height's QuasarCert over HEADER_RANGE
(``CERTS_ONLY``) from a validator and verifies it against the genesis
validator set and CertPolicy before fetching a block byte, then pulls the
block by id from up to ``k`` DHT providers in verified 64 KiB chunks and
checks ``sha256(bytes) == block id`` and the cert once more
(:mod:`zapstack.lightclient.client`).  It runs on asyncio over real QUIC; every
await is bounded.  It imports from ``zapstack.node`` only what a library needs
(the genesis file's loader and types).
"""

from zapstack.lightclient.client import Fetched, Head, LightClient

__all__ = ["Fetched", "Head", "LightClient"]
