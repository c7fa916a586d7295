"""Exactly-once plumbing: request ids on the client, a memory of applied ids in the actor.

A facade that talks to a checkpointed actor numbers its mutating calls: one random
client id per facade instance and a sequence 1, 2, 3, ... per stream (one stream per
actor it writes to). The actor keeps a `RequestLog` of the ``(client, seq)`` pairs it
has applied, inside the same snapshot as its state, so a call that Ray re-sends after a
restart is recognised and not applied twice.

A copy of a facade (pickled into a task or another actor) must never reuse the
original's ids, or the actor would take the copy's first call for a retry: a
`RequestIds` therefore draws a fresh client id whenever it is unpickled.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping

__all__ = ["Request", "RequestIds", "RequestLog", "as_request", "new_client_id"]

Request = tuple[int, int] | None
"""A request id as actors receive it: ``(client, seq)``, or None for an unnumbered call."""


def as_request(client: int | None, seq: int | None) -> Request:
    """The request id an actor method got as two optional arguments (None if unnumbered).

    Facades send ``(client, seq)`` only when the actor has a store: without one there is
    nothing to deduplicate against (a restarted actor starts over anyway).

    Examples:
        >>> as_request(7, 1), as_request(None, None)
        ((7, 1), None)
    """
    return None if client is None or seq is None else (client, seq)


def new_client_id() -> int:
    """A random id for one facade instance: the first half of its request ids."""
    return secrets.randbits(62)


class RequestIds:
    """A client id and one request sequence per stream; fresh ones in every copy.

    Examples:
        >>> import pickle
        >>> ids = RequestIds(streams=2)
        >>> ids.next(0)[1], ids.next(0)[1], ids.next(1)[1]
        (1, 2, 1)
        >>> copy = pickle.loads(pickle.dumps(ids))
        >>> copy.client != ids.client, copy.next(0)[1]
        (True, 1)
    """

    __slots__ = ("_seqs", "client")

    def __init__(self, streams: int = 1) -> None:
        self.client = new_client_id()
        # itertools.count's __next__ is atomic under the GIL: threads sharing a
        # facade never draw the same number.
        self._seqs = [itertools.count(1) for _ in range(streams)]

    @property
    def streams(self) -> int:
        """How many independent sequences this client numbers."""
        return len(self._seqs)

    def next(self, stream: int = 0) -> tuple[int, int]:
        """The next ``(client, seq)`` of ``stream``."""
        return self.client, next(self._seqs[stream])

    def __reduce__(self) -> tuple[type[RequestIds], tuple[int]]:
        return (RequestIds, (len(self._seqs),))


class RequestLog:
    """Remembers which ``(client, seq)`` requests were applied, so a retry is a no-op.

    A client numbers its requests 1, 2, 3, ... Ray retries calls that were in flight
    when an actor died, and runs retries out of order, so the log keeps, per client,
    a floor (every seq at or below it was applied) and the set of applied seqs above
    it; the set stays small because the floor advances as soon as the gaps fill.

    Two bounds keep memory finite, each documented where it bites: at most
    ``max_clients`` clients are remembered (the least recently seen is forgotten), and
    a client may have at most ``max_window`` requests applied above a missing one
    (after that the missing one is given up on: its late arrival counts as done).

    Examples:
        >>> log = RequestLog()
        >>> log.first_time(7, 1), log.first_time(7, 1), log.first_time(7, 3)
        (True, False, True)
        >>> log.snapshot()
        {7: (1, (3,))}
    """

    __slots__ = ("_clients", "max_clients", "max_window")

    def __init__(self, *, max_clients: int = 100_000, max_window: int = 65_536) -> None:
        self._clients: dict[int, tuple[int, set[int]]] = {}
        self.max_clients = max_clients
        self.max_window = max_window

    def __len__(self) -> int:
        return len(self._clients)

    def first_time(self, client: int, seq: int) -> bool:
        """Record request ``(client, seq)``; True if it was not applied before."""
        entry = self._clients.pop(client, None)  # re-inserted last: most recently seen
        if entry is None:
            floor, above = 0, set[int]()
            if len(self._clients) >= self.max_clients:
                del self._clients[next(iter(self._clients))]
        else:
            floor, above = entry
        if seq <= floor or seq in above:
            self._clients[client] = (floor, above)
            return False
        if seq == floor + 1:
            floor = seq
            while floor + 1 in above:
                floor += 1
                above.discard(floor)
        else:
            above.add(seq)
            if len(above) > self.max_window:
                floor = min(above)
                above.discard(floor)
                while floor + 1 in above:
                    floor += 1
                    above.discard(floor)
        self._clients[client] = (floor, above)
        return True

    def snapshot(self) -> dict[int, tuple[int, tuple[int, ...]]]:
        """Plain, picklable copy of the log (for checkpoints)."""
        return {c: (floor, tuple(sorted(above))) for c, (floor, above) in self._clients.items()}

    @classmethod
    def from_snapshot(
        cls, snapshot: Mapping[int, tuple[int, tuple[int, ...]]], **limits: int
    ) -> RequestLog:
        """Rebuild a log from `snapshot()` output."""
        log = cls(**limits)
        log._clients = {c: (floor, set(above)) for c, (floor, above) in snapshot.items()}
        return log
