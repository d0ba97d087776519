"""IndexedHeap: heap order and back-pointers hold under any push/pop/remove mix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from zapstack.mempool.heap import IndexedHeap


class Item:
    __slots__ = ("key", "pos")

    def __init__(self, fee: int, seq: int) -> None:
        self.key = (fee, -seq)
        self.pos = -1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 20)),
        st.tuples(st.just("pop"), st.just(0)),
        st.tuples(st.just("remove"), st.integers(0, 1000)),
    ),
    max_size=120,
)


@given(ops)
def test_heap_matches_sorted_model(program: list[tuple[str, int]]) -> None:
    heap: IndexedHeap[Item] = IndexedHeap()
    model: list[Item] = []
    seq = 0
    for op, arg in program:
        if op == "push":
            seq += 1
            it = Item(arg, seq)
            heap.push(it)
            model.append(it)
        elif op == "pop" and model:
            want = min(model, key=lambda i: i.key)
            assert heap.pop() is want
            model.remove(want)
            assert want.pos == -1
        elif op == "remove" and model:
            victim = model[arg % len(model)]
            assert heap.remove(victim) is True
            assert heap.remove(victim) is False  # idempotent
            model.remove(victim)
        heap.check()
        assert len(heap) == len(model)
        top = heap.peek()
        assert top is (min(model, key=lambda i: i.key) if model else None)


def test_remove_foreign_item_is_noop() -> None:
    a: IndexedHeap[Item] = IndexedHeap()
    b: IndexedHeap[Item] = IndexedHeap()
    x, y = Item(1, 1), Item(2, 2)
    a.push(x)
    b.push(y)
    assert y.pos == 0 and x.pos == 0
    assert a.remove(y) is False  # same position, different heap
    assert len(a) == 1 and a.peek() is x
