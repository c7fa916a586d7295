"""Back-pressure for one sender: at most ``max_in_flight`` calls per actor, results as they finish.

A sender (the driver, or one Spark task) walks its batches and sends each to one actor
of the pool. `Dispatcher` keeps a window per actor: when the chosen actor already has
``max_in_flight`` calls out, the sender waits for one of *them* to finish before it
sends, so a slow actor slows down only the batches going to it, queues stay short, and
at most ``n_actors * max_in_flight`` results wait in the object store.

Every wait is bounded: when no call out finishes within ``timeout`` seconds (the first
reply may take ``startup_s`` more, while the actors start), the sender raises
`patterns.errors.CallTimeoutError` naming the pool, the method and the actors it waited
for, instead of waiting on a stuck actor for ever.

Plain Python over a `patterns._batching.Waiter`: Ray's by default, ``concurrent.futures``
in the unit tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from patterns._batching import RAY_WAITER, Waiter
from patterns.errors import CallTimeoutError

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
        n_actors: Number of actors.
        max_in_flight: Calls each actor may have out from this sender at once.
        waiter: How to wait for pending handles (default: Ray's).
        timeout: Seconds any wait may last without a call finishing (None: no bound).
        startup_s: Extra seconds for the waits before the first call finishes (the
            actors may still be starting).
        who: How errors name the pool (``"BridgePool 'scores'"``).
        method: How errors name the call (``"run_batch"``).
        first: The actor that wins the first tie (taken modulo ``n_actors``). Senders
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
        self,
        n_actors: int,
        *,
        max_in_flight: int,
        waiter: Waiter = RAY_WAITER,
        timeout: float | None = None,
        startup_s: float = 0.0,
        who: str = "pool",
        method: str = "call",
        first: int = 0,
    ) -> None:
        self._max = max_in_flight
        self._waiter = waiter
        self._timeout = timeout
        self._startup_s = startup_s
        self._who = who
        self._method = method
        self._replied = False
        self._out: list[list[tuple[Any, M]]] = [[] for _ in range(n_actors)]
        start = first % n_actors
        self._turn = itertools.cycle([*range(start, n_actors), *range(start)])
        self.sent = [0] * n_actors
        self.peak_in_flight = [0] * n_actors

    def _wait(self, pending: list[Any], num_returns: int, actors: list[int]) -> list[Any]:
        """``num_returns`` finished handles of ``pending``; `CallTimeoutError` past the bound."""
        bound = self._timeout
        if bound is not None and not self._replied:
            bound += self._startup_s
        done, _ = self._waiter.wait(pending, num_returns, timeout=bound)
        if len(done) < num_returns:
            waited = ", ".join(str(actor) for actor in sorted(set(actors)))
            msg = (
                f"{self._who}: {self._method} got no reply within {bound:g} s from actor "
                f"{waited} ({len(pending)} call(s) out): the actor is stuck or slower than "
                "the run's timeout (raise timeout=, or None for no bound)"
            )
            raise CallTimeoutError(msg)
        self._replied = True
        return done

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
        done = self._wait([handle for handle, _ in busy], 1, [actor for _, actor in busy])
        freed = next(actor for handle, actor in busy if handle == done[0])
        return freed, self._collect(freed, 1)

    def _collect(self, actor: int, at_least: int) -> list[Finished[M]]:
        out = self._out[actor]
        pending = [handle for handle, _ in out]
        done = self._wait(pending, at_least, [actor])
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
            done = self._wait([handle for handle, _ in busy], 1, [actor for _, actor in busy])
            finished_actor = next(actor for handle, actor in busy if handle == done[0])
            out = self._out[finished_actor]
            index = next(i for i, (h, _) in enumerate(out) if h == done[0])
            handle, meta = out.pop(index)
            yield Finished(meta, finished_actor, handle)
