"""Child and supervisor specifications, validated where they are written.

A spec is a value: what to start and how to treat it when it ends. Everything about
it is checked in the constructor, at the caller's line, so a bad tree fails before
any actor starts. The whole tree is checked once more when a `Supervisor` starts it
(`check_tree`), because ``SupervisorSpec.children`` is a list a program may still
extend (and could, by mistake, extend with the spec itself).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ray
from ray.actor import ActorClass, ActorHandle

from patterns._actors import bind_options, check_actor_options
from patterns._checkpointer import check_store
from patterns._checks import (
    check_choice,
    check_constructor_args,
    check_int,
    check_name,
    check_positive_float,
    describe,
)
from patterns._ray_internals import plain_class_of
from patterns.checkpointing import CheckpointStore
from patterns.trees._policy import RESTART_TYPES, STRATEGIES

__all__ = [
    "ChildSpec",
    "SupervisorConfig",
    "SupervisorSpec",
    "check_child_name",
    "check_children",
    "check_supervisor_options",
    "check_tree",
    "start_budget_s",
    "supervisor_actor_defaults",
]

# What a SupervisorSpec accepts besides its name and children, and its defaults.
SUPERVISOR_DEFAULTS: dict[str, Any] = {
    "strategy": "one_for_one",
    "max_restarts": 3,
    "within_s": 5.0,
    "health_check_interval_s": 1.0,
    "health_check_timeout_s": None,
    "backoff_s": None,
    "store": None,
    "actor_options": None,
}
# Options of a supervisor seen as a child of another one.
AS_CHILD_DEFAULTS: dict[str, Any] = {"restart": "permanent", "shutdown_timeout_s": None}
# A float backoff_s doubles up to this many times its first delay.
BACKOFF_DOUBLINGS = 5
DEFAULT_START_TIMEOUT_S = 60.0
# A supervisor's own default shutdown time: its children's, one after another, plus this.
SUPERVISOR_SHUTDOWN_MARGIN_S = 5.0
# What a caller adds to a child's start timeouts when it waits for the start: the
# restore, and the clean-up of a start that failed.
START_MARGIN_S = 30.0
# Separates the levels of a child's path ("team/worker").
PATH_SEPARATOR = "/"


def check_child_name(name: object) -> str:
    """A child's name: a non-empty str without ``/`` (which separates a path's levels).

    Examples:
        >>> check_child_name("team/worker")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: 'name' may not contain '/' (it separates the levels of a path ...
    """
    checked = check_name("name", name)
    if PATH_SEPARATOR in checked:
        msg = (
            f"'name' may not contain {PATH_SEPARATOR!r} (it separates the levels of a path "
            f"such as 'team/worker'), got {checked!r}"
        )
        raise ValueError(msg)
    return checked


def _actor_class(actor_class: object) -> tuple[ActorClass[Any], type]:
    """The Ray actor class for ``actor_class`` and the plain class behind it."""
    if isinstance(actor_class, ActorClass):
        return actor_class, plain_class_of(actor_class)
    if isinstance(actor_class, ActorHandle):
        msg = (
            "'actor_class' must be a class, got a running actor "
            f"{describe(actor_class)}: pass its class, the supervisor creates the actor"
        )
        raise TypeError(msg)
    if not inspect.isclass(actor_class):
        hint = (
            ": a function becomes a Ray task, not an actor"
            if callable(actor_class)
            else ": pass the class itself, not an instance of it"
        )
        msg = f"'actor_class' must be a class or a @ray.remote class, got {describe(actor_class)}"
        raise TypeError(msg + hint)
    if inspect.isabstract(actor_class):
        missing = ", ".join(sorted(getattr(actor_class, "__abstractmethods__", ())))
        msg = (
            f"'actor_class' {actor_class.__name__} cannot become an actor: it is abstract "
            f"(no implementation of {missing})"
        )
        raise TypeError(msg)
    try:
        remote = ray.remote(actor_class)
    except Exception as exc:  # Ray's own refusal, named for the caller
        msg = f"'actor_class' {actor_class.__name__} cannot become a Ray actor: {exc}"
        raise TypeError(msg) from exc
    return remote, actor_class


def _check_child_actor_options(actor_options: object, remote: ActorClass[Any]) -> dict[str, Any]:
    options = check_actor_options(actor_options)
    if options.get("max_restarts", 0) != 0:
        msg = (
            f"'actor_options' sets max_restarts={options['max_restarts']!r}: the supervisor "
            "restarts its children itself (Ray restarts are off for them); leave it out"
        )
        raise ValueError(msg)
    if options.get("lifetime") == "detached":
        msg = (
            "'actor_options' sets lifetime='detached': a supervised child must share its "
            "supervisor's fate, so that the supervisor's restart cannot leave it behind"
        )
        raise ValueError(msg)
    if options.get("get_if_exists"):
        msg = "'actor_options' sets get_if_exists=True: a supervisor creates its children itself"
        raise ValueError(msg)
    options["max_restarts"] = 0
    bind_options(remote, options)  # Ray checks option names and values locally
    return options


def _check_args(args: object, kwargs: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return check_constructor_args("args", args, "kwargs", kwargs)


class ChildSpec:
    """How a supervisor starts one worker child, and whether it restarts it.

    Args:
        name: The child's name, unique among its siblings.
        actor_class: A plain class (the supervisor makes it an actor) or a
            ``@ray.remote`` class.
        args: Positional arguments for the class's constructor.
        kwargs: Keyword arguments for the class's constructor.
        restart: ``"permanent"`` (always restarted), ``"transient"`` (restarted only
            after an abnormal exit: a crash, a kill, a hang) or ``"temporary"``
            (never restarted).
        actor_options: Ray options for the child's actor (``num_cpus``, ``resources``,
            ``max_concurrency``, ...). Ray's own restarts stay off (``max_restarts=0``):
            the supervisor owns the restart policy.
        shutdown_timeout_s: How long a stopping child may take to end by itself
            before it is killed.
        start_timeout_s: How long its constructor (and ``restore``) may take.

    Raises:
        TypeError: If an argument has the wrong type, or ``actor_class`` cannot become
            an actor (a function, an instance, an abstract class).
        ValueError: If ``restart`` is unknown, a timeout is not > 0, or
            ``actor_options`` ask for Ray restarts, a detached lifetime or
            ``get_if_exists``.

    Examples:
        >>> class Cache:
        ...     def __init__(self, size: int) -> None:
        ...         self.size = size
        >>> spec = ChildSpec("cache", Cache, args=(128,), restart="transient")
        >>> spec.name, spec.restart, spec.actor_options["max_restarts"]
        ('cache', 'transient', 0)
        >>> ChildSpec("cache", Cache, restart="forever")
        Traceback (most recent call last):
        ...
        ValueError: 'restart' must be one of 'permanent', 'transient', 'temporary', got 'forever'
    """

    kind = "worker"

    def __init__(
        self,
        name: str,
        actor_class: type | ActorClass[Any],
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        restart: str = "permanent",
        actor_options: Mapping[str, Any] | None = None,
        shutdown_timeout_s: float = 5.0,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        self.name = check_child_name(name)
        self.remote_class, self.actor_class = _actor_class(actor_class)
        self.args, self.kwargs = _check_args(args, kwargs)
        self.restart = check_choice("restart", restart, RESTART_TYPES)
        self.actor_options = _check_child_actor_options(actor_options, self.remote_class)
        self.shutdown_timeout_s = check_positive_float("shutdown_timeout_s", shutdown_timeout_s)
        self.start_timeout_s = check_positive_float("start_timeout_s", start_timeout_s)

    @property
    def checkpointed(self) -> bool:
        """True if the class has both ``snapshot()`` and ``restore(state)``."""
        cls = self.actor_class
        return callable(getattr(cls, "snapshot", None)) and callable(getattr(cls, "restore", None))

    def __repr__(self) -> str:
        return f"ChildSpec({self.name!r}, {self.actor_class.__name__}, restart={self.restart!r})"


class SupervisorConfig:
    """A supervisor's validated options (shared by `Supervisor` and `SupervisorSpec`)."""

    def __init__(
        self,
        *,
        strategy: object,
        max_restarts: object,
        within_s: object,
        health_check_interval_s: object,
        health_check_timeout_s: object,
        backoff_s: object,
        store: object,
    ) -> None:
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.max_restarts = check_int("max_restarts", max_restarts, minimum=0)
        self.within_s = check_positive_float("within_s", within_s)
        self.health_check_interval_s = check_positive_float(
            "health_check_interval_s", health_check_interval_s
        )
        self.health_check_timeout_s = (
            self.health_check_interval_s
            if health_check_timeout_s is None
            else check_positive_float("health_check_timeout_s", health_check_timeout_s)
        )
        self.backoff = _check_backoff(backoff_s)
        self.store: CheckpointStore | None = check_store(store)

    def as_dict(self) -> dict[str, Any]:
        """The options as plain values (for ``describe()`` and the docs)."""
        return {
            "strategy": self.strategy,
            "max_restarts": self.max_restarts,
            "within_s": self.within_s,
            "health_check_interval_s": self.health_check_interval_s,
            "health_check_timeout_s": self.health_check_timeout_s,
            "backoff_s": self.backoff,
        }


