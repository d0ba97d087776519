"""An indexed binary min-heap: O(log N) push, pop and removal of any item.

Contract
--------
Items carry their own sort ``key`` (compared with ``<``; keys must be unique
so the order is total and deterministic) and a mutable ``pos`` slot that the
heap keeps equal to the item's index in its array (``-1`` when the item is not
in the heap).  That back-pointer is what makes :meth:`IndexedHeap.remove`
O(log N) without tombstones: swap the item with the last one, shrink, and
sift the moved item up or down.

=============  ===========  ==============================================
operation      cost         note
=============  ===========  ==============================================
``push``       O(log N)
``peek``       O(1)         the item with the smallest key
``pop``        O(log N)
``remove``     O(log N)     idempotent: an item not in the heap is a no-op
=============  ===========  ==============================================

Not thread-safe; owned by one :class:`~zapstack.mempool.Mempool`.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

__all__ = ["HeapItem", "IndexedHeap"]


class HeapItem(Protocol):
    """What the heap needs from an item."""

    @property
    def key(self) -> tuple[int, int]:
        """Sort key; smallest first.  Unique per item."""
        ...

    pos: int
    """Index in the heap array, maintained by the heap; -1 when absent."""


T = TypeVar("T", bound=HeapItem)


class IndexedHeap(Generic[T]):
    """Binary min-heap over ``item.key`` with position back-pointers."""

    __slots__ = ("_a",)

    def __init__(self) -> None:
        self._a: list[T] = []

    def __len__(self) -> int:
        return len(self._a)

    def __contains__(self, item: T) -> bool:
        return 0 <= item.pos < len(self._a) and self._a[item.pos] is item

    def items(self) -> list[T]:
        """The items in array order (for tests and invariant checks)."""
        return list(self._a)

    def peek(self) -> T | None:
        """The smallest item, or ``None`` when empty."""
        return self._a[0] if self._a else None

    def push(self, item: T) -> None:
        """Add ``item`` (must not already be in this heap)."""
        item.pos = len(self._a)
        self._a.append(item)
        self._up(item.pos)

    def pop(self) -> T:
        """Remove and return the smallest item (``IndexError`` when empty)."""
        top = self._a[0]
        self.remove(top)
        return top

    def remove(self, item: T) -> bool:
        """Remove ``item``; ``False`` (and no change) if it is not in the heap."""
        if item not in self:
            return False
        a = self._a
        i = item.pos
        last = a.pop()
        item.pos = -1
        if last is not item:
            a[i] = last
            last.pos = i
            self._up(i)
            self._down(last.pos)
        return True

    def check(self) -> None:
        """Assert the heap property and the back-pointers (tests only)."""
        a = self._a
        for i, it in enumerate(a):
            assert it.pos == i, "stale back-pointer"
            if i:
                assert not it.key < a[(i - 1) // 2].key, "heap property violated"

    # -- sifting -----------------------------------------------------------------
    def _up(self, i: int) -> None:
        a = self._a
        item = a[i]
        while i:
            parent = (i - 1) // 2
            if not item.key < a[parent].key:
                break
            a[i] = a[parent]
            a[i].pos = i
            i = parent
        a[i] = item
        item.pos = i

    def _down(self, i: int) -> None:
        a = self._a
        n = len(a)
        item = a[i]
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and a[child + 1].key < a[child].key:
                child += 1
            if not a[child].key < item.key:
                break
            a[i] = a[child]
            a[i].pos = i
            i = child
        a[i] = item
        item.pos = i
