"""`Supervisor`: the facade of a supervision tree's root actor."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import (
    attach_named,
    bind_options,
    check_options_and_naming,
    make_actor,
    rebuild,
)
from patterns._calls import DEFAULT, get, stop_actors
from patterns._checkpointer import check_store_args, default_key
from patterns._checks import check_name, describe
from patterns._facade import ActorFacade, check_facade_timeout
from patterns._ray_internals import actor_id_hex
from patterns.checkpointing import CheckpointStore
from patterns.errors import ActorLostError, CallTimeoutError, PatternError
from patterns.trees._actor import SERVING, RemoteSupervisorActor, remote_cause
from patterns.trees._errors import ChildStartError
from patterns.trees._specs import (
    PATH_SEPARATOR,
    SUPERVISOR_SHUTDOWN_MARGIN_S,
    ChildSpec,
    SupervisorConfig,
    SupervisorSpec,
    check_children,
    check_tree,
    start_budget_s,
    supervisor_actor_defaults,
)

__all__ = ["Supervisor"]

# The root's name in paths and messages when the supervisor has no name.
_UNNAMED = "supervisor"


def _check_path(path: object) -> str:
    checked = check_name("path", path)
    if any(not part for part in checked.split(PATH_SEPARATOR)):
        msg = f"'path' must be child names joined by '/', such as 'team/worker', got {checked!r}"
        raise ValueError(msg)
    return checked


class Supervisor(ActorFacade):
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
    child), under ``{key}/{child}`` (``{key}/{team}/{child}`` below a nested supervisor),
    and calls ``restore`` with the newest one after a restart: a crash loses at most one
    interval of changes.

    The supervisor's actor creates the children, so Ray makes them share its fate: a
    supervisor whose process dies takes its subtree with it, and its own supervisor
    starts the subtree again. The root's actor is restarted by Ray
    (``max_restarts=-1``) and starts its initial tree again (children added with
    `start_child` are not remembered across that restart).

    **Lifecycle.** ``close()`` (what ``with`` does) stops the tree in order: children
    before their parents, the last started first, each given its
    ``shutdown_timeout_s``, then the root; it returns once Ray reports every actor of
    the tree dead. A facade from `attach` (unless ``own=True``) or unpickled in a task
    *releases* the tree on ``close()``: it keeps running. ``kill()`` is the crash
    simulation: the root's process dies as in a crash, its whole tree with it, and Ray
    restarts the root, which starts the tree again.

    **Timeouts.** Every call takes ``timeout=``: seconds, or None for no bound. Left
    out, it is the facade's ``timeout`` (60 s unless given), except where the tree's
    own specs say how long an operation may take: `start_child` and `restart_child`
    wait at least the child's start budget (its ``start_timeout_s``, a nested
    supervisor's for its whole subtree, plus 30 s), `terminate_child` at least its
    ``shutdown_timeout_s`` plus 15 s for Ray to confirm the kill, and ``close()`` as
    described there. ``Supervisor(...)`` itself waits for the tree to start at most the
    children's start budgets added up.

    **Errors.** A request the tree refuses or cannot carry out raises a
    `patterns.trees.TreeError` (a `patterns.PatternError`) naming the supervisor, the
    method and the cause: `UnknownChildError` (also a ``LookupError``),
    `DuplicateChildError` (also a ``ValueError``), `ChildStateError`, `ChildStartError`,
    `TreeFailedError`. A call through `call` that dies with the child's process raises
    `patterns.ActorLostError`; an exception raised by the child's method,
    `patterns.RemoteCallError`.

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
        key: The checkpoint key prefix (with a ``store`` only; default: the ``name``,
            else a fresh one). A tree given the same store and key resumes its
            children's snapshots.
        name: The supervisor's Ray actor name (so `attach` finds it) and the root of
            the tree in ``tree()``; None: unnamed.
        namespace: The Ray namespace of the named supervisor (default: the job's).
        actor_options: Options for the supervisor's own actor (default ``num_cpus=0``:
            a supervisor only waits, and ``max_restarts=-1``); not its name (``name=``).
        timeout: Seconds a call waits when it is given no ``timeout=`` (default 60;
            None: no bound).

    Raises:
        TypeError: If an argument has the wrong type, or a child's class cannot become
            an actor.
        ValueError: If ``strategy`` is unknown, ``max_restarts < 0``, a duration is not
            > 0, two siblings share a name, or the spec tree contains itself.
        ChildStartError: If a child fails to start (the children started before it are
            stopped again, and so is the supervisor).
        patterns.CallTimeoutError: If the tree did not start within its start budget
            (the supervisor is stopped).

    Examples:
        >>> class Greeter:
        ...     def __init__(self, greeting: str) -> None:
        ...         self.greeting = greeting
        ...
        ...     def greet(self, name: str) -> str:
        ...         return f"{self.greeting}, {name}"
        >>> with Supervisor(
        ...     [
        ...         ChildSpec("en", Greeter, args=("Hello",)),
        ...         ChildSpec("fr", Greeter, args=("Salut",)),
        ...     ],
        ...     strategy="one_for_one",
        ... ) as sup:
        ...     print([(c["name"], c["state"], c["restarts"]) for c in sup.which_children()])
        ...     print(sup.call("fr", "greet", "Ada"))
        [('en', 'running', 0), ('fr', 'running', 0)]
        Salut, Ada
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
        key: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        actor_options: Mapping[str, Any] | None = None,
        timeout: Any = DEFAULT,
    ) -> None:
        seconds = check_facade_timeout(timeout)
        defaults = supervisor_actor_defaults(child=False)
        options, name, namespace, naming = check_options_and_naming(
            actor_options, name, namespace, defaults=defaults, facade="Supervisor"
        )
        options.update(naming)
        root = name or _UNNAMED
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
        check_store_args(config.store, key, 1, what="supervisor")
        bind_options(RemoteSupervisorActor, options)
        tree_key = default_key(key, options, "supervisor") if config.store is not None else None
        start_s = sum(start_budget_s(spec) for spec in specs)
        shutdown_s = sum(s.shutdown_timeout_s for s in specs) + SUPERVISOR_SHUTDOWN_MARGIN_S
        actor = make_actor(
            RemoteSupervisorActor, options, root, "", specs, config, config.store, tree_key, None
        )
        self._setup(actor, name, namespace, tree_key, shutdown_s, seconds)
        try:
            status: Any = get(actor.start.remote(), timeout=start_s, who=self._who, method="start")
        except BaseException:
            self._abandon()
            raise
        if status["state"] != SERVING:
            self._abandon()
            msg = f"{self._who}: start failed: {status['reason']}"
            raise ChildStartError(msg)

    def _abandon(self) -> None:
        """Stop the root of a tree that did not start (it stopped what it had started)."""
        self._facade_closed = True
        try:
            stop_actors([self._actor], who=self._who)
        except PatternError:
            pass  # reported dead late: the start's own error says more

    def _setup(
        self,
        actor: ActorHandle[Any],
        name: str | None,
        namespace: str | None,
        key: str | None,
        shutdown_s: float,
        timeout: float | None,
    ) -> None:
        self._actor = actor
        self._key = key
        self._shutdown_s = shutdown_s
        # The handles child() returned, by path: the facade keeps them referenced, so a
        # call chained on a returned handle (sup.child("a").m.remote()) works on Ray
        # versions whose ActorMethod holds only a weak reference to its handle.
        self._handles: dict[str, ActorHandle[Any]] = {}
        self._init_facade([actor], name=name, namespace=namespace, owned=True, timeout=timeout)

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Any = DEFAULT,
    ) -> Supervisor:
        """Return a facade for the live supervisor whose actor is called ``name``.

        The facade does not own the tree: its ``close()`` releases it and the tree
        keeps running (``own=True`` takes it over: ``close()`` then stops it).

        Args:
            name: The supervisor's ``name`` (its Ray actor name).
            namespace: The Ray namespace it lives in (default: this job's).
            own: Whether ``close()`` stops the tree.
            timeout: The new facade's default call timeout (default 60 s).

        Raises:
            TypeError: If the actor named ``name`` is not a Supervisor.
            ValueError: If there is no live actor with that name.
        """
        seconds = check_facade_timeout(timeout)
        if not isinstance(own, bool):
            msg = f"'own' must be a bool, got {describe(own)}"
            raise TypeError(msg)
        actor, info = attach_named(name, namespace, kind="Supervisor", what="supervisor")
        return rebuild(
            cls,
            actor,
            name,
            namespace,
            info.get("key"),
            info["shutdown_budget_s"],
            seconds,
            owned=own,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        state = (
            Supervisor,
            self._actor,
            self.name,
            self.namespace,
            self._key,
            self._shutdown_s,
            self.timeout,
        )
        return (rebuild, state)

    def __repr__(self) -> str:
        return (
            f"Supervisor(name={self.name!r}, actor_id={actor_id_hex(self._actor)[:8]!r}, "
            f"owned={self.owned}, closed={self.closed})"
        )

    @property
    def actor(self) -> ActorHandle[Any]:
        """The root supervisor's Ray actor handle."""
        return self._actor

    @property
    def key(self) -> str | None:
        """The checkpoint key prefix (None without a store); a child's is ``{key}/{child}``."""
        return self._key

    # ---------------------------------------------------------------- plumbing
    def _ask(self, ref: ObjectRef[Any], *, timeout: object, method: str) -> Any:
        """Wait for a reply of the root actor: its refusals raised again under this facade."""
        try:
            return self._get(ref, timeout=timeout, method=method)
        except PatternError as exc:
            cause = remote_cause(exc)
            if cause is None:
                raise
            raise type(cause)(f"{self._who}: {method} {cause}") from None

    def _bound(self, timeout: object, budget: float) -> float | None:
        """A call's bound: its ``timeout=``, else the facade's but at least ``budget``."""
        if timeout is not DEFAULT:
            return self._seconds(timeout)
        own = self._facade_timeout
        return None if own is None else max(own, budget)

    def _stats_async(self) -> ObjectRef[dict[str, Any]] | None:
        ref: ObjectRef[dict[str, Any]] = self._actor.status.remote()
        return ref

    # ---------------------------------------------------------------- inspecting
    def which_children_async(self) -> ObjectRef[list[dict[str, Any]]]:
        """Ask for `which_children` and return an ObjectRef at once."""
        self._check_open("which_children_async")
        ref: ObjectRef[list[dict[str, Any]]] = self._actor.which_children.remote()
        return ref

    def which_children(self, *, timeout: object = DEFAULT) -> list[dict[str, Any]]:
        """One dict per child, in start order.

        Keys: ``name``, ``kind`` (``"worker"`` or ``"supervisor"``), ``state``
        (``"running"``, ``"starting"``, ``"restarting"`` or ``"stopped"``), ``pid``
        (None unless running), ``node_id``, ``restarts`` (how often the supervisor
        restarted it), ``restart`` (its restart type), ``last_exit`` (why it last
        ended), ``exited_at`` (when, as ``time.time()``) and ``health_error`` (a
        failing ``snapshot()``, for instance).

        Args:
            timeout: Seconds to wait for the answer (default: the facade's timeout).
        """
        self._check_open("which_children")
        result: list[dict[str, Any]] = self._ask(
            self._actor.which_children.remote(), timeout=timeout, method="which_children"
        )
        return result

    def tree_async(self, *, timeout: object = DEFAULT) -> ObjectRef[dict[str, Any]]:
        """Ask for `tree` and return an ObjectRef at once (``timeout`` bounds each level)."""
        self._check_open("tree_async")
        ref: ObjectRef[dict[str, Any]] = self._actor.tree.remote(self._seconds(timeout))
        return ref

    def tree(self, *, timeout: object = DEFAULT) -> dict[str, Any]:
        """The live tree: this supervisor with its children nested under ``"children"``.

        Every level has the keys of `which_children` plus ``children`` (empty for a
        worker). The root's ``restarts`` and ``restart`` are None: nobody supervises it.
        A nested supervisor that does not answer in time is shown with its
        ``health_error`` and no children.

        Args:
            timeout: Seconds to wait (default: the facade's timeout); each nested
                supervisor is given as long.
        """
        self._check_open("tree")
        result: dict[str, Any] = self._ask(
            self._actor.tree.remote(self._seconds(timeout)), timeout=timeout, method="tree"
        )
        return result

    def status_async(self) -> ObjectRef[dict[str, Any]]:
        """Ask for `status` and return an ObjectRef at once."""
        self._check_open("status_async")
        ref: ObjectRef[dict[str, Any]] = self._actor.status.remote()
        return ref

    def status(self, *, timeout: object = DEFAULT) -> dict[str, Any]:
        """The supervisor's own state, and why it failed if it did.

        Keys: ``name``, ``state`` (``"starting"``, ``"running"``, ``"failed"``,
        ``"stopping"``, ``"stopped"``; a supervisor that gives up reads ``"stopping"``
        while it stops its children and ``"failed"`` once they are all stopped),
        ``reason`` (why it failed), ``children`` (how many), ``restarts_in_window``
        (restarts that count against ``max_restarts`` now) and its options.

        Args:
            timeout: Seconds to wait (default: the facade's timeout).
        """
        self._check_open("status")
        result: dict[str, Any] = self._ask(
            self._actor.status.remote(), timeout=timeout, method="status"
        )
        return result

    # ---------------------------------------------------------------- children
    def child_async(
        self, path: str, *, timeout: object = DEFAULT
    ) -> ObjectRef[ActorHandle[Any] | None]:
        """Ask for `child` and return an ObjectRef at once.

        It resolves to the handle, or to None if the child was not running within
        ``timeout`` (where `child` raises `patterns.CallTimeoutError`).
        """
        path = _check_path(path)
        self._check_open("child_async")
        ref: ObjectRef[ActorHandle[Any] | None] = self._actor.child.remote(
            path, self._seconds(timeout)
        )
        return ref

    def child(self, path: str, *, timeout: object = DEFAULT) -> ActorHandle[Any]:
        """The actor handle of the running child at ``path`` (a new one after each restart).

        ``path`` is a child's name, or names joined by ``/`` for a child of a nested
        supervisor (``"team/worker"``). A child that is starting or restarting is waited
        for, so a lookup right after a crash gets the new process. Ask again after a
        restart rather than keeping the handle: calls to the old one fail with Ray's
        ``ActorDiedError``. `call` does both for you, with the library's errors.

        Args:
            path: The child's name or path.
            timeout: Seconds to wait, also for a restarting child (default: the
                facade's timeout).

        Raises:
            UnknownChildError: If there is no child at ``path``.
            ChildStateError: If the child is stopped (terminated, or ended normally).
            TreeFailedError: If a supervisor on the way is not running (it gave up).
            patterns.CallTimeoutError: If the child was not running within ``timeout``.
        """
        return self._lookup(path, timeout=timeout, method="child")

    def _lookup(self, path: str, *, timeout: object, method: str) -> ActorHandle[Any]:
        path = _check_path(path)
        self._check_open(method)
        seconds = self._seconds(timeout)
        ref: ObjectRef[ActorHandle[Any] | None] = self._actor.child.remote(path, seconds)
        found: ActorHandle[Any] | None = self._ask(ref, timeout=timeout, method=method)
        if found is None:
            msg = (
                f"{self._who}: {method} got no running child {path!r} within {seconds or 0:g} s "
                "(it is starting or restarting)"
            )
            raise CallTimeoutError(msg)
        kept = self._handles.get(path)
        if kept is not None and actor_id_hex(kept) == actor_id_hex(found):
            return kept  # the same actor: the same handle object as last time
        self._handles[path] = found
        return found

    def call_async(
        self, path: str, method: str, *args: Any, timeout: object = DEFAULT, **kwargs: Any
    ) -> ObjectRef[Any]:
        """Look up the child at ``path`` (as `child` does), send ``method``, return its ObjectRef.

        The lookup waits, within ``timeout``; the call itself is not waited for. Its
        ObjectRef raises Ray's own errors when you get it: use `call` for the
        library's.
        """
        return self._send(path, method, args, kwargs, timeout=timeout, label="call_async")

    def _send(
        self,
        path: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        timeout: object,
        label: str,
    ) -> ObjectRef[Any]:
        if not isinstance(method, str) or not method.isidentifier():
            msg = f"'method' must be the name of a method of the child, got {describe(method)}"
            raise TypeError(msg)
        handle = self._lookup(path, timeout=timeout, method=label)
        try:
            bound = getattr(handle, method)
        except AttributeError:
            msg = f"'method' must be a method of the child at {path!r}, got {method!r}"
            raise ValueError(msg) from None
        ref: ObjectRef[Any] = bound.remote(*args, **kwargs)
        return ref

    def call(
        self, path: str, method: str, *args: Any, timeout: object = DEFAULT, **kwargs: Any
    ) -> Any:
        """Call ``method(*args, **kwargs)`` on the running child at ``path``; return its result.

        The child is looked up as `child` does (waiting while it restarts), then the
        call is sent once: the supervisor restarts actors, it never sends a call again.
        A call whose child dies under it (a crash, a SIGKILL, a method that kills its
        own process) fails with `patterns.ActorLostError`; the supervisor is told at
        once, restarts the child per its restart type, and the next call reaches the
        new process. ``timeout`` bounds the lookup and the call together. (A keyword
        argument of the child's method named ``timeout`` cannot pass this way: call it
        through the handle from `child`.)

        Args:
            path: The child's name or path (``"team/worker"``).
            method: The name of the child's method.
            *args: Its positional arguments.
            timeout: Seconds for the lookup and the call (default: the facade's timeout).
            **kwargs: Its keyword arguments.

        Raises:
            UnknownChildError, ChildStateError, TreeFailedError: As `child`.
            ValueError: If the child has no method ``method``.
            patterns.CallTimeoutError: No reply within ``timeout`` (the call may still
                run).
            patterns.ActorLostError: The child died under the call.
            patterns.RemoteCallError: The child's method raised (``remote_type`` names
                the exception).
        """
        seconds = self._seconds(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        label = f"call({path!r}, {method!r})"
        ref = self._send(path, method, args, kwargs, timeout=seconds, label=label)
        handle = self._handles[path]
        left = None if deadline is None else max(0.001, deadline - time.monotonic())
        try:
            return self._get(ref, timeout=left, method=label)
        except ActorLostError as exc:
            self._report_death(path, handle)
            msg = (
                f"{exc} The supervisor restarts the child as its restart type says; "
                "the call is not sent again."
            )
            raise ActorLostError(msg) from exc.__cause__

    def _report_death(self, path: str, handle: ActorHandle[Any]) -> None:
        """Tell the supervisor that a call saw the child at ``path`` die (bounded, best effort)."""
        report: ObjectRef[bool] = self._actor.check_child.remote(path, actor_id_hex(handle))
        seconds = self._facade_timeout
        try:
            get(report, timeout=seconds, who=self._who, method="call")
        except PatternError:
            pass  # the health checks will notice the death all the same

    # ---------------------------------------------------------------- changing the tree
    def start_child_async(self, spec: ChildSpec | SupervisorSpec) -> ObjectRef[dict[str, Any]]:
        """Ask for `start_child` and return an ObjectRef at once."""
        self._check_spec(spec)
        self._check_open("start_child_async")
        ref: ObjectRef[dict[str, Any]] = self._actor.start_child.remote(spec)
        return ref

    def _check_spec(self, spec: object) -> None:
        if not isinstance(spec, ChildSpec | SupervisorSpec):
            msg = f"'spec' must be a ChildSpec or SupervisorSpec, got {describe(spec)}"
            raise TypeError(msg)
        check_tree([spec], root=self.name or _UNNAMED)

    def start_child(
        self, spec: ChildSpec | SupervisorSpec, *, timeout: object = DEFAULT
    ) -> dict[str, Any]:
        """Add a child after the existing ones and start it; return its `which_children` entry.

        Args:
            spec: A `ChildSpec` or `SupervisorSpec` whose name no child has.
            timeout: Seconds to wait (default: the facade's timeout, but at least the
                child's start budget: its start timeout plus 30 s).

        Raises:
            TypeError: If ``spec`` is not a spec.
            ValueError: If the spec tree contains itself.
            DuplicateChildError: If a child of that name exists (also a ValueError).
            ChildStartError: If the child fails to start (it is not added).
            TreeFailedError: If the supervisor is not running.
        """
        self._check_spec(spec)
        self._check_open("start_child")
        ref: ObjectRef[dict[str, Any]] = self._actor.start_child.remote(spec)
        bound = self._bound(timeout, start_budget_s(spec))
        entry: dict[str, Any] = self._ask(ref, timeout=bound, method="start_child")
        return entry

    def _op_bound(self, timeout: object, name: str, what: str, method: str) -> float | None:
        """The bound of a change to child ``name``: at least its budget when left out."""
        if timeout is not DEFAULT or self._facade_timeout is None:
            return self._bound(timeout, 0.0)
        budget: float = self._ask(
            self._actor.budget.remote(name, what), timeout=DEFAULT, method=method
        )
        return self._bound(timeout, budget)

    def terminate_child_async(self, name: str) -> ObjectRef[None]:
        """Ask for `terminate_child` and return an ObjectRef at once."""
        check_name("name", name)
        self._check_open("terminate_child_async")
        ref: ObjectRef[None] = self._actor.terminate_child.remote(name)
        return ref

    def terminate_child(self, name: str, *, timeout: object = DEFAULT) -> None:
        """Stop a child (within its shutdown timeout) without restarting it.

        The child stays listed as ``"stopped"`` (`restart_child` starts it again); a
        temporary child is forgotten.

        Args:
            name: The child's name.
            timeout: Seconds to wait (default: the facade's timeout, but at least the
                child's ``shutdown_timeout_s`` plus 15 s).

        Raises:
            UnknownChildError: If there is no child of that name.
            TreeFailedError: If the supervisor is not running.
        """
        check_name("name", name)
        self._check_open("terminate_child")
        bound = self._op_bound(timeout, name, "stop", "terminate_child")
        ref: ObjectRef[None] = self._actor.terminate_child.remote(name)
        self._ask(ref, timeout=bound, method="terminate_child")

    def restart_child_async(self, name: str) -> ObjectRef[dict[str, Any]]:
        """Ask for `restart_child` and return an ObjectRef at once."""
        check_name("name", name)
        self._check_open("restart_child_async")
        ref: ObjectRef[dict[str, Any]] = self._actor.restart_child.remote(name)
        return ref

    def restart_child(self, name: str, *, timeout: object = DEFAULT) -> dict[str, Any]:
        """Start a stopped child again (as OTP, refused while it runs); return its entry.

        Args:
            name: The child's name.
            timeout: Seconds to wait (default: the facade's timeout, but at least the
                child's start budget).

        Raises:
            UnknownChildError: If there is no child of that name.
            ChildStateError: If it is not stopped.
            ChildStartError: If it fails to start (it stays stopped).
            TreeFailedError: If the supervisor is not running.
        """
        check_name("name", name)
        self._check_open("restart_child")
        bound = self._op_bound(timeout, name, "start", "restart_child")
        ref: ObjectRef[dict[str, Any]] = self._actor.restart_child.remote(name)
        entry: dict[str, Any] = self._ask(ref, timeout=bound, method="restart_child")
        return entry

    def delete_child_async(self, name: str) -> ObjectRef[None]:
        """Ask for `delete_child` and return an ObjectRef at once."""
        check_name("name", name)
        self._check_open("delete_child_async")
        ref: ObjectRef[None] = self._actor.delete_child.remote(name)
        return ref

    def delete_child(self, name: str, *, timeout: object = DEFAULT) -> None:
        """Forget a stopped child's spec.

        Args:
            name: The child's name.
            timeout: Seconds to wait (default: the facade's timeout).

        Raises:
            UnknownChildError: If there is no child of that name.
            ChildStateError: If the child is not stopped.
        """
        check_name("name", name)
        self._check_open("delete_child")
        ref: ObjectRef[None] = self._actor.delete_child.remote(name)
        self._ask(ref, timeout=timeout, method="delete_child")

    # ---------------------------------------------------------------- lifecycle
    def close(self, *, timeout: object = DEFAULT) -> None:
        """Stop the whole tree in order and return once Ray reports every actor of it dead.

        Children stop before their parents and the last started first, each given its
        ``shutdown_timeout_s`` to end (snapshotted on its way out, with a store) before
        it is killed; then the root's actor is stopped. Calling it again does nothing;
        calls after it raise `patterns.FacadeClosedError`. A facade that does not own
        the tree (from `attach`, or unpickled in a task) releases it instead: the tree
        keeps running.

        How long it takes at most: the orderly stop gets the tree's shutdown budget
        (the children's ``shutdown_timeout_s`` added up, a nested supervisor's being its
        own children's plus 5 s, plus 5 s), or ``timeout`` if that is shorter; whatever
        has not ended by then is killed. Then Ray has ``timeout`` to report every actor
        of the tree dead (default: the facade's timeout; None: no bound).

        Args:
            timeout: Seconds (see above).

        Raises:
            patterns.CallTimeoutError: An actor of the tree was still reported alive
                after ``timeout`` (the facade is closed all the same).
        """
        if self._facade_closed:
            return
        seconds = self._seconds(timeout)
        if not self._facade_owned:
            self._facade_closed = True
            self._handles.clear()
            return
        members: list[Any] = []
        budget = self._shutdown_s
        orderly = budget if seconds is None or timeout is DEFAULT else min(budget, seconds)
        started = time.monotonic()
        try:
            try:
                plan = get(
                    self._actor.stop_plan.remote(), timeout=orderly, who=self._who, method="close"
                )
                members, budget = list(plan["members"]), float(plan["budget_s"])
            except PatternError:
                pass  # hung or dead: killing the root ends its whole tree (Ray's ownership)
            else:
                if seconds is None or timeout is DEFAULT:
                    orderly = budget
                left = max(0.001, orderly - (time.monotonic() - started))
                try:
                    get(self._actor.stop.remote(), timeout=left, who=self._who, method="close")
                except PatternError:
                    pass  # too slow, or dead: whatever is left is killed below
        finally:
            self._facade_closed = True
            self._handles.clear()
            stop_actors([self._actor, *members], timeout=seconds, who=self._who)

    def kill(self) -> None:
        """Crash the root supervisor's process, as a SIGKILL would: the crash simulation.

        Every actor of the tree dies with it (Ray's ownership), nothing is snapshotted
        on the way out, and Ray restarts the root (``max_restarts=-1``), which starts
        its initial tree again, each child restored from its newest snapshot when there
        is a store. To stop the tree, use ``close()``.
        """
        super().kill()
