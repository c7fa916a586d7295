"""`Supervisor`: the facade of a supervision tree's root actor."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import attach_named, bind_options, make_actor, rebuild
from patterns._checkpointer import default_key
from patterns._checks import check_name, check_positive_float, describe
from patterns.checkpointing import CheckpointStore
from patterns.trees._actor import KILL_CONFIRM_S, SERVING, RemoteSupervisorActor
from patterns.trees._specs import (
    SUPERVISOR_SHUTDOWN_MARGIN_S,
    ChildSpec,
    SupervisorConfig,
    SupervisorSpec,
    check_children,
    check_supervisor_actor_options,
    check_tree,
)

__all__ = ["Supervisor"]

_ERRORS: dict[str, type[Exception]] = {"ValueError": ValueError, "RuntimeError": RuntimeError}
_DEFAULT_TIMEOUT_S = 120.0


def _check_timeout(timeout: object) -> float | None:
    return None if timeout is None else check_positive_float("timeout", timeout)


def _unwrap(reply: Mapping[str, Any]) -> Any:
    if "error" in reply:
        kind, message = reply["error"]
        raise _ERRORS.get(kind, RuntimeError)(message)
    return reply["ok"]


class Supervisor:
    """A supervisor actor that starts, watches and restarts a tree of actors, as Erlang/OTP does.

    The supervisor starts its children in list order (each one's constructor done
    before the next starts) and watches them: it pings each one every
    ``health_check_interval_s``. When a child ends, its ``restart`` type says whether it
    comes back, and the ``strategy`` says which children restart with it:

    - ``"one_for_one"``: only the child that ended;
    - ``"one_for_all"``: every child (the others are stopped first, last started first);
    - ``"rest_for_one"``: the child and every child started after it.

    More than ``max_restarts`` restarts within ``within_s`` seconds and the supervisor
    gives up: it stops its children and reports why. A nested supervisor
    (`SupervisorSpec`) reports to its parent, which treats it as a failed child and
    applies its own strategy; the root's `status` shows ``"failed"`` and the reason.

    A child that is alive but does not answer a ping within
    ``health_check_timeout_s`` (hung: Ray never notices this) is killed and restarted
    like a crashed one, so a hang is caught within ``health_check_interval_s +
    health_check_timeout_s`` (two intervals with the default timeout). Pings queue
    behind a child's running call: a child whose calls legitimately run longer than
    the timeout needs a longer one (or ``max_concurrency`` > 1).

    With a ``store``, the supervisor saves the ``snapshot()`` of every child that has
    ``snapshot()`` and ``restore(state)`` at each health check (and when it stops a
    child), and calls ``restore`` with the newest one after a restart: a crash loses
    at most one interval of changes.

    The supervisor's actor creates the children, so Ray makes them share its fate: a
    supervisor whose process dies takes its subtree with it, and its own supervisor
    starts the subtree again. The root's actor is restarted by Ray
    (``max_restarts=-1``) and starts its initial tree again (children added with
    `start_child` are not remembered across that restart).

    Args:
        children: The child specs (`ChildSpec`, `SupervisorSpec`), in start order.
        strategy: ``"one_for_one"``, ``"one_for_all"`` or ``"rest_for_one"``.
        max_restarts: Restarts allowed within ``within_s`` seconds (>= 0).
        within_s: The intensity window in seconds; also how long a child must run
            before its backoff starts over.
        health_check_interval_s: Seconds between pings of each child.
        health_check_timeout_s: Seconds a ping may take before the child counts as
            hung (default: ``health_check_interval_s``).
        backoff_s: None restarts at once. Seconds (or ``(first_s, max_s)``) make a
            child that keeps failing wait before its restart: 0 after its first
            failure, then ``first_s``, doubling up to ``max_s`` (32 x ``first_s`` when
            only seconds are given), each stretched by up to 20 % of random jitter.
        store: Where children's snapshots are kept (see `patterns.checkpointing`).
        name: The supervisor's name: the root of the tree's paths and checkpoint keys,
            and its Ray actor name (so `attach` finds it). A named tree given the same
            store resumes its children's snapshots.
        actor_options: Options for the supervisor's own actor (default ``num_cpus=0``:
            a supervisor only waits, and ``max_restarts=-1``).

    Raises:
        TypeError: If an argument has the wrong type, or a child's class cannot become
            an actor.
        ValueError: If ``strategy`` is unknown, ``max_restarts < 0``, a duration is not
            > 0, two siblings share a name, or the spec tree contains itself.
        RuntimeError: If a child fails to start (the children started before it are
            stopped again).

    Examples:
        >>> class Greeter:
        ...     def __init__(self, greeting: str) -> None:
        ...         self.greeting = greeting
        ...
        ...     def greet(self, name: str) -> str:
        ...         return f"{self.greeting}, {name}"
        >>> sup = Supervisor(
        ...     [
        ...         ChildSpec("en", Greeter, args=("Hello",)),
        ...         ChildSpec("fr", Greeter, args=("Salut",)),
        ...     ],
        ...     strategy="one_for_one",
        ... )
        >>> [(c["name"], c["state"], c["restarts"]) for c in sup.which_children()]
        [('en', 'running', 0), ('fr', 'running', 0)]
        >>> ray.get(sup.child("fr").greet.remote("Ada"))
        'Salut, Ada'
        >>> sup.shutdown()
    """

    def __init__(
        self,
        children: Sequence[ChildSpec | SupervisorSpec],
        *,
        strategy: str = "one_for_one",
        max_restarts: int = 3,
        within_s: float = 5.0,
        health_check_interval_s: float = 1.0,
        health_check_timeout_s: float | None = None,
        backoff_s: float | tuple[float, float] | None = None,
        store: CheckpointStore | None = None,
        name: str | None = None,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        if name is not None:
            check_name("name", name)
        root = name or "supervisor"
        specs = check_children(children, what="children")
        check_tree(specs, root=root)
        config = SupervisorConfig(
            strategy=strategy,
            max_restarts=max_restarts,
            within_s=within_s,
            health_check_interval_s=health_check_interval_s,
            health_check_timeout_s=health_check_timeout_s,
            backoff_s=backoff_s,
            store=store,
        )
        options = check_supervisor_actor_options(actor_options, child=False)
        if name is not None:
            options.setdefault("name", name)
        bind_options(RemoteSupervisorActor, options)
        key = default_key(None, options, "supervisor") if config.store is not None else None
        start_budget = sum(
            s.subtree_start_timeout_s() if isinstance(s, SupervisorSpec) else s.start_timeout_s
            for s in specs
        )
        shutdown_s = sum(s.shutdown_timeout_s for s in specs) + SUPERVISOR_SHUTDOWN_MARGIN_S
        actor = make_actor(
            RemoteSupervisorActor, options, root, specs, config, config.store, key, None
        )
        try:
            status: Any = ray.get(actor.start.remote(), timeout=start_budget + 30.0)
        except BaseException:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
            raise
        if status["state"] != SERVING:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
            msg = f"supervisor {root!r} could not start its tree: {status['reason']}"
            raise RuntimeError(msg)
        self._setup(actor, root, key, shutdown_s)

    def _setup(
        self, actor: ActorHandle[Any], name: str, key: str | None, shutdown_s: float
    ) -> None:
        self._actor = actor
        self._name = name
        self._key = key
        self._shutdown_s = shutdown_s

    @classmethod
    def attach(cls, name: str, *, namespace: str | None = None) -> Supervisor:
        """Return a facade for the live supervisor whose actor is called ``name``.

        Args:
            name: The supervisor's ``name`` (its Ray actor name).
            namespace: The Ray namespace it lives in (default: this job's).

        Raises:
            TypeError: If the actor named ``name`` is not a Supervisor.
            ValueError: If there is no live actor with that name.
        """
        actor, info = attach_named(name, namespace, kind="Supervisor", what="supervisor")
        margin = SUPERVISOR_SHUTDOWN_MARGIN_S
        return rebuild(
            cls, actor, info["name"], info.get("key"), info["shutdown_timeout_s"] + margin
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild, (Supervisor, self._actor, self._name, self._key, self._shutdown_s))

    def __repr__(self) -> str:
        return f"Supervisor(name={self._name!r}, actor_id={self._actor._actor_id.hex()!r})"

    @property
    def actor(self) -> ActorHandle[Any]:
        """The supervisor's Ray actor handle."""
        return self._actor

    @property
    def name(self) -> str:
        """The supervisor's name (``"supervisor"`` when none was given)."""
        return self._name

    @property
    def key(self) -> str | None:
        """The checkpoint key prefix (None without a store); a child's is ``key/name``."""
        return self._key

    def _get(self, ref: ObjectRef[Any], timeout: object) -> Any:
        checked = _check_timeout(timeout)
        return ray.get(ref, timeout=_DEFAULT_TIMEOUT_S if checked is None else checked)

    def which_children(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """One dict per child, in start order.

        Keys: ``name``, ``kind`` (``"worker"`` or ``"supervisor"``), ``state``
        (``"running"``, ``"starting"``, ``"restarting"`` or ``"stopped"``), ``pid``
        (None unless running), ``node_id``, ``restarts`` (how often the supervisor
        restarted it), ``restart`` (its restart type), ``last_exit`` (why it last
        ended), ``exited_at`` (when, as ``time.time()``) and ``health_error`` (a
        failing ``snapshot()``, for instance).

        Args:
            timeout: Seconds to wait for the answer (default 120).
        """
        result: list[dict[str, Any]] = self._get(self.which_children_async(), timeout)
        return result

    def which_children_async(self) -> ObjectRef[list[dict[str, Any]]]:
        """Ask for `which_children` and return an ObjectRef at once."""
        ref: ObjectRef[list[dict[str, Any]]] = self._actor.which_children.remote()
        return ref

    def tree(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The live tree: this supervisor with its children nested under ``"children"``.

        Every level has the keys of `which_children` plus ``children`` (empty for a
        worker). The root's ``restarts`` and ``restart`` are None: nobody supervises it.

        Args:
            timeout: Seconds to wait (default 120); each nested supervisor gets as long.
        """
        checked = _check_timeout(timeout)
        budget = _DEFAULT_TIMEOUT_S if checked is None else checked
        result: Any = ray.get(self._actor.tree.remote(budget), timeout=budget)
        return dict(result)

    def status(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The supervisor's own state, and why it failed if it did.

        Keys: ``name``, ``state`` (``"starting"``, ``"running"``, ``"failed"``,
        ``"stopping"``, ``"stopped"``; a supervisor that gives up reads ``"stopping"`` while
        it stops its children and ``"failed"`` once they are all stopped), ``reason`` (why
        it failed), ``restarts_in_window``
        (restarts that count against ``max_restarts`` now) and its options.

        Args:
            timeout: Seconds to wait (default 120).
        """
        result: dict[str, Any] = self._get(self._actor.status.remote(), timeout)
        return result

    def child(self, name: str, *, timeout: float | None = None) -> ActorHandle[Any]:
        """The actor handle of the running child ``name`` (a new one after each restart).

        Args:
            name: The child's name.
            timeout: Seconds to wait (default 120).

        Raises:
            ValueError: If there is no child of that name.
            RuntimeError: If the child is not running now (restarting, stopped).
        """
        check_name("name", name)
        handle: ActorHandle[Any] = _unwrap(self._get(self._actor.child.remote(name), timeout))
        return handle

    def start_child(
        self, spec: ChildSpec | SupervisorSpec, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Add a child after the existing ones and start it; return its `which_children` entry.

        Args:
            spec: A `ChildSpec` or `SupervisorSpec` whose name no child has.
            timeout: Seconds to wait (default: its start timeout plus 30 s).

        Raises:
            TypeError: If ``spec`` is not a spec.
            ValueError: If a child of that name exists, or the spec tree contains itself.
            RuntimeError: If the child fails to start (it is not added) or the
                supervisor is not running.
        """
        if not isinstance(spec, ChildSpec | SupervisorSpec):
            msg = f"'spec' must be a ChildSpec or SupervisorSpec, got {describe(spec)}"
            raise TypeError(msg)
        check_tree([spec], root=self._name)
        budget = (
            spec.subtree_start_timeout_s()
            if isinstance(spec, SupervisorSpec)
            else spec.start_timeout_s
        ) + 30.0
        entry: dict[str, Any] = _unwrap(
            self._get(self._actor.start_child.remote(spec), timeout or budget)
        )
        return entry

    def terminate_child(self, name: str, *, timeout: float | None = None) -> None:
        """Stop a child (within its shutdown timeout) without restarting it.

        The child stays listed as ``"stopped"`` (`restart_child` starts it again); a
        temporary child is forgotten.

        Args:
            name: The child's name.
            timeout: Seconds to wait (default 120).

        Raises:
            ValueError: If there is no child of that name.
        """
        check_name("name", name)
        _unwrap(self._get(self._actor.terminate_child.remote(name), timeout))

    def restart_child(self, name: str, *, timeout: float | None = None) -> dict[str, Any]:
        """Start a stopped child again (as OTP, refused while it runs); return its entry.

        Args:
            name: The child's name.
            timeout: Seconds to wait (default 120).

        Raises:
            ValueError: If there is no child of that name.
            RuntimeError: If it is not stopped, or fails to start.
        """
        check_name("name", name)
        entry: dict[str, Any] = _unwrap(self._get(self._actor.restart_child.remote(name), timeout))
        return entry

    def delete_child(self, name: str, *, timeout: float | None = None) -> None:
        """Forget a stopped child's spec.

        Args:
            name: The child's name.
            timeout: Seconds to wait (default 120).

        Raises:
            ValueError: If there is no child of that name.
            RuntimeError: If the child is not stopped.
        """
        check_name("name", name)
        _unwrap(self._get(self._actor.delete_child.remote(name), timeout))

    def pid(self, *, timeout: float | None = None) -> int:
        """The process id of the supervisor's actor.

        Args:
            timeout: Seconds to wait (default 120).
        """
        result: int = self._get(self._actor.pid.remote(), timeout)
        return result

    def shutdown(self, *, timeout: float | None = None) -> None:
        """Stop the whole tree, children before parents and last started first, then the root.

        Each child gets its shutdown timeout to end before it is killed; the root's
        actor is killed last. Safe to call twice.

        Args:
            timeout: Seconds to wait for the orderly part (default: the children's
                shutdown timeouts added up, plus 5 s); whatever is left is killed.
        """
        checked = _check_timeout(timeout)
        with contextlib.suppress(Exception):  # dead already, or too slow: killed below
            ray.get(self._actor.shutdown.remote(), timeout=checked or self._shutdown_s)
        self.kill()
        _wait_until_dead(self._actor, KILL_CONFIRM_S)

    def kill(self) -> None:
        """Kill the root's actor at once; Ray ends every actor of the tree with it."""
        with contextlib.suppress(Exception):
            ray.kill(self._actor, no_restart=True)


def _wait_until_dead(actor: ActorHandle[Any], within_s: float) -> None:
    """Return once calls to a killed actor fail (``ray.kill`` is only a request)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=max(0.001, deadline - time.monotonic()))
        except ray.exceptions.ActorUnavailableError:
            pass  # being killed, not yet reported dead
        except Exception:  # dead, too slow, or Ray already shut down: nothing to wait for
            return
        time.sleep(0.05)
