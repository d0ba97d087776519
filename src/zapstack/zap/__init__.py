"""ZAP frames: immutable, zero-copy tx and block buffers read through typed offsets.

Public names: builders (``build_transfer``, ``build_call``, ``build_block``),
whole-buffer parsers (``parse_tx``, ``parse_block``), the streaming
``IngressMachine`` and its events, the views, the transcript, the schema
tables and the signature schemes.  Format: ``docs/formats/zap.md``.
"""

from zapstack.zap.events import END, NEED_DATA, FrameAccepted, FrameRejected
from zapstack.zap.frames import (
    DEFAULT_CHAIN_ID,
    build_block,
    build_call,
    build_frame,
    build_transfer,
    parse_block,
    parse_frame,
    parse_tx,
)
from zapstack.zap.ingress import IngressMachine
from zapstack.zap.schema import (
    BLOCK_SCHEMAS,
    MAGIC,
    MAX_BLOCK_SIZE,
    MAX_CALL_DATA,
    MAX_TX_SIZE,
    MAX_TXS_PER_BLOCK,
    TX_SCHEMAS,
    FrameKind,
)
from zapstack.zap.sigschemes import PK_SIZE, SIG_SIZE, Signer, SigScheme, verify_signature
from zapstack.zap.transcript import block_id, transcript_digest
from zapstack.zap.views import BlockView, FrameView, TxView

__all__ = [
    "BLOCK_SCHEMAS",
    "DEFAULT_CHAIN_ID",
    "END",
    "MAGIC",
    "MAX_BLOCK_SIZE",
    "MAX_CALL_DATA",
    "MAX_TXS_PER_BLOCK",
    "MAX_TX_SIZE",
    "NEED_DATA",
    "PK_SIZE",
    "SIG_SIZE",
    "TX_SCHEMAS",
    "BlockView",
    "FrameAccepted",
    "FrameKind",
    "FrameRejected",
    "FrameView",
    "IngressMachine",
    "SigScheme",
    "Signer",
    "TxView",
    "block_id",
    "build_block",
    "build_call",
    "build_frame",
    "build_transfer",
    "parse_block",
    "parse_frame",
    "parse_tx",
    "transcript_digest",
    "verify_signature",
]
