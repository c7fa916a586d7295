"""What a run has done, counted once per batch: the ledger and the stats it produces.

Every sender (the driver, or each Spark task) reports the batches it got back; every
pool actor reports the batches it starts. The ledger keys both by batch id, which is
the batch's place in the input (``"p3:b2"``: partition 3, batch 2) or its group key,
and the same in a Spark task's retry. So:

- a batch that Ray re-sent to a restarted actor is *started* twice but *done* once;
- a batch that a retried Spark task sends again is *done* twice but counted once;
- a run's counts (rows, batches, groups) therefore never count a retried batch twice.

The ledger is plain Python (`LedgerState`); the run keeps it in a small Ray actor
that every sender and actor can reach by name, and the driver reads it for progress
lines and for the first failure, which it raises as `BridgeBatchError`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BridgeStats", "Done", "LedgerState"]


@dataclass(frozen=True)
class Done:
    """A batch whose result came back to its sender."""

    batch: str
    actor: int
    rows_in: int
    rows_out: int
    groups: int


@dataclass
class BridgeStats:
    """What a bridge run did: pass one as ``stats=`` and read it after the call returns.

    Counts are per batch id, so a batch that was retried (by Ray after an actor died,
    or by Spark after a task failed) is counted once; the retries show in
    ``batches_rerun`` and ``batches_resent``.

    Attributes:
        transport: ``"executor"`` or ``"driver"``.
        n_actors: Actors in the pool.
        rows_in: Input rows processed.
        rows_out: Result rows.
        batches: Batches processed (calls to the pool, counted once each).
        groups: Groups processed (0 for `map_batches_with_actors`).
        batches_per_actor: Batches processed by each actor, by actor index.
        batches_rerun: Batches an actor started more than once (a restarted actor
            re-ran them). A lower bound: an actor killed at once may not have
            reported its start.
        batches_resent: Batches a sender got back more than once (a retried Spark
            task sent them again); counted once above.
        senders: Processes that sent batches (the driver, or Spark Python workers).
        connections: How many times a Spark Python worker connected to Ray for this run
            (it stays connected between tasks, so usually one per worker).
        peak_in_flight: The most calls one sender had out to one actor at once.
        seconds: Wall time of the run, pool start to result.

    Examples:
        >>> stats = BridgeStats()
        >>> stats.rows_in, stats.batches_rerun
        (0, 0)
    """

    transport: str = ""
    n_actors: int = 0
    rows_in: int = 0
    rows_out: int = 0
    batches: int = 0
    groups: int = 0
    batches_per_actor: list[int] = field(default_factory=list)
    batches_rerun: int = 0
    batches_resent: int = 0
    senders: int = 0
    connections: int = 0
    peak_in_flight: int = 0
    seconds: float = 0.0

    def update(self, summary: dict[str, Any]) -> None:
        """Copy the matching fields of a ledger summary into this object."""
        for name, value in summary.items():
            if hasattr(self, name):
                setattr(self, name, value)


class LedgerState:
    """Batches done and started, per batch id; the first failure; who sent what.

    Examples:
        >>> ledger = LedgerState(n_actors=2)
        >>> ledger.started("p0:b0", actor=0, pid=11)
        >>> ledger.started("p0:b0", actor=0, pid=12)  # re-run after a restart
        >>> ledger.done([Done("p0:b0", 0, rows_in=10, rows_out=10, groups=0)], sender=5)
        >>> ledger.done([Done("p0:b0", 0, rows_in=10, rows_out=10, groups=0)], sender=6)
        >>> s = ledger.summary()
        >>> s["rows_in"], s["batches"], s["batches_rerun"], s["batches_resent"]
        (10, 1, 1, 1)
    """

    def __init__(self, n_actors: int) -> None:
        self.n_actors = n_actors
        self._done: dict[str, Done] = {}
        self._resent: set[str] = set()
        self._starts: Counter[str] = Counter()
        self._senders: set[int] = set()
        self._connections = 0
        self._peak = 0
        self._failure: dict[str, Any] | None = None
        self._trouble: dict[str, Any] | None = None
        self._began = time.monotonic()

    def started(self, batch: str, *, actor: int, pid: int) -> None:
        """An actor (process ``pid``) began ``batch``."""
        self._starts[batch] += 1

    def done(
        self, finished: list[Done], *, sender: int, connected: bool = False, peak: int = 0
    ) -> None:
        """A sender got these batches back; ``connected``: it connected to Ray for this run."""
        self._senders.add(sender)
        self._connections += int(connected)
        self._peak = max(self._peak, peak)
        for item in finished:
            if item.batch in self._done:
                self._resent.add(item.batch)
            else:
                self._done[item.batch] = item

    def fail(self, failure: dict[str, Any]) -> None:
        """A batch failed for good (its own error): the run must stop; keep the first."""
        if self._failure is None:
            self._failure = failure

    def trouble(self, failure: dict[str, Any]) -> None:
        """A batch failed for a reason a retry may fix (its actor died); keep the last."""
        self._trouble = failure

    def failure(self) -> dict[str, Any] | None:
        """The first failure that stops the run, if any."""
        return self._failure

    def last_trouble(self) -> dict[str, Any] | None:
        """The last retryable failure, to explain a run that failed after Spark's retries."""
        return self._trouble

    def summary(self) -> dict[str, Any]:
        """Counts for progress lines and `BridgeStats`."""
        per_actor = [0] * self.n_actors
        rows_in = rows_out = groups = 0
        for item in self._done.values():
            per_actor[item.actor] += 1
            rows_in += item.rows_in
            rows_out += item.rows_out
            groups += item.groups
        return {
            "rows_in": rows_in,
            "rows_out": rows_out,
            "batches": len(self._done),
            "groups": groups,
            "batches_per_actor": per_actor,
            "batches_rerun": sum(1 for n in self._starts.values() if n > 1),
            "batches_resent": len(self._resent),
            "senders": len(self._senders),
            "connections": self._connections,
            "peak_in_flight": self._peak,
            "failed": self._failure is not None,
            "elapsed_s": time.monotonic() - self._began,
        }

    def ping(self) -> bool:
        """Answer once the actor is up."""
        return True
