"""The supervision rules in plain Python: no Ray, no processes, a clock you pass in.

This is the part of a supervisor that decides; the actor (`patterns.trees._actor`)
only carries the decisions out. Keeping it apart means every rule below is
unit-tested with a fake clock, and reads like the Erlang/OTP ``supervisor`` it
follows:

- **Restart types.** ``permanent`` children are always restarted, ``transient``
  ones only after an abnormal exit, ``temporary`` ones never (and a temporary
  child that ends, or is stopped because a sibling failed, is forgotten).
- **Strategies.** Which children a failure restarts: only the failed one
  (``one_for_one``), all of them (``one_for_all``), or the failed one and every
  child started after it (``rest_for_one``). Siblings are stopped in reverse start
  order, then the whole group is started again in start order.
- **Intensity.** Every restart is recorded; more than ``max_restarts`` of them
  within ``within_s`` seconds and the supervisor gives up (OTP's ``MaxR`` in
  ``MaxT``).
- **Backoff** (after Akka's ``BackoffSupervisor``). A child that fails again soon
  after it was started is restarted after an exponentially growing delay with
  random jitter; a first failure is restarted at once. A child that ran for
  ``within_s`` seconds without failing starts over at no delay.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "ABNORMAL",
    "NORMAL",
    "RESTART_TYPES",
    "STRATEGIES",
    "Backoff",
    "ChildRecord",
    "Decision",
    "RestartIntensity",
    "Supervision",
]

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES = ("permanent", "transient", "temporary")

# How a child ended. NORMAL: it asked to stop (exit_normally, ray.actor.exit_actor).
# ABNORMAL: anything else (a crash, a SIGKILL, a hang the supervisor ended, a child
# supervisor that gave up, a start that failed).
NORMAL = "normal"
ABNORMAL = "abnormal"

# Child states, as which_children() reports them.
STARTING = "starting"
RUNNING = "running"
RESTARTING = "restarting"  # waiting for its (possibly delayed) restart
STOPPED = "stopped"  # not running and not to be restarted (terminated, or a normal exit)


class RestartIntensity:
    """OTP's restart intensity: at most ``max_restarts`` restarts in any ``within_s`` window.

    Examples:
        >>> intensity = RestartIntensity(max_restarts=2, within_s=10.0)
        >>> [intensity.add(now) for now in (0.0, 1.0, 2.0)]  # the third is one too many
        [False, False, True]
        >>> intensity.add(20.0)  # the window moved on: the old restarts no longer count
        False
    """

    def __init__(self, max_restarts: int, within_s: float) -> None:
        self.max_restarts = max_restarts
        self.within_s = within_s
        self._times: deque[float] = deque()

    def add(self, now: float) -> bool:
        """Record a restart at ``now``; True if that makes more than allowed in the window."""
        threshold = now - self.within_s
        while self._times and self._times[0] < threshold:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) > self.max_restarts

    def count(self, now: float) -> int:
        """How many restarts fall within the window that ends at ``now``."""
        return sum(1 for t in self._times if t >= now - self.within_s)


class Backoff:
    """Exponential backoff with jitter for a child that keeps failing.

    The first failure in a row restarts at once. The second waits ``first_s``, the
    third ``2 * first_s``, ... up to ``max_s``; each delay is stretched by a random
    factor in ``[1, 1 + jitter)`` so that children failing together do not restart
    in lockstep.

    Examples:
        >>> backoff = Backoff(0.5, 4.0, jitter=0.0)
        >>> [backoff.delay(n) for n in range(1, 7)]
        [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    """

    def __init__(
        self,
        first_s: float,
        max_s: float,
        *,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.jitter = jitter
        self._rng = rng or random.Random()

    def delay(self, failures_in_a_row: int) -> float:
        """Seconds to wait before restarting after ``failures_in_a_row`` failures (>= 1)."""
        if failures_in_a_row <= 1:
            return 0.0
        base = min(self.max_s, self.first_s * 2 ** (failures_in_a_row - 2))
        return float(base * (1.0 + self._rng.random() * self.jitter))


@dataclass
class ChildRecord:
    """What the rules need to know about one child (the actor adds its handle and pid)."""

    name: str
    restart: str
    state: str = STOPPED
    restarts: int = 0  # how many times this child was restarted by the supervisor
    failures_in_a_row: int = 0  # for the backoff; reset after a stable run
    started_at: float | None = None
    restart_at: float | None = None
    last_exit: str | None = None


@dataclass
class Decision:
    """What the supervisor must do after a child ended.

    Attributes:
        stop: Running siblings to stop now, in this order (reverse start order).
        restart: Children to start again, in this order (start order), once
            ``restart_at`` is reached.
        remove: Temporary children to forget (stop them first if they still run).
        delay_s: The backoff delay before the restart.
        give_up: When set, the restart intensity was exceeded: stop every child and
            the supervisor itself, and report this reason to the parent.
    """

    stop: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    delay_s: float = 0.0
    give_up: str | None = None


class Supervision:
    """The decision half of a supervisor: children in start order and the rules above.

    Args:
        children: ``(name, restart_type)`` pairs in start order.
        strategy: ``"one_for_one"``, ``"one_for_all"`` or ``"rest_for_one"``.
        max_restarts: Restarts allowed within ``within_s`` seconds.
        within_s: The intensity window, also the run time after which a child's
            backoff starts over.
        backoff: The backoff for children that keep failing (None: restart at once).
        clock: Returns the current time in seconds (``time.monotonic`` in the actor;
            a fake one in the tests).

    Examples:
        >>> now = [0.0]
        >>> rules = Supervision(
        ...     [("db", "permanent"), ("cache", "permanent"), ("web", "permanent")],
        ...     strategy="rest_for_one", max_restarts=3, within_s=5.0, clock=lambda: now[0],
        ... )
        >>> for name in rules.order:
        ...     rules.started(name)
        >>> decision = rules.exited("cache", "abnormal", "crashed")
        >>> decision.stop, decision.restart  # web stopped first, then both restarted
        (['web'], ['cache', 'web'])
    """

    def __init__(
        self,
        children: Iterable[tuple[str, str]],
        *,
        strategy: str,
        max_restarts: int,
        within_s: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.strategy = strategy
        self.within_s = within_s
        self.intensity = RestartIntensity(max_restarts, within_s)
        self.backoff = backoff
        self.clock = clock
        self.order: list[str] = []
        self.records: dict[str, ChildRecord] = {}
        for name, restart in children:
            self.add(name, restart)

    # --- membership ---------------------------------------------------------------------

    def add(self, name: str, restart: str) -> ChildRecord:
        """Append a child at the end of the start order (``start_child``)."""
        if name in self.records:
            msg = f"a child named {name!r} exists already"
            raise ValueError(msg)
        record = ChildRecord(name, restart)
        self.order.append(name)
        self.records[name] = record
        return record

    def remove(self, name: str) -> None:
        """Forget a child (a temporary one that ended, or ``delete_child``)."""
        self.order.remove(name)
        del self.records[name]

    # --- events -------------------------------------------------------------------------

    def starting(self, name: str) -> None:
        """The child's actor is being created."""
        self.records[name].state = STARTING

    def started(self, name: str) -> None:
        """The child answered after its start: it runs."""
        record = self.records[name]
        record.state = RUNNING
        record.started_at = self.clock()
        record.restart_at = None

    def stopped(self, name: str) -> None:
        """The supervisor stopped the child on purpose (``terminate_child``): no restart."""
        record = self.records[name]
        record.state = STOPPED
        record.restart_at = None

    def exited(self, name: str, how: str, reason: str) -> Decision:
        """The child ended by itself (``how`` is `NORMAL` or `ABNORMAL`): decide what follows."""
        now = self.clock()
        record = self.records[name]
        record.state = STOPPED
        record.last_exit = reason
        if not _restarts(record.restart, how):
            if record.restart == "temporary":
                self.remove(name)
                return Decision(remove=[name])
            return Decision()
        if self.intensity.add(now):
            return Decision(give_up=self._give_up_reason(name, reason, now))
        group = self._group(name)
        decision = Decision(
            stop=[n for n in reversed(group) if n != name and self._alive(n)],
            remove=[n for n in group if n != name and self.records[n].restart == "temporary"],
        )
        decision.restart = [n for n in group if n not in decision.remove]
        decision.delay_s = self._delay(record, now)
        for removed in decision.remove:
            self.remove(removed)
        for restarted in decision.restart:
            other = self.records[restarted]
            other.state = RESTARTING
            other.restart_at = now + decision.delay_s
            other.restarts += 1
        return decision

    def due(self) -> list[str]:
        """Children whose restart time has come, in start order."""
        now = self.clock()
        return [
            n
            for n in self.order
            if self.records[n].state == RESTARTING and (self.records[n].restart_at or 0.0) <= now
        ]

    def next_restart_at(self) -> float | None:
        """The earliest pending restart time, if any."""
        times = [
            r.restart_at
            for r in self.records.values()
            if r.state == RESTARTING and r.restart_at is not None
        ]
        return min(times) if times else None

    # --- helpers ------------------------------------------------------------------------

    def _alive(self, name: str) -> bool:
        return self.records[name].state in (RUNNING, STARTING)

    def _group(self, name: str) -> list[str]:
        if self.strategy == "one_for_one":
            return [name]
        if self.strategy == "one_for_all":
            return list(self.order)
        return self.order[self.order.index(name) :]  # rest_for_one

    def _delay(self, record: ChildRecord, now: float) -> float:
        stable = record.started_at is not None and now - record.started_at >= self.within_s
        record.failures_in_a_row = 1 if stable else record.failures_in_a_row + 1
        return self.backoff.delay(record.failures_in_a_row) if self.backoff else 0.0

    def _give_up_reason(self, name: str, reason: str, now: float) -> str:
        count = self.intensity.count(now)
        return (
            f"more than max_restarts={self.intensity.max_restarts} restarts within "
            f"{self.within_s:g} s ({count}); the last: child {name!r} {reason}"
        )


def _restarts(restart: str, how: str) -> bool:
    if restart == "permanent":
        return True
    if restart == "transient":
        return how != NORMAL
    return False
