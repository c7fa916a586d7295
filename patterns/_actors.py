"""Actor plumbing shared by the facades: options, creation, named attach, rebuilding.

- `check_actor_options` validates ``actor_options`` at the caller's line and merges
  them over a family's defaults (`RESTARTABLE_OPTIONS` for checkpointed actors).
- `make_actor` creates the actor (or gets the named one, race-free, with
  ``get_if_exists``); Ray's own option errors are re-raised naming ``actor_options``.
- `attach_named` finds a live named actor and checks, through the ``describe()``
  method every actor of this library has, that it is of the expected kind.
- `rebuild` is how a facade is made from an existing actor (``attach`` and
  unpickling), so no facade copies ``__new__`` + ``_setup`` by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import ray
from ray import ObjectRef
from ray.actor import ActorClass, ActorHandle

from patterns._calls import MAX_TASK_RETRIES, get
from patterns._checks import check_name, describe

__all__ = [
    "RESTARTABLE_OPTIONS",
    "actor_info",
    "attach_named",
    "bind_options",
    "check_actor_options",
    "check_kind",
    "check_naming",
    "check_options_and_naming",
    "get_named_actor",
    "make_actor",
    "rebuild",
    "restartable_defaults",
]

# Defaults for actors whose state is checkpointed: restart forever and retry calls that
# were in flight when the process died, a few times. Retries are safe because calls
# carry request ids (see patterns._requests) and the actor restores its state from the
# store in __init__. The count is finite so that a call that crashes its actor on every
# attempt (a poison call) fails with ActorLostError instead of hanging its caller; the
# actor, restarted, serves the other calls (patterns._calls.MAX_TASK_RETRIES).
RESTARTABLE_OPTIONS: dict[str, Any] = {"max_restarts": -1, "max_task_retries": MAX_TASK_RETRIES}

# How long a facade waits for an actor's describe() when attaching.
DESCRIBE_TIMEOUT_S = 60.0

F = TypeVar("F")


def restartable_defaults(store: object | None) -> dict[str, Any]:
    """`RESTARTABLE_OPTIONS` when the actor has a checkpoint store, else no defaults."""
    return dict(RESTARTABLE_OPTIONS) if store is not None else {}


def check_actor_options(
    actor_options: object, *, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate ``actor_options`` and return them merged over ``defaults``.

    The option names and values themselves are validated by Ray's ``.options()``,
    which runs locally, before anything is sent (see `make_actor`).

    Examples:
        >>> check_actor_options({"num_cpus": 0}, defaults=RESTARTABLE_OPTIONS)
        {'max_restarts': -1, 'max_task_retries': 3, 'num_cpus': 0}
    """
    if actor_options is None:
        actor_options = {}
    if not isinstance(actor_options, Mapping):
        msg = f"'actor_options' must be a dict or None, got {describe(actor_options)}"
        raise TypeError(msg)
    for key in actor_options:
        if not isinstance(key, str):
            msg = f"'actor_options' keys must be option names (str), got {describe(key)}"
            raise TypeError(msg)
    options = {**(defaults or {}), **actor_options}
    if "name" in options:
        check_name("actor_options['name']", options["name"])
    return options


def check_naming(
    name: object, namespace: object, options: Mapping[str, Any], *, facade: str
) -> tuple[str | None, str | None]:
    """Validate a facade's ``name=`` and ``namespace=``; refuse them inside ``actor_options``.

    Every facade names its actors one way: ``name=`` (and ``namespace=``) on the facade.
    A facade with several actors names each ``{name}/{member}`` (``hits/shard-0-of-4``).

    Examples:
        >>> check_naming("hits", None, {}, facade="Counter")
        ('hits', None)
        >>> check_naming(None, None, {"name": "hits"}, facade="Counter")
        Traceback (most recent call last):
        ...
        ValueError: 'actor_options' may not set 'name': pass name='hits' to Counter(...)
    """
    for key in ("name", "namespace"):
        if key in options:
            msg = (
                f"'actor_options' may not set {key!r}: pass {key}={options[key]!r} to {facade}(...)"
            )
            raise ValueError(msg)
    checked_name = None if name is None else check_name("name", name)
    checked_namespace = None if namespace is None else check_name("namespace", namespace)
    if checked_namespace is not None and checked_name is None:
        msg = f"'namespace' only applies to a named {facade}: pass name= too"
        raise ValueError(msg)
    if options.get("get_if_exists") and checked_name is None:
        msg = "'actor_options' sets get_if_exists=True without a name: pass name= too"
        raise ValueError(msg)
    if options.get("lifetime") == "detached" and checked_name is None:
        msg = "'actor_options' sets lifetime='detached' without a name: pass name= too"
        raise ValueError(msg)
    return checked_name, checked_namespace


