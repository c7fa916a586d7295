"""What a run has done, counted once per batch: the ledger and the stats it produces.

Every sender (the driver, or each Spark task) reports the batches it got back; every
pool actor reports the batches it starts. The ledger keys both by batch id, which is
the batch's place in the input (``"p3:b2"``: partition 3, batch 2) or its group key,
and the same in a Spark task's retry. So:

- a batch that Ray re-sent to a restarted actor is *started* twice but *done* once;
- a batch that a retried Spark task sends again is *done* twice but counted once;
- a run's counts (rows, batches, groups) therefore never count a retried batch twice.

The ledger is plain Python (`LedgerState`, one run's). `Ledgers` holds the ledgers
of several runs by run id; it lives in a small Ray actor that every sender and actor
can reach by name, and the driver reads it for progress lines and for the first
failure, which it raises as `BridgeBatchError`. A run with a pool of its own starts
one such actor and kills it at the end; a `BridgePool` keeps one for its whole life,
and each of its runs only opens and closes its own entry (`RunLedger` names the run
in every call), so a call on a reused pool starts no actor at all.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BridgeStats", "Done", "LedgerState", "Ledgers", "RunLedger"]


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


class Ledgers:
    """The ledgers of a pool's runs, by run id: what the ledger actor holds.

    A run's ledger opens at its first report (from whichever process comes first) and
    is dropped by `close`; a report for a closed run (a straggler of a run that
    already returned) is ignored. Runs that never close (their driver died) are
    dropped oldest first once more than `MAX_OPEN` are open.

    Examples:
        >>> ledgers = Ledgers(n_actors=2)
        >>> ledgers.done("run-a", [Done("p0:g0", 1, rows_in=5, rows_out=1, groups=1)], sender=7)
        >>> ledgers.summary("run-a")["groups"], ledgers.summary("run-b")["groups"]
        (1, 0)
        >>> ledgers.close("run-a")["rows_in"]
        5
        >>> ledgers.done("run-a", [Done("p0:g1", 0, rows_in=5, rows_out=1, groups=1)], sender=7)
        >>> ledgers.summary("run-a")["groups"]  # closed: a straggler changes nothing
        0
    """

    MAX_OPEN = 64
    MAX_CLOSED = 4096

    def __init__(self, n_actors: int) -> None:
        self.n_actors = n_actors
        self._runs: OrderedDict[str, LedgerState] = OrderedDict()
        self._closed: OrderedDict[str, None] = OrderedDict()

    def _run(self, run: str) -> LedgerState:
        if run in self._closed:
            return LedgerState(self.n_actors)  # a throw-away: the run is over
        state = self._runs.get(run)
        if state is None:
            state = self._runs[run] = LedgerState(self.n_actors)
            while len(self._runs) > self.MAX_OPEN:
                self._runs.popitem(last=False)
        return state

    def started(self, run: str, batch: str, *, actor: int, pid: int) -> None:
        """See `LedgerState.started`."""
        self._run(run).started(batch, actor=actor, pid=pid)

    def done(
        self,
        run: str,
        finished: list[Done],
        *,
        sender: int,
        connected: bool = False,
        peak: int = 0,
    ) -> None:
        """See `LedgerState.done`."""
        self._run(run).done(finished, sender=sender, connected=connected, peak=peak)

    def fail(self, run: str, failure: dict[str, Any]) -> None:
        """See `LedgerState.fail`."""
        self._run(run).fail(failure)

    def trouble(self, run: str, failure: dict[str, Any]) -> None:
        """See `LedgerState.trouble`."""
        self._run(run).trouble(failure)

    def failure(self, run: str) -> dict[str, Any] | None:
        """See `LedgerState.failure`."""
        return self._run(run).failure()

    def last_trouble(self, run: str) -> dict[str, Any] | None:
        """See `LedgerState.last_trouble`."""
        return self._run(run).last_trouble()

    def summary(self, run: str) -> dict[str, Any]:
        """See `LedgerState.summary`."""
        return self._run(run).summary()

    def close(self, run: str) -> dict[str, Any]:
        """The run's final summary; its ledger is dropped and later reports are ignored."""
        summary = self._run(run).summary()
        self._runs.pop(run, None)
        self._closed[run] = None
        while len(self._closed) > self.MAX_CLOSED:
            self._closed.popitem(last=False)
        return summary

    def open_runs(self) -> list[str]:
        """The runs whose ledger is open (for tests)."""
        return list(self._runs)

    def ping(self) -> bool:
        """Answer once the actor is up."""
        return True


class RunLedger:
    """One run's view of a `Ledgers` actor: each method sends the call with the run id.

    Every method returns the call's ``ObjectRef`` without waiting.
    """

    def __init__(self, actor: Any, run: str) -> None:
        self.actor = actor
        self.run = run

    def started(self, batch: str, *, actor: int, pid: int) -> Any:
        return self.actor.started.remote(self.run, batch, actor=actor, pid=pid)

    def done(self, finished: list[Done], *, sender: int, connected: bool, peak: int) -> Any:
        return self.actor.done.remote(
            self.run, finished, sender=sender, connected=connected, peak=peak
        )

    def fail(self, failure: dict[str, Any]) -> Any:
        return self.actor.fail.remote(self.run, failure)

    def trouble(self, failure: dict[str, Any]) -> Any:
        return self.actor.trouble.remote(self.run, failure)

    def failure(self) -> Any:
        return self.actor.failure.remote(self.run)

    def last_trouble(self) -> Any:
        return self.actor.last_trouble.remote(self.run)

    def summary(self) -> Any:
        return self.actor.summary.remote(self.run)

    def close(self) -> Any:
        return self.actor.close.remote(self.run)

    def ping(self) -> Any:
        return self.actor.ping.remote()
