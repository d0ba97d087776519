"""zapstack: the Lux ZAP Stack and its pipelining contract (LP-0202) in Python.

Layers import only downward (``tests/test_layering.py`` enforces it):
errors -> zap -> crypto -> zapdb -> transport -> mempool/verify/consensus
-> producer/bootstrap/dht -> testing/conformance -> node -> lightclient
-> devnet/benchmarks -> cli.  The sans-IO cores (zap .. dht) never import
asyncio, sockets or a QUIC stack; the transport's adapter modules and
``node/adapters`` do.
"""

from zapstack.errors import (
    ConfigError,
    ConflictError,
    FatalStoreError,
    InvalidBlock,
    InvalidCert,
    InvalidTx,
    LocalProtocolError,
    RemoteProtocolError,
    Stage,
    StoreError,
    TransportError,
    WireCode,
    ZapError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ConflictError",
    "FatalStoreError",
    "InvalidBlock",
    "InvalidCert",
    "InvalidTx",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Stage",
    "StoreError",
    "TransportError",
    "WireCode",
    "ZapError",
    "__version__",
]