def check_options_and_naming(
    actor_options: object,
    name: object,
    namespace: object,
    *,
    defaults: Mapping[str, Any] | None,
    facade: str,
) -> tuple[dict[str, Any], str | None, str | None, dict[str, str]]:
    """Check a facade's ``actor_options``, ``name`` and ``namespace`` together.

    Returns the options merged over ``defaults`` (without a name), the checked name and
    namespace, and the naming options to create a single actor with (``{"name": ...,
    "namespace": ...}``, empty for an unnamed facade). ``get_if_exists`` and a detached
    ``lifetime`` need a name: the facade's ``name=`` is it (`check_naming`).

    Examples:
        >>> check_options_and_naming({"num_cpus": 0}, "hits", None, defaults=None, facade="Counter")
        ({'num_cpus': 0}, 'hits', None, {'name': 'hits'})
    """
    options = check_actor_options(actor_options, defaults=defaults)
    checked_name, checked_namespace = check_naming(name, namespace, options, facade=facade)
    naming = {k: v for k, v in (("name", checked_name), ("namespace", checked_namespace)) if v}
    return options, checked_name, checked_namespace, naming


def bind_options(remote_cls: ActorClass[Any], options: Mapping[str, Any]) -> Any:
    """Apply ``options`` to ``remote_cls``; Ray's own validation errors name the argument."""
    try:
        return remote_cls.options(**options)
    except (TypeError, ValueError) as exc:
        msg = f"'actor_options' were refused by Ray: {exc}"
        raise type(exc)(msg) from exc


def make_actor(
    remote_cls: ActorClass[Any], options: Mapping[str, Any], *args: Any
) -> ActorHandle[Any]:
    """Create the actor, or get the existing one when ``get_if_exists`` is set.

    Ray resolves ``get_if_exists`` in the GCS, so two clients racing to create the
    same named actor both end up with the same one.
    """
    handle: ActorHandle[Any] = bind_options(remote_cls, options).remote(*args)
    return handle


def get_named_actor(name: object, namespace: object, *, kind: str) -> ActorHandle[Any]:
    """Return the live actor called ``name``, or raise a ValueError naming it."""
    check_name("name", name)
    if namespace is not None:
        check_name("namespace", namespace)
    try:
        return ray.get_actor(name, namespace=namespace)  # type: ignore[arg-type]
    except ValueError as exc:
        where = f" in namespace {namespace!r}" if namespace is not None else ""
        msg = f"no live {kind} actor named {name!r}{where}"
        raise ValueError(msg) from exc


def actor_info(
    actor: ActorHandle[Any], name: str, *, what: str, timeout: float | None = DESCRIBE_TIMEOUT_S
) -> dict[str, Any]:
    """Ask an actor of this library what it is (its ``describe()``), naming ``what`` if not."""
    try:
        method: Any = actor.describe
    except AttributeError:
        msg = f"the actor named {name!r} is not a {what} of this library"
        raise TypeError(msg) from None
    info: ObjectRef[dict[str, Any]] = method.remote()
    found: dict[str, Any] = get(info, timeout=timeout, who=f"actor {name!r}", method="describe")
    return found


def check_kind(info: Mapping[str, Any], name: str, kind: str) -> None:
    """Raise TypeError unless the actor's ``describe()`` says it is a ``kind``."""
    if info.get("kind") != kind:
        msg = f"the actor named {name!r} is a {info.get('kind')}, not a {kind}"
        raise TypeError(msg)


def attach_named(
    name: object, namespace: object, *, kind: str, what: str | None = None
) -> tuple[ActorHandle[Any], dict[str, Any]]:
    """Find the live actor ``name`` and check it is a ``kind``; return it and its info.

    Args:
        name: The actor's name.
        namespace: Its Ray namespace (None: this job's).
        kind: The ``kind`` its ``describe()`` must report (``"Counter"``).
        what: How to call the family in the error for a foreign actor (default ``kind``).
    """
    actor = get_named_actor(name, namespace, kind=kind)
    info = actor_info(actor, str(name), what=what or kind)
    check_kind(info, str(name), kind)
    return actor, info


def rebuild(cls: type[F], *state: Any, owned: bool = False) -> F:
    """Make a facade of ``cls`` around existing actors: ``cls._setup(*state)`` without ``__init__``.

    ``__init__`` validates arguments and creates actors; a facade made for an actor
    that exists already (``attach``, or a pickled copy arriving in a task) must skip
    both, and set itself up from the actor handles alone. Such a facade does not own
    the actors (its ``close()`` releases them) unless ``owned`` says so.
    """
    facade = cls.__new__(cls)
    facade._setup(*state)  # type: ignore[attr-defined]
    if hasattr(facade, "_facade_owned"):
        facade._facade_owned = owned
    return facade
