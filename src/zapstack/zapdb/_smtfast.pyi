"""Types of the optional C extension ``zapstack.zapdb._smtfast`` (see ``_smtfast.c``)."""

from collections.abc import Callable, Sequence
from typing import Any

def merge(
    get: Callable[[bytes], bytes | None] | None,
    keys: list[bytes],
    values: list[Any],
    depth: int = 0,
    prefix: bytes = ...,
    strict: bool = False,
    into: dict[bytes, bytes | None] | None = None,
    upper: dict[bytes, bytes | None] | None = None,
    lower: dict[bytes, bytes | None] | None = None,
    split: int = 0,
) -> Any:
    """(hash, record | None, writes list or count), or None (strict input rejected)."""

def scan(d: dict[bytes, Any]) -> tuple[bool, bool]: ...
def sorted_items(d: dict[bytes, Any]) -> dict[bytes, Any]: ...
def sha256(data: bytes | memoryview) -> bytes: ...
def sha256_many(items: Sequence[bytes | memoryview]) -> bytes: ...
def node_hash(left: bytes, right: bytes) -> bytes: ...
def select(portable: bool) -> str: ...
def backend() -> str: ...
def parse_chunk(
    body: bytes | bytearray | memoryview, depth: int, max_key: int
) -> tuple[tuple[tuple[bytes, bytes], ...], tuple[bytes, ...], bytes | None]: ...
def encode_chunk(
    index: int,
    entries: tuple[tuple[bytes, bytes], ...],
    siblings: tuple[bytes, ...],
    terminal: bytes | None,
) -> bytes: ...
def collect_leaves(it: Any, end: bytes, out: list[bytes]) -> bool: ...
def leaf_keys(records: list[bytes]) -> list[bytes]: ...
