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
  never interleaves with ``terminate_child`` or ``shutdown``.

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
from ray.exceptions import ActorUnavailableError, RayActorError

from patterns._checkpointer import Checkpointer
from patterns.checkpointing import CheckpointStore
from patterns.trees._exits import classify_exit, summarize_death, this_host, whoami
from patterns.trees._policy import (
    ABNORMAL,
    NORMAL,
    RUNNING,
    STARTING,
    Backoff,
    Supervision,
)
from patterns.trees._specs import ChildSpec, SupervisorConfig, SupervisorSpec

__all__ = ["RemoteSupervisorActor", "SupervisorActor"]

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


def _ok(value: Any = None) -> dict[str, Any]:
    return {"ok": value}


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": (kind, message)}


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
    """Wait until calls to a killed actor fail: True once Ray reports it dead.

    Cheap when the actor is dead already (the call fails at once). Without this wait
    a supervisor could report a child stopped while the child still answered.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            await asyncio.wait_for(handle.__ray_ready__.remote(), _remaining(deadline))
        except ActorUnavailableError:
            pass  # unreachable while it is being killed: not yet reported dead
        except RayActorError:
            return True
        except TimeoutError:
            return False
        await asyncio.sleep(0.05)
    return False


class SupervisorActor:
    """A supervisor's process: its children, its monitor loop, its answers.

    Args:
        name: Its name (the root's, or its name among its parent's children).
        children: Its child specs, in start order.
        config: Strategy, intensity, health checks, backoff.
        store: Where children's snapshots go (None: no snapshots).
        key: The checkpoint key prefix of this supervisor (children add ``/name``).
        parent: The supervising supervisor's handle (None for the root).
    """

    def __init__(
        self,
        name: str,
        children: list[ChildSpec | SupervisorSpec],
        config: SupervisorConfig,
        store: CheckpointStore | None,
        key: str | None,
        parent: ActorHandle[Any] | None,
    ) -> None:
        self._name = name
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
        # The actor's event loop runs __init__: the tree starts without waiting for a call,
        # which is also what happens when Ray restarts a root supervisor's process.
        self._task = asyncio.get_running_loop().create_task(self._run())

    # --- building blocks ------------------------------------------------------------------

    def _new_child(self, spec: ChildSpec | SupervisorSpec) -> _Child:
        checkpointer = None
        if self._store is not None and spec.checkpointed:
            checkpointer = Checkpointer(self._store, f"{self._key}/{spec.name}", every=1)
        return _Child(spec, checkpointer)

    def _create(self, spec: ChildSpec | SupervisorSpec) -> ActorHandle[Any]:
        if isinstance(spec, SupervisorSpec):
            store = spec.config.store if spec.config.store is not None else self._store
            key = f"{self._key}/{spec.name}" if self._key is not None else None
            options = spec.actor_options
            handle: ActorHandle[Any] = RemoteSupervisorActor.options(**options).remote(
                spec.name, list(spec.children), spec.config, store, key, self._self_handle
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
                handle.__ray_call__.remote(whoami), spec.start_timeout_s
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
                await asyncio.wait_for(handle.shutdown.remote(), _remaining(deadline))
            else:
                if child.checkpointer is not None:  # a stopped child loses nothing
                    state = await asyncio.wait_for(handle.snapshot.remote(), _remaining(deadline))
                    await asyncio.to_thread(child.checkpointer.save, state)
                handle.__ray_terminate__.remote()
                # Answers only by failing, once the actor has exited.
                await asyncio.wait_for(handle.__ray_ready__.remote(), _remaining(deadline))
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
                    self._state, self._reason = FAILED, f"child {name!r} failed to start: {exc}"
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
                if time.monotonic() >= next_check:
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
            ping: Any = handle.snapshot if child.checkpointer is not None else handle.__ray_ready__
            pending[asyncio.ensure_future(ping.remote())] = (name, handle)
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
            normal, reason = await asyncio.to_thread(classify_exit, handle._actor_id.hex(), exc)
            async with self._lock:
                if self._children.get(name) is child and child.handle is handle:
                    await self._apply_exit(name, NORMAL if normal else ABNORMAL, reason)
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
            if child is None or child.handle is None or child.handle._actor_id.hex() != actor_id:
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

    async def tree(self, timeout: float) -> dict[str, Any]:
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

    async def child(self, name: str) -> dict[str, Any]:
        """The handle of a running child."""
        if name not in self._children:
            return _error("ValueError", self._unknown(name))
        child, state = self._children[name], self._rules.records[name].state
        if child.handle is None or state != RUNNING:
            return _error("RuntimeError", f"child {name!r} is not running (it is {state})")
        return _ok(child.handle)

    def _unknown(self, name: str) -> str:
        known = ", ".join(repr(n) for n in self._rules.order) or "none"
        return f"supervisor {self._name!r} has no child named {name!r} (children: {known})"

    def _refuse_unless_serving(self) -> dict[str, Any] | None:
        if self._state == SERVING:
            return None
        why = f": {self._reason}" if self._reason else ""
        return _error("RuntimeError", f"supervisor {self._name!r} is {self._state}{why}")

    async def start_child(self, spec: ChildSpec | SupervisorSpec) -> dict[str, Any]:
        """Add a child at the end of the start order and start it."""
        async with self._lock:
            if (refused := self._refuse_unless_serving()) is not None:
                return refused
            if spec.name in self._children:
                return _error(
                    "ValueError",
                    f"supervisor {self._name!r} has a child named {spec.name!r} already",
                )
            self._rules.add(spec.name, spec.restart)
            self._children[spec.name] = self._new_child(spec)
            try:
                await self._start_child(spec.name)
            except _StartError as exc:
                self._rules.remove(spec.name)
                del self._children[spec.name]
                return _error("RuntimeError", f"child {spec.name!r} failed to start: {exc}")
            return _ok(self._entry(spec.name))

    async def terminate_child(self, name: str) -> dict[str, Any]:
        """Stop a child for good (kept as stopped; a temporary one is forgotten)."""
        async with self._lock:
            if (refused := self._refuse_unless_serving()) is not None:
                return refused
            if name not in self._children:
                return _error("ValueError", self._unknown(name))
            await self._stop_child(self._children[name])
            self._rules.stopped(name)
            self._rules.records[name].last_exit = "terminated by terminate_child()"
            if self._rules.records[name].restart == "temporary":
                self._rules.remove(name)
                del self._children[name]
            return _ok()

    async def restart_child(self, name: str) -> dict[str, Any]:
        """Start a stopped child again (OTP: refused while it runs)."""
        async with self._lock:
            if (refused := self._refuse_unless_serving()) is not None:
                return refused
            if name not in self._children:
                return _error("ValueError", self._unknown(name))
            state = self._rules.records[name].state
            if state != "stopped":
                return _error(
                    "RuntimeError",
                    f"child {name!r} is {state}: restart_child() starts a stopped child "
                    "(terminate_child() it first)",
                )
            try:
                await self._start_child(name)
            except _StartError as exc:
                self._rules.stopped(name)
                return _error("RuntimeError", f"child {name!r} failed to start: {exc}")
            return _ok(self._entry(name))

    async def delete_child(self, name: str) -> dict[str, Any]:
        """Forget a stopped child's spec."""
        async with self._lock:
            if name not in self._children:
                return _error("ValueError", self._unknown(name))
            state = self._rules.records[name].state
            if state != "stopped":
                return _error("RuntimeError", f"child {name!r} is {state}: terminate it first")
            self._rules.remove(name)
            del self._children[name]
            return _ok()

    async def shutdown(self) -> bool:
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
        if child is None or child.handle is None or child.handle._actor_id.hex() != actor_id:
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
            "shutdown_timeout_s": sum(c.spec.shutdown_timeout_s for c in self._children.values()),
        }

    async def pid(self) -> int:
        """The supervisor's own process id."""
        return os.getpid()


RemoteSupervisorActor: Any = ray.remote(SupervisorActor)
