"""Nested actor trees: supervisors with Erlang/OTP restart semantics, and trees of tasks.

A `Supervisor` is a Ray actor that starts child actors from specs (`ChildSpec`), watches
them, and restarts them by the rules of an Erlang/OTP supervisor: a restart type per
child (``permanent``, ``transient``, ``temporary``), a strategy for which siblings
restart with it (``one_for_one``, ``one_for_all``, ``rest_for_one``), and a restart
intensity (at most ``max_restarts`` in ``within_s`` seconds) beyond which the supervisor
gives up and reports to its own supervisor. A `SupervisorSpec` makes a supervisor the
child of another, so supervisors form a tree.

What it promises, and what it does not:

- A child that crashes, is killed (SIGKILL) or hangs (alive but not answering a
  ping) is restarted per its restart type and the strategy; a hang is detected within
  ``health_check_interval_s + health_check_timeout_s``. A restart starts a new actor
  (new handle, new process): `Supervisor.call` reaches the current one (so does a
  handle from `Supervisor.child`, asked again after the restart).
- A child's state survives a restart only through a ``store``: the supervisor saves
  each child's ``snapshot()`` at every health check and calls ``restore(state)`` after
  a restart, so up to one interval of changes is lost. A child that must lose nothing
  checkpoints each change itself (as `patterns.Counter` does).
- A call in flight to a child that dies fails (`Supervisor.call`: with
  `patterns.ActorLostError`, naming the supervisor, the child and the method): the
  supervisor restarts actors, it does not send calls again. A method that kills its
  process on every call fails every call that way; each crash is a restart, so such
  calls in a row exhaust the restart intensity and the supervisor gives up.
- A supervisor whose process dies takes its subtree with it (Ray's ownership), and its
  parent restarts the whole subtree; the root is restarted by Ray itself.

- ``close()`` (what ``with`` does) stops the tree in order and returns once Ray reports
  every actor of it dead; every other wait is bounded by a ``timeout`` (the facade's,
  60 s unless given) or by the budget its specs imply. Runtime failures are
  `TreeError` subclasses of `patterns.PatternError`.

Trees of tasks: `tree_reduce` aggregates many values (or ObjectRefs) level by level
without any task waiting on another; `divide_and_conquer` runs a recursion as nested
tasks with a depth bound. Both have a ``budget_s`` for the whole computation: a stuck
task surfaces as `patterns.CallTimeoutError`. `exit_normally` is how a child ends
itself as a normal exit.
"""

from patterns.trees._errors import (
    ChildStartError,
    ChildStateError,
    DuplicateChildError,
    TreeError,
    TreeFailedError,
    UnknownChildError,
)
from patterns.trees._exits import exit_normally
from patterns.trees._specs import ChildSpec, SupervisorSpec
from patterns.trees._supervisor import Supervisor
from patterns.trees._tasks import divide_and_conquer, tree_reduce

__all__ = [
    "ChildSpec",
    "ChildStartError",
    "ChildStateError",
    "DuplicateChildError",
    "Supervisor",
    "SupervisorSpec",
    "TreeError",
    "TreeFailedError",
    "UnknownChildError",
    "divide_and_conquer",
    "exit_normally",
    "tree_reduce",
]
