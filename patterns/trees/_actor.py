"""The supervisor actor: carries out what `patterns.trees._policy.Supervision` decides.

It is an *async* Ray actor, so that one process both watches its children (a
monitor loop, an asyncio task started in ``__init__``) and answers calls
(``which_children``, ``start_child``, ``tree``, ...) while it does. The rules of
the loop:

- children are started one after another in start order, each one's constructor
  (and ``restore``) finished before the next starts; they are stopped in reverse
  order, each given its ``shutdown_timeout_s`` to end before it is killed;
- every ``health_check_interval_s`` each running child is pinged (its ``snapshot()``
  when there is a store: one call is both the ping and the checkpoint). A ping
  that fails with ``ActorDiedError`` is an exit; a ping that gets no answer within
  ``health_check_timeout_s`` is a hang: the child is killed and treated as crashed;
- everything that changes the set of children holds one asyncio lock, so a restart
  never interleaves with ``terminate_child`` or ``stop``.

A request the tree refuses, or a child that fails to start, raises one of
`patterns.trees._errors` (its message says what happened, naming the child by its path
from the root); the `Supervisor` facade puts its own name and the method in front.

Children are created by this actor, so Ray makes them share its fate: if the
supervisor's process dies, they die too, and the supervisor's own supervisor (or,
for the root, Ray) starts the subtree again. That is what makes restarting a middle
supervisor restart its whole subtree and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import psutil
import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from patterns._calls import wait_until_dead
from patterns._checkpointer import Checkpointer, member_key
from patterns._ray_internals import actor_id_hex, ask_actor_to_exit, ready_ref, run_in_actor
from patterns.checkpointing import CheckpointStore
from patterns.errors import PatternError
from patterns.trees._errors import (
    ChildStartError,
    ChildStateError,
    DuplicateChildError,
    TreeFailedError,
    UnknownChildError,
)
from patterns.trees._exits import classify_exit, summarize_death, this_host, whoami
from patterns.trees._policy import (
    ABNORMAL,
    NORMAL,
    RESTARTING,
    RUNNING,
    STARTING,
    Backoff,
    Supervision,
)
from patterns.trees._specs import (
    PATH_SEPARATOR,
    SUPERVISOR_SHUTDOWN_MARGIN_S,
    ChildSpec,
    SupervisorConfig,
    SupervisorSpec,
    start_budget_s,
)

__all__ = ["RemoteSupervisorActor", "SupervisorActor", "remote_cause"]

_log = logging.getLogger(__name__)

# Supervisor states (status()["state"]).
BOOTING = "starting"
SERVING = "running"
FAILED = "failed"  # gave up (intensity) or could not start its children
STOPPING = "stopping"
STOPPED = "stopped"

# How long a supervisor that gave up waits for its parent to take the news.
ESCALATION_TIMEOUT_S = 30.0

# How long to wait, after a ``ray.kill``, for Ray to report the actor dead. A kill is
# only a request: until the node carries it out the actor still answers calls.
KILL_CONFIRM_S = 15.0
# How often a lookup waiting for a (re)starting child looks again.
_LOOKUP_POLL_S = 0.05


class _StartError(Exception):
    """A child could not be started (its constructor raised, timed out, ...)."""


@dataclass
class _Child:
    spec: ChildSpec | SupervisorSpec
    checkpointer: Checkpointer | None
    handle: ActorHandle[Any] | None = None
    pid: int | None = None
    node_id: str | None = None
    host: str | None = None
    health_error: str | None = None
    exited_at: float | None = None  # wall clock, so a test can time a detection


def remote_cause(exc: BaseException) -> PatternError | None:
    """The library error an actor raised, from what its caller got (None if it raised none).

    Ray re-raises an actor's exception as a ``RayTaskError`` that is also an instance of
    the exception's class, holding the original as ``cause``; when it cannot build that
    class, `patterns._calls.get` turns it into a `RemoteCallError` caused by it.
    """
    for candidate in (exc, exc.__cause__):
        if isinstance(candidate, RayTaskError) and isinstance(candidate.cause, PatternError):
            return candidate.cause
    return None


def _reraise(exc: BaseException) -> None:
    """Raise again the library error an actor below raised (so it reaches the caller as is)."""
    cause = remote_cause(exc)
    if cause is not None:
        raise type(cause)(str(cause)) from None


def _remaining(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


async def _process_gone(pid: int | None, host: str | None, deadline: float) -> None:
    """Wait until a stopped child's process has really exited, if it ran on this host.

    Ray reports an actor dead as soon as its worker disconnects, before the process's
    ``atexit`` handlers have run; a child's clean-up would then overlap the next
    child's stop. On this host the process itself can be watched (on another, Ray's
    word is all there is).
    """
    if pid is None or host != this_host():
        return
    while time.monotonic() < deadline:
        try:
            # A zombie has exited; it only waits for its parent (the raylet) to reap it.
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.Error:  # gone, or a PID we may not look at: not our child any more
            return
        await asyncio.sleep(0.02)


def _kill(handle: ActorHandle[Any] | None) -> None:
    if handle is not None:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)


async def _until_dead(handle: Any, within_s: float = KILL_CONFIRM_S) -> bool:
    """Wait until Ray reports a killed actor dead: True once it does, False after ``within_s``.

    Cheap when the actor is dead already (the probe fails at once). Without this wait
    a supervisor could report a child stopped while the child still answered. The
    library's one wait-until-dead, run off the event loop (it blocks).
    """
    alive = await asyncio.to_thread(wait_until_dead, [handle], timeout=within_s)
    return not alive


class SupervisorActor:
    """A supervisor's process: its children, its monitor loop, its answers.

    Args:
        name: Its name (the root's, or its name among its parent's children).
        path: Its path from the root (``""`` for the root, ``"team"``, ``"team/sub"``):
            how its messages name its children.
        children: Its child specs, in start order.
        config: Strategy, intensity, health checks, backoff.
        store: Where children's snapshots go (None: no snapshots).
        key: The checkpoint key prefix of this supervisor (a child's is
            ``member_key(key, child)``).
        parent: The supervising supervisor's handle (None for the root).
    """

    def __init__(
        self,
        name: str,
        path: str,
        children: list[ChildSpec | SupervisorSpec],
        config: SupervisorConfig,
        store: CheckpointStore | None,
        key: str | None,
        parent: ActorHandle[Any] | None,
    ) -> None:
        self._name = name
        self._path = path
        self._config = config
        self._store = store
        self._key = key
        self._parent = parent
        self._actor_id = ray.get_runtime_context().get_actor_id()
        self._self_handle: ActorHandle[Any] = ray.get_runtime_context().current_actor
        backoff = Backoff(*config.backoff) if config.backoff else None
        self._rules = Supervision(
            [(spec.name, spec.restart) for spec in children],
            strategy=config.strategy,
            max_restarts=config.max_restarts,
            within_s=config.within_s,
            backoff=backoff,
            clock=time.monotonic,
        )
        self._children = {spec.name: self._new_child(spec) for spec in children}
        self._state = BOOTING
        self._reason: str | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._booted = asyncio.Event()
        self._escalations: dict[str, tuple[str, str]] = {}
        self._loop_errors = 0
        self._check_now = False
        # The actor's event loop runs __init__: the tree starts without waiting for a call,
        # which is also what happens when Ray restarts a root supervisor's process.
        self._task = asyncio.get_running_loop().create_task(self._run())

    # --- building blocks ------------------------------------------------------------------

    def _path_of(self, name: str) -> str:
        """A child's path from the root (``"team/worker"``): how messages name it."""
        return f"{self._path}{PATH_SEPARATOR}{name}" if self._path else name

    def _myself(self) -> str:
        return f"the supervisor {self._path!r}" if self._path else "the supervisor"

    def _new_child(self, spec: ChildSpec | SupervisorSpec) -> _Child:
        checkpointer = None
        if self._store is not None and spec.checkpointed and self._key is not None:
            checkpointer = Checkpointer(self._store, member_key(self._key, spec.name), every=1)
        return _Child(spec, checkpointer)

    def _create(self, spec: ChildSpec | SupervisorSpec) -> ActorHandle[Any]:
        if isinstance(spec, SupervisorSpec):
            store = spec.config.store if spec.config.store is not None else self._store
            key = member_key(self._key, spec.name) if self._key is not None else None
            options = spec.actor_options
            handle: ActorHandle[Any] = RemoteSupervisorActor.options(**options).remote(
                spec.name,
                self._path_of(spec.name),
                list(spec.children),
                spec.config,
                store,
                key,
                self._self_handle,
            )
            return handle
        remote: Any = spec.remote_class.options(**spec.actor_options)
        created: ActorHandle[Any] = remote.remote(*spec.args, **spec.kwargs)
        return created

    async def _start_child(self, name: str) -> None:
        """Create the child, wait until it answers (and has restored), mark it running."""
        child = self._children[name]
        spec = child.spec
        self._rules.starting(name)
        handle: Any = None
        pid: int
        node_id: str
        host: str
        try:
            handle = self._create(spec)
            child.handle = handle
            pid, node_id, host = await asyncio.wait_for(
                run_in_actor(handle, whoami), spec.start_timeout_s
            )
            if isinstance(spec, SupervisorSpec):
                status = await asyncio.wait_for(
                    handle.start.remote(), spec.subtree_start_timeout_s()
                )
                if status["state"] != SERVING:
                    raise _StartError(f"its own tree failed: {status['reason']}")
            if child.checkpointer is not None:
                found = await asyncio.to_thread(child.checkpointer.restore)
                if found is not None:
                    await asyncio.wait_for(handle.restore.remote(found.state), spec.start_timeout_s)
        except Exception as exc:
            _kill(handle)
            child.handle = None
            if isinstance(exc, _StartError):
                raise
            if isinstance(exc, TimeoutError | asyncio.TimeoutError):
                raise _StartError(f"no answer within {spec.start_timeout_s:g} s") from exc
            raise _StartError(summarize_death(exc)) from exc
        child.pid, child.node_id, child.host, child.health_error = pid, node_id, host, None
        self._rules.started(name)

    async def _stop_child(self, child: _Child) -> None:
        """Stop one child gracefully within its shutdown timeout, then make sure it is dead."""
        handle: Any = child.handle
        spec = child.spec
        pid, host = child.pid, child.host
        child.handle, child.pid, child.node_id = None, None, None
        if handle is None:
            return
        deadline = time.monotonic() + spec.shutdown_timeout_s
        try:
            if isinstance(spec, SupervisorSpec):
                await asyncio.wait_for(handle.stop.remote(), _remaining(deadline))
            else:
                if child.checkpointer is not None:  # a stopped child loses nothing
                    state = await asyncio.wait_for(handle.snapshot.remote(), _remaining(deadline))
                    await asyncio.to_thread(child.checkpointer.save, state)
                ask_actor_to_exit(handle)
                # Answers only by failing, once the actor has exited.
                await asyncio.wait_for(ready_ref(handle), _remaining(deadline))
        except Exception:  # dead already, hung, or refused: it is killed below either way
            pass
        _kill(handle)
        if not await _until_dead(handle):
            _log.warning(
                "supervisor %r: child %r still answers after ray.kill", self._name, spec.name
            )
        # Within its shutdown timeout, wait for the process itself to end.
        await _process_gone(pid, host, deadline)

    async def _stop_all(self) -> None:
        for name in reversed(list(self._rules.order)):
            child = self._children.get(name)
            if child is not None and child.handle is not None:
                await self._stop_child(child)
                self._rules.stopped(name)

    def _current(self, name: str, handle: ActorHandle[Any]) -> bool:
        child = self._children.get(name)
        return (
            child is not None
            and child.handle is handle
            and self._rules.records[name].state in (RUNNING, STARTING)
        )

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            async with self._lock:
                started: list[str] = []
                try:
                    for name in list(self._rules.order):
                        await self._start_child(name)
                        started.append(name)
                except _StartError as exc:
                    for done in reversed(started):
                        await self._stop_child(self._children[done])
                        self._rules.stopped(done)
                    self._state = FAILED
                    self._reason = f"child {self._path_of(name)!r} failed to start: {exc}"
                    return
                self._state = SERVING
        finally:
            self._booted.set()
        await self._monitor()

    async def _monitor(self) -> None:
        interval = self._config.health_check_interval_s
        next_check = time.monotonic()
        while self._state == SERVING:
            try:
                if time.monotonic() >= next_check or self._check_now:
                    self._check_now = False
                    next_check = time.monotonic() + interval
                    await self._health_check()
                if self._state == SERVING and (self._escalations or self._rules.due()):
                    async with self._lock:
                        await self._take_escalations()
                        await self._start_due()
            except Exception:  # the loop must outlive any single bad round
                self._loop_errors += 1
                _log.exception("supervisor %r: error in the monitor loop", self._name)
            wake_at = min(next_check, self._rules.next_restart_at() or math.inf)
            self._wake.clear()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - time.monotonic()))

    async def _health_check(self) -> None:
        pending: dict[asyncio.Future[Any], tuple[str, ActorHandle[Any]]] = {}
        for name in list(self._rules.order):
            child = self._children[name]
            if self._rules.records[name].state != RUNNING or child.handle is None:
                continue
            handle: Any = child.handle
            if child.checkpointer is not None:
                ping: Any = handle.snapshot.remote()  # the ping is the checkpoint
            else:
                ping = ready_ref(handle)
            pending[asyncio.ensure_future(ping)] = (name, handle)
        deadline = time.monotonic() + self._config.health_check_timeout_s
        while pending:
            done, _ = await asyncio.wait(
                pending, timeout=_remaining(deadline), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                break
            for future in done:
                name, handle = pending.pop(future)
                await self._answered(name, handle, future)
        for future, (name, handle) in pending.items():
            future.cancel()
            if self._current(name, handle):
                _kill(handle)
                timeout = self._config.health_check_timeout_s
                reason = f"hung: no answer to a health check within {timeout:g} s, killed"
                async with self._lock:
                    if self._children[name].handle is handle:
                        await self._apply_exit(name, ABNORMAL, reason)
                        await self._start_due()

    async def _answered(
        self, name: str, handle: ActorHandle[Any], future: asyncio.Future[Any]
    ) -> None:
        if not self._current(name, handle):
            return  # stopped or replaced while the ping was in flight
        child = self._children[name]
        try:
            value = future.result()
        except ActorUnavailableError:
            return  # unreachable for now, not known dead: the next round decides
        except RayActorError as exc:
            await self._died(name, handle, exc)
            async with self._lock:
                await self._start_due()
            return
        except Exception as exc:  # the child answered, but its snapshot() raised
            child.health_error = f"snapshot() raised: {summarize_death(exc)}"
            return
        child.health_error = None
        if child.checkpointer is not None:
            try:
                await asyncio.to_thread(child.checkpointer.save, value)
            except Exception as exc:
                child.health_error = f"checkpoint not saved: {exc}"

    async def _died(self, name: str, handle: ActorHandle[Any], exc: BaseException) -> bool:
        """Record that ``handle``, child ``name``, died with ``exc``; True if that was news.

        The restart is left to the caller (or the monitor loop): the child reads
        ``"restarting"`` (or ``"stopped"``) when this returns.
        """
        async with self._lock:
            child = self._children.get(name)
            if child is None or child.handle is not handle:
                return False  # handled meanwhile (a health check, a caller's report, a stop)
            # Under the lock: classifying reads and deletes the child's normal-exit
            # marker, so two reports of one death must not both read it.
            normal, reason = await asyncio.to_thread(classify_exit, actor_id_hex(handle), exc)
            await self._apply_exit(name, NORMAL if normal else ABNORMAL, reason)
        return True

    async def _apply_exit(self, name: str, how: str, reason: str) -> None:
        """Carry out the rules' decision for a child that ended (lock held)."""
        child = self._children[name]
        _kill(child.handle)
        child.handle, child.pid, child.node_id = None, None, None
        child.exited_at = time.time()
        decision = self._rules.exited(name, how, reason)
        if decision.give_up is not None:
            await self._give_up(decision.give_up)
            return
        for sibling in decision.stop:
            await self._stop_child(self._children[sibling])
        for removed in decision.remove:
            self._children.pop(removed, None)
        if decision.delay_s > 0:
            self._wake.set()  # the loop sleeps until the delayed restart is due

    async def _start_due(self) -> None:
        """Start the children whose restart is due, in start order (lock held)."""
        while self._state == SERVING:
            due = self._rules.due()
            if not due:
                return
            name = due[0]
            try:
                await self._start_child(name)
            except _StartError as exc:
                await self._apply_exit(name, ABNORMAL, f"failed to start: {exc}")

    async def _take_escalations(self) -> None:
        escalations, self._escalations = self._escalations, {}
        for name, (actor_id, reason) in escalations.items():
            child = self._children.get(name)
            if child is None or child.handle is None or actor_id_hex(child.handle) != actor_id:
                continue
            await self._apply_exit(name, ABNORMAL, f"gave up ({reason})")

    async def _give_up(self, reason: str) -> None:
        """Restart intensity exceeded: stop every child, then tell the parent (lock held).

        The state reads ``"stopping"`` until the last child is stopped and only then
        ``"failed"``: whoever sees ``"failed"`` may rely on every child being stopped.
        """
        self._state, self._reason = STOPPING, reason
        await self._stop_all()
        self._state = FAILED
        if self._parent is not None:
            with contextlib.suppress(Exception):  # a dead parent takes this process with it
                await asyncio.wait_for(
                    self._parent.child_gave_up.remote(self._name, self._actor_id, reason),
                    ESCALATION_TIMEOUT_S,
                )

    # --- calls ----------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Wait until the first start of the tree is over; return the status."""
        await self._booted.wait()
        return await self.status()

    async def status(self) -> dict[str, Any]:
        """The supervisor's own state, and why it failed if it did."""
        now = time.monotonic()
        return {
            "name": self._name,
            "state": self._state,
            "reason": self._reason,
            "children": len(self._rules.order),
            "restarts_in_window": self._rules.intensity.count(now),
            "loop_errors": self._loop_errors,
            **self._config.as_dict(),
        }

    def _entry(self, name: str) -> dict[str, Any]:
        child, record = self._children[name], self._rules.records[name]
        return {
            "name": name,
            "kind": child.spec.kind,
            "state": record.state,
            "pid": child.pid,
            "node_id": child.node_id,
            "restarts": record.restarts,
            "restart": record.restart,
            "last_exit": record.last_exit,
            "exited_at": child.exited_at,
            "health_error": child.health_error,
        }

    async def which_children(self) -> list[dict[str, Any]]:
        """One entry per child, in start order."""
        return [self._entry(name) for name in self._rules.order]

    async def tree(self, timeout: float | None) -> dict[str, Any]:
        """This supervisor and its children, nested (supervisor children ask their own)."""
        entries = []
        for name in list(self._rules.order):
            if name not in self._children:
                continue
            entry = {**self._entry(name), "children": []}
            handle: Any = self._children[name].handle
            if isinstance(self._children[name].spec, SupervisorSpec) and handle is not None:
                try:
                    below: dict[str, Any] = await asyncio.wait_for(
                        handle.tree.remote(timeout), timeout
                    )
                    entry["children"] = below["children"]
                except Exception as exc:
                    entry["health_error"] = f"tree() failed: {summarize_death(exc)}"
            entries.append(entry)
        return {
            "name": self._name,
            "kind": "supervisor",
            "state": self._state,
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "restarts": None,  # a supervisor's restarts are counted by its parent
            "restart": None,
            "last_exit": self._reason,
            "exited_at": None,
            "health_error": None,
            "children": entries,
        }

    # --- looking children up ----------------------------------------------------------------

    def _unknown(self, name: str) -> UnknownChildError:
        known = ", ".join(repr(n) for n in self._rules.order) or "none"
        whose = f"the children of {self._path!r}" if self._path else "the children"
        return UnknownChildError(
            f"refused: there is no child {self._path_of(name)!r} ({whose}: {known})"
        )

    def _refuse_unless_serving(self) -> None:
        if self._state == SERVING:
            return
        why = f": {self._reason}" if self._reason else ""
        raise TreeFailedError(f"refused: {self._myself()} is {self._state}{why}")

    async def _running(self, name: str, deadline: float | None) -> _Child | None:
        """The child ``name`` once it runs: waits while it (or the tree) starts or restarts.

        None if it was not running by ``deadline``: a reply, not an error, so that a
        caller whose own timeout fired first leaves no unfetched error behind.
        """
        while True:
            if self._state != BOOTING:
                self._refuse_unless_serving()
            if name not in self._children:
                raise self._unknown(name)
            child, state = self._children[name], self._rules.records[name].state
            if state == RUNNING and child.handle is not None:
                return child
            if state not in (STARTING, RESTARTING) and self._state != BOOTING:
                raise ChildStateError(
                    f"refused: child {self._path_of(name)!r} is {state}, not running "
                    "(restart_child() starts a stopped child again)"
                )
            if deadline is not None and time.monotonic() >= deadline:
                return None
            await asyncio.sleep(_LOOKUP_POLL_S)

    async def child(self, path: str, wait_s: float | None) -> ActorHandle[Any] | None:
        """The handle of the running child at ``path`` (``"name"`` or ``"team/name"``).

        A child that is starting or restarting is waited for, at most ``wait_s`` seconds
        (None: no bound): a lookup right after a crash gets the new process. None if it
        was not running within ``wait_s``.
        """
        name, _, rest = path.partition(PATH_SEPARATOR)
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            child = await self._running(name, deadline)
            if child is None:
                return None
            handle: Any = child.handle
            if not rest:
                return handle  # type: ignore[no-any-return]
            if not isinstance(child.spec, SupervisorSpec):
                raise UnknownChildError(
                    f"refused: there is no child {self._path_of(path)!r} "
                    f"({self._path_of(name)!r} is a worker, not a supervisor)"
                )
            left = None if deadline is None else _remaining(deadline)
            try:
                found: ActorHandle[Any] | None = await asyncio.wait_for(
                    handle.child.remote(rest, left), left
                )
            except ActorUnavailableError:
                await asyncio.sleep(_LOOKUP_POLL_S)  # unreachable for now: ask again
                continue
            except RayActorError as exc:
                # The child supervisor died under the lookup: wait for its restart.
                await self._died(name, handle, exc)
                continue
            except TimeoutError:
                return None
            except Exception as exc:
                _reraise(exc)
                raise
            return found

    async def check_child(self, path: str, actor_id: str) -> bool:
        """A caller saw the child at ``path`` (actor ``actor_id``) die: check it now.

        Without this, the death would be noticed at the next health check, and a lookup
        until then would return the dead handle. True if the death was news (the child
        now reads ``"restarting"`` or ``"stopped"``).
        """
        name, _, rest = path.partition(PATH_SEPARATOR)
        child = self._children.get(name)
        if child is None or child.handle is None:
            return False
        handle: Any = child.handle
        if rest:
            if not isinstance(child.spec, SupervisorSpec):
                return False
            try:
                return bool(
                    await asyncio.wait_for(
                        handle.check_child.remote(rest, actor_id), ESCALATION_TIMEOUT_S
                    )
                )
            except (ActorUnavailableError, TimeoutError):
                return False  # unreachable or slow: its health checks will tell
            except RayActorError as exc:  # the supervisor in between is dead itself
                return await self._died(name, handle, exc)
        if actor_id_hex(handle) != actor_id:
            return False  # replaced already
        try:
            await asyncio.wait_for(ready_ref(handle), self._config.health_check_timeout_s)
        except ActorUnavailableError:
            self._check_now = True  # not known dead yet: the next round decides
            self._wake.set()
            return False
        except RayActorError as exc:
            news = await self._died(name, handle, exc)
            self._wake.set()  # the monitor loop restarts it
            return news
        except Exception:
            return False  # answered late, or not at all: the health checks decide
        return False  # it answers: alive after all

    async def members(self) -> list[ActorHandle[Any]]:
        """Every actor below this supervisor now: its children and, recursively, theirs."""
        found: list[ActorHandle[Any]] = []
        for name in list(self._rules.order):
            child = self._children.get(name)
            if child is None or child.handle is None:
                continue
            handle: Any = child.handle
            found.append(handle)
            if isinstance(child.spec, SupervisorSpec):
                with contextlib.suppress(Exception):  # restarting, or hung: killed with us
                    found += await asyncio.wait_for(
                        handle.members.remote(), self._config.health_check_timeout_s
                    )
        return found

    def _shutdown_budget_s(self) -> float:
        return (
            sum(c.spec.shutdown_timeout_s for c in self._children.values())
            + SUPERVISOR_SHUTDOWN_MARGIN_S
        )

    async def stop_plan(self) -> dict[str, Any]:
        """What a caller needs to stop this tree: every actor in it, and the shutdown budget."""
        return {"members": await self.members(), "budget_s": self._shutdown_budget_s()}

    async def budget(self, name: str, what: str) -> float:
        """Seconds ``restart_child`` (``what="start"``) or ``terminate_child`` may take."""
        if name not in self._children:
            raise self._unknown(name)
        spec = self._children[name].spec
        if what == "start":
            return start_budget_s(spec)
        return spec.shutdown_timeout_s + KILL_CONFIRM_S

    # --- changing the tree -------------------------------------------------------------------

    async def start_child(self, spec: ChildSpec | SupervisorSpec) -> dict[str, Any]:
        """Add a child at the end of the start order and start it."""
        async with self._lock:
            self._refuse_unless_serving()
            if spec.name in self._children:
                raise DuplicateChildError(
                    f"refused: a child named {self._path_of(spec.name)!r} exists already"
                )
            self._rules.add(spec.name, spec.restart)
            self._children[spec.name] = self._new_child(spec)
            try:
                await self._start_child(spec.name)
            except _StartError as exc:
                self._rules.remove(spec.name)
                del self._children[spec.name]
                raise ChildStartError(
                    f"failed: child {self._path_of(spec.name)!r} failed to start: {exc}"
                ) from None
            return self._entry(spec.name)

    async def terminate_child(self, name: str) -> None:
        """Stop a child for good (kept as stopped; a temporary one is forgotten)."""
        async with self._lock:
            self._refuse_unless_serving()
            if name not in self._children:
                raise self._unknown(name)
            await self._stop_child(self._children[name])
            self._rules.stopped(name)
            self._rules.records[name].last_exit = "terminated by terminate_child()"
            if self._rules.records[name].restart == "temporary":
                self._rules.remove(name)
                del self._children[name]

    async def restart_child(self, name: str) -> dict[str, Any]:
        """Start a stopped child again (OTP: refused while it runs)."""
        async with self._lock:
            self._refuse_unless_serving()
            if name not in self._children:
                raise self._unknown(name)
            state = self._rules.records[name].state
            if state != "stopped":
                raise ChildStateError(
                    f"refused: child {self._path_of(name)!r} is {state}: restart_child() starts "
                    "a stopped child (terminate_child() it first)"
                )
            try:
                await self._start_child(name)
            except _StartError as exc:
                self._rules.stopped(name)
                raise ChildStartError(
                    f"failed: child {self._path_of(name)!r} failed to start: {exc}"
                ) from None
            return self._entry(name)

    async def delete_child(self, name: str) -> None:
        """Forget a stopped child's spec."""
        async with self._lock:
            if name not in self._children:
                raise self._unknown(name)
            state = self._rules.records[name].state
            if state != "stopped":
                raise ChildStateError(
                    f"refused: child {self._path_of(name)!r} is {state}: terminate_child() it first"
                )
            self._rules.remove(name)
            del self._children[name]

    async def stop(self) -> bool:
        """Stop every child, last started first, and the monitor loop."""
        await self._booted.wait()
        async with self._lock:
            if self._state in (SERVING, BOOTING):
                self._state = STOPPING
            self._wake.set()
            await self._stop_all()
            if self._state == STOPPING:
                self._state = STOPPED
        return True

    async def child_gave_up(self, name: str, actor_id: str, reason: str) -> bool:
        """A child supervisor reports that it exceeded its restart intensity."""
        child = self._children.get(name)
        if child is None or child.handle is None or actor_id_hex(child.handle) != actor_id:
            return False
        self._escalations[name] = (actor_id, reason)
        self._wake.set()
        return True

    async def describe(self) -> dict[str, Any]:
        """What this actor is (for ``Supervisor.attach``)."""
        return {
            "kind": "Supervisor",
            "name": self._name,
            "key": self._key,
            "shutdown_budget_s": self._shutdown_budget_s(),
        }

    async def pid(self) -> int:
        """The supervisor's own process id."""
        return os.getpid()


RemoteSupervisorActor: Any = ray.remote(SupervisorActor)