def _check_backoff(backoff_s: object) -> tuple[float, float] | None:
    if backoff_s is None:
        return None
    if isinstance(backoff_s, tuple | list):
        if len(backoff_s) != 2:
            msg = (
                f"'backoff_s' must be seconds or a (first_s, max_s) pair, got {describe(backoff_s)}"
            )
            raise ValueError(msg)
        first = check_positive_float("backoff_s[0]", backoff_s[0])
        cap = check_positive_float("backoff_s[1]", backoff_s[1])
        if cap < first:
            msg = f"'backoff_s' must have max_s >= first_s, got {tuple(backoff_s)!r}"
            raise ValueError(msg)
        return first, cap
    first = check_positive_float("backoff_s", backoff_s)
    return first, first * 2**BACKOFF_DOUBLINGS


def check_supervisor_options(options: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Validate a SupervisorSpec's ``**supervisor_options``; return them with defaults."""
    allowed = {**SUPERVISOR_DEFAULTS, **AS_CHILD_DEFAULTS}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(repr(k) for k in allowed)
        got = ", ".join(map(repr, unknown))
        msg = f"{where} got unknown supervisor option(s) {got}; expected some of {listed}"
        raise TypeError(msg)
    return {**allowed, **options}


def check_children(children: object, *, what: str) -> list[ChildSpec | SupervisorSpec]:
    """Validate a list of specs: types and unique names (one level)."""
    if isinstance(children, ChildSpec | SupervisorSpec) or not isinstance(children, Iterable):
        msg = f"'{what}' must be a list of ChildSpec / SupervisorSpec, got {describe(children)}"
        raise TypeError(msg)
    specs = list(children)
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        if not isinstance(spec, ChildSpec | SupervisorSpec):
            msg = f"'{what}[{index}]' must be a ChildSpec or SupervisorSpec, got {describe(spec)}"
            raise TypeError(msg)
        if spec.name in seen:
            msg = (
                f"'{what}' holds two children named {spec.name!r}: "
                "names must be unique among siblings"
            )
            raise ValueError(msg)
        seen.add(spec.name)
    return specs


def check_tree(children: Sequence[ChildSpec | SupervisorSpec], *, root: str) -> None:
    """Check a whole spec tree: every level valid, and no supervisor inside itself."""

    def walk(specs: Sequence[Any], path: list[str], on_path: list[SupervisorSpec]) -> None:
        check_children(specs, what="children" if not on_path else f"{path[-1]}.children")
        for spec in specs:
            if not isinstance(spec, SupervisorSpec):
                continue
            if any(spec is seen for seen in on_path):
                loop = " > ".join([*path, spec.name])
                msg = (
                    f"the spec tree contains itself: {loop} "
                    "(a SupervisorSpec is among its own descendants)"
                )
                raise ValueError(msg)
            walk(spec.children, [*path, spec.name], [*on_path, spec])

    walk(children, [root], [])


class SupervisorSpec:
    """A supervisor as a child of another supervisor, so that supervisors supervise supervisors.

    Args:
        name: The child's name, unique among its siblings.
        children: Its own children (`ChildSpec` or `SupervisorSpec`), in start order.
            The list stays editable until the tree starts.
        **supervisor_options: The options of `Supervisor` (``strategy``,
            ``max_restarts``, ``within_s``, ``health_check_interval_s``,
            ``health_check_timeout_s``, ``backoff_s``, ``store``, ``actor_options``),
            plus how its parent treats it: ``restart`` (default ``"permanent"``) and
            ``shutdown_timeout_s`` (default: its children's shutdown timeouts added up,
            plus 5 s, so that it can stop them one by one). Without a ``store`` it uses
            its parent's.

    Raises:
        TypeError: If an argument has the wrong type or an option is unknown.
        ValueError: If an option is out of range or two children share a name.

    Examples:
        >>> class Worker:
        ...     pass
        >>> team = SupervisorSpec(
        ...     "team",
        ...     [ChildSpec("a", Worker), ChildSpec("b", Worker)],
        ...     strategy="one_for_all",
        ...     max_restarts=5,
        ...     within_s=30,
        ... )
        >>> team.name, [child.name for child in team.children], team.config.strategy
        ('team', ['a', 'b'], 'one_for_all')
        >>> SupervisorSpec("team", [ChildSpec("a", Worker), ChildSpec("a", Worker)])
        Traceback (most recent call last):
        ...
        ValueError: 'children' holds two children named 'a': names must be unique among siblings
    """

    kind = "supervisor"

    def __init__(
        self, name: str, children: Iterable[ChildSpec | SupervisorSpec], **supervisor_options: Any
    ) -> None:
        self.name = check_child_name(name)
        self.children: list[ChildSpec | SupervisorSpec] = check_children(children, what="children")
        options = check_supervisor_options(supervisor_options, where="SupervisorSpec()")
        self.config = SupervisorConfig(
            strategy=options["strategy"],
            max_restarts=options["max_restarts"],
            within_s=options["within_s"],
            health_check_interval_s=options["health_check_interval_s"],
            health_check_timeout_s=options["health_check_timeout_s"],
            backoff_s=options["backoff_s"],
            store=options["store"],
        )
        self.restart = check_choice("restart", options["restart"], RESTART_TYPES)
        self._shutdown_timeout_s = (
            None
            if options["shutdown_timeout_s"] is None
            else check_positive_float("shutdown_timeout_s", options["shutdown_timeout_s"])
        )
        self.actor_options = check_supervisor_actor_options(options["actor_options"], child=True)
        self.start_timeout_s = DEFAULT_START_TIMEOUT_S

    @property
    def shutdown_timeout_s(self) -> float:
        """How long its parent waits for it to stop its subtree before killing it."""
        if self._shutdown_timeout_s is not None:
            return self._shutdown_timeout_s
        return sum(c.shutdown_timeout_s for c in self.children) + SUPERVISOR_SHUTDOWN_MARGIN_S

    def subtree_start_timeout_s(self) -> float:
        """Time for the whole subtree to start, one child after another."""
        return self.start_timeout_s + sum(
            c.subtree_start_timeout_s() if isinstance(c, SupervisorSpec) else c.start_timeout_s
            for c in self.children
        )

    @property
    def checkpointed(self) -> bool:
        """Supervisors keep no state of their own to snapshot (their children do)."""
        return False

    def __repr__(self) -> str:
        names = ", ".join(repr(c.name) for c in self.children)
        return f"SupervisorSpec({self.name!r}, [{names}], strategy={self.config.strategy!r})"


def supervisor_actor_defaults(*, child: bool) -> dict[str, Any]:
    """A supervisor's own actor only waits, so it asks for no CPU by default.

    A root supervisor is restarted by Ray (``max_restarts=-1``) and starts its tree
    again; a supervisor that is a child is restarted by its parent instead.
    """
    return {"num_cpus": 0, "max_restarts": 0 if child else -1}


def check_supervisor_actor_options(actor_options: object, *, child: bool) -> dict[str, Any]:
    """Options of a supervisor's own actor, over `supervisor_actor_defaults`."""
    options = check_actor_options(actor_options, defaults=supervisor_actor_defaults(child=child))
    if child:
        # The parent owns restarts, as for any child.
        if options.get("max_restarts", 0) != 0:
            msg = (
                f"'actor_options' sets max_restarts={options['max_restarts']!r} for a child "
                "supervisor: its parent restarts it; leave it out"
            )
            raise ValueError(msg)
        if options.get("lifetime") == "detached" or options.get("get_if_exists"):
            msg = (
                "'actor_options' of a child supervisor cannot set lifetime='detached' "
                "or get_if_exists"
            )
            raise ValueError(msg)
    return options


def start_budget_s(spec: ChildSpec | SupervisorSpec) -> float:
    """How long a caller waits for ``spec`` to start: its start timeouts plus a margin.

    A worker's ``start_timeout_s``, a supervisor's for its whole subtree (one child after
    another), plus `START_MARGIN_S` for the restore and the clean-up of a failed start.
    """
    if isinstance(spec, SupervisorSpec):
        return spec.subtree_start_timeout_s() + START_MARGIN_S
    return spec.start_timeout_s + START_MARGIN_S
