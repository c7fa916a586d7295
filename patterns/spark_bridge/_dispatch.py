"""Back-pressure for one sender: at most ``max_in_flight`` calls per actor, results as they finish.

A sender (the driver, or one Spark task) walks its batches and sends each to one actor
of the pool. `Dispatcher` keeps a window per actor: when the chosen actor already has
``max_in_flight`` calls out, the sender waits for one of *them* to finish before it
sends, so a slow actor slows down only the batches going to it, queues stay short, and
at most ``pool_size * max_in_flight`` results wait in the object store.

Plain Python over a `patterns._batching.Waiter`: Ray's by default, ``concurrent.futures``
in the unit tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from patterns._batching import RAY_WAITER, Waiter

__all__ = ["Dispatcher", "Finished"]

M = TypeVar("M")


@dataclass
class Finished(Generic[M]):
    """A call that finished (or failed): what was sent with it, the actor, its handle."""

    meta: M
    actor: int
    pending: Any


class Dispatcher(Generic[M]):
    """Send calls to a pool's actors with at most ``max_in_flight`` out per actor.

    Args:
        pool_size: Number of actors.
        max_in_flight: Calls each actor may have out from this sender at once.
        waiter: How to wait for pending handles (default: Ray's).
        first: The actor that wins the first tie (taken modulo ``pool_size``). Senders
            that run at the same time (Spark tasks) each pass their partition number,
            so their first calls go to different actors instead of all to actor 0.

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> from patterns._batching import FUTURE_WAITER
        >>> threads = ThreadPoolExecutor(2)
        >>> dispatcher = Dispatcher(2, max_in_flight=1, waiter=FUTURE_WAITER)
        >>> done = []
        >>> for n in range(4):
        ...     done += dispatcher.send(None, lambda actor, n=n: threads.submit(pow, n, 2), n)
        >>> done += dispatcher.drain()
        >>> sorted(f.pending.result() for f in done)
        [0, 1, 4, 9]
        >>> dispatcher.peak_in_flight
        [1, 1]
    """

    def __init__(
        self, pool_size: int, *, max_in_flight: int, waiter: Waiter = RAY_WAITER, first: int = 0
    ) -> None:
        self._max = max_in_flight
        self._waiter = waiter
        self._out: list[list[tuple[Any, M]]] = [[] for _ in range(pool_size)]
        start = first % pool_size
        self._turn = itertools.cycle([*range(start, pool_size), *range(start)])
        self.sent = [0] * pool_size
        self.peak_in_flight = [0] * pool_size

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet collected, over all actors."""
        return sum(len(out) for out in self._out)

    def _pick(self) -> tuple[int, list[Finished[M]]]:
        """An actor with room (the fewest out; ties in turn), else the first to free up."""
        first = next(self._turn)
        order = [*range(first, len(self._out)), *range(first)]
        best: int = min(order, key=lambda actor: len(self._out[actor]))
        if len(self._out[best]) < self._max:
            return best, []
        busy = [(handle, actor) for actor, out in enumerate(self._out) for handle, _ in out]
        done, _ = self._waiter.wait([handle for handle, _ in busy], 1)
        freed = next(actor for handle, actor in busy if handle == done[0])
        return freed, self._collect(freed, 1)

    def _collect(self, actor: int, at_least: int) -> list[Finished[M]]:
        out = self._out[actor]
        pending = [handle for handle, _ in out]
        done, _ = self._waiter.wait(pending, at_least)
        # ObjectRefs compare by the object they name, futures by identity.
        finished_set = set(done)
        finished = [Finished(meta, actor, h) for h, meta in out if h in finished_set]
        self._out[actor] = [(h, meta) for h, meta in out if h not in finished_set]
        return finished

    def send(self, actor: int | None, call: Callable[[int], Any], meta: M) -> list[Finished[M]]:
        """Send ``call(actor)`` to ``actor``, first waiting while it has ``max_in_flight`` out.

        Args:
            actor: The actor's index, or None for any: one with room, else the first
                one to finish a call (so a slow actor gets less work).
            call: Sends the call to the actor it is given and returns its pending
                handle, without waiting.
            meta: Kept with the call and returned with it when it finishes.

        Returns:
            The calls that finished while waiting for room (maybe none).
        """
        finished: list[Finished[M]] = []
        if actor is None:
            actor, finished = self._pick()
        excess = len(self._out[actor]) - self._max + 1
        if excess > 0:
            finished += self._collect(actor, excess)
        self._out[actor].append((call(actor), meta))
        self.sent[actor] += 1
        self.peak_in_flight[actor] = max(self.peak_in_flight[actor], len(self._out[actor]))
        return finished

    def drain(self) -> Iterator[Finished[M]]:
        """Yield every call still out, each as soon as it finishes (any actor)."""
        while self.in_flight:
            busy = [(handle, actor) for actor, out in enumerate(self._out) for handle, _ in out]
            done, _ = self._waiter.wait([handle for handle, _ in busy], 1)
            finished_actor = next(actor for handle, actor in busy if handle == done[0])
            out = self._out[finished_actor]
            index = next(i for i, (h, _) in enumerate(out) if h == done[0])
            handle, meta = out.pop(index)
            yield Finished(meta, finished_actor, handle)
