"""The shared unwind-primitive contract (LP-0202 "Atomic unwind primitives").

Every mutation boundary in zapstack has an unwind primitive -- ``Txn.discard``,
``Txn.rollback``, a mempool drop, ``Round.abandon``, a stream cancel... -- and
they all promise the same thing:

1. calling it **never raises**, in any state of the subject (fresh, dirty,
   half-way, already unwound, committed, closed, failed);
2. calling it **again** is harmless (idempotent);
3. afterwards **no observable state is left behind**: what ``observe`` sees
   equals what the state's builder said it must be;
4. it may be called **from any thread** (optionally checked by racing it).

How a layer uses it::

    from zapstack.testing.unwind import check_unwind_contract

    def dirty() -> tuple[Mempool, object]:
        pool = Mempool(...); clean = observe(pool)
        pool.add(tx)
        return pool, clean          # subject, observation expected after unwind

    check_unwind_contract(
        {"dirty": dirty, "empty": empty, "after-unwind": twice_dropped},
        unwind=lambda pool: pool.drop(tx.id),
        observe=lambda pool: (len(pool), pool.bytes_used),
    )

``states`` maps a name to a builder returning ``(subject, expected)``; build
one per interesting state -- the contract's value is in the *any state* part.
``observe`` must return something comparable with ``==`` (tuples, dicts,
bytes).  Failures raise :class:`UnwindContractError` naming the state and the
call that broke the contract.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["UnwindContractError", "check_unwind_contract"]

S = TypeVar("S")


class UnwindContractError(AssertionError):
    """An unwind primitive raised, or left observable state behind."""


def _call(name: str, label: str, unwind: Callable[[S], object], subject: S) -> None:
    try:
        unwind(subject)
    except Exception as exc:
        raise UnwindContractError(
            f"state {name!r}: unwind raised on {label}: {type(exc).__name__}: {exc}"
        ) from exc


def _expect(name: str, label: str, observe: Callable[[S], Any], subject: S, want: Any) -> None:
    got = observe(subject)
    if got != want:
        raise UnwindContractError(
            f"state {name!r}: after {label}, observed {got!r}, expected {want!r}"
        )


def _race(unwind: Callable[[S], object], subject: S, racers: int) -> list[BaseException]:
    """Call ``unwind(subject)`` from ``racers`` threads released at once."""
    barrier = threading.Barrier(racers)
    errors: list[BaseException] = []

    def race() -> None:
        barrier.wait()
        try:
            unwind(subject)
        except BaseException as exc:  # collected and reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def check_unwind_contract(
    states: Mapping[str, Callable[[], tuple[S, Any]]],
    unwind: Callable[[S], object],
    observe: Callable[[S], Any],
    *,
    times: int = 2,
    racers: int = 4,
) -> int:
    """Check ``unwind`` against every state in ``states``; return the number checked.

    Parameters
    ----------
    states:
        name -> builder returning ``(subject, expected observation after unwind)``.
    unwind:
        the primitive under test (its return value is ignored).
    observe:
        reads the subject's observable state.
    times:
        sequential calls per state (>= 2: idempotence is part of the contract).
    racers:
        threads that call ``unwind`` at the same instant on a fresh subject of
        each state (0 to skip the race check).

    Raises
    ------
    UnwindContractError
        if a call raised or the observation differs from the expectation.
    """
    if times < 2:
        raise ValueError("the contract calls the primitive at least twice")
    if not states:
        raise ValueError("no states to check")
    for name, build in states.items():
        subject, want = build()
        for i in range(times):
            label = f"call {i + 1} of {times}"
            _call(name, label, unwind, subject)
            _expect(name, label, observe, subject, want)
        if racers:
            subject, want = build()
            errors = _race(unwind, subject, racers)
            if errors:
                exc = errors[0]
                raise UnwindContractError(
                    f"state {name!r}: unwind raised when raced from {racers} threads: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            _expect(name, f"{racers} racing calls", observe, subject, want)
    return len(states)
