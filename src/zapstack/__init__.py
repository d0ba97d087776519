"""zapstack: the Lux ZAP Stack and its pipelining contract (LP-0202) in Python.

Layers import only downward:
zap -> crypto -> zapdb -> transport -> mempool/verify/consensus
-> producer/bootstrap/dht -> node -> cli.
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
