"""Private helpers shared by the pattern facades.

Argument checks (so that a bad call fails at the caller's line, with a message that
names the argument, what was expected and what came), ``actor_options`` handling,
race-free get-or-create and attach of named actors, and the request log that makes
retried calls idempotent.
"""

from __future__ import annotations

import numbers
import secrets
from collections.abc import Mapping
from typing import Any

import ray
from ray.actor import ActorClass, ActorHandle

# Defaults for actors whose state is checkpointed: restart forever and retry calls that
# were in flight when the process died. Retries are safe because calls carry request
# ids (see RequestLog) and the actor restores its state from the store in __init__.
RESTARTABLE_OPTIONS: dict[str, Any] = {"max_restarts": -1, "max_task_retries": -1}


def describe(value: object) -> str:
    """Render a received value for an error message: ``'3' (str)``."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def check_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name``.

    bool is refused (``True`` is not a count); other integral types (numpy ints) are
    accepted and converted.
    """
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            msg = f"'{name}' must be an int, got {describe(value)}"
            raise TypeError(msg)
        value = int(value)
    if minimum is not None and value < minimum:
        msg = f"'{name}' must be an int >= {minimum}, got {value!r}"
        raise ValueError(msg)
    return value


def check_positive_float(name: str, value: object) -> float:
    """Return ``value`` as a float > 0 (an int or float, not bool), or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"'{name}' must be a number of seconds (int or float), got {describe(value)}"
        raise TypeError(msg)
    value = float(value)
    if not value > 0 or value == float("inf"):
        msg = f"'{name}' must be a finite number > 0, got {value!r}"
        raise ValueError(msg)
    return value


def check_name(name: str, value: object) -> str:
    """Return ``value`` if it is a non-empty str, or raise naming ``name``."""
    if not isinstance(value, str):
        msg = f"'{name}' must be a str, got {describe(value)}"
        raise TypeError(msg)
    if not value:
        msg = f"'{name}' must be a non-empty str, got ''"
        raise ValueError(msg)
    return value


def check_actor_options(
    actor_options: object, *, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate ``actor_options`` and return them merged over ``defaults``.

    The option names and values themselves are validated by Ray's ``.options()``,
    which runs locally, before anything is sent (see `make_actor`).
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
    if options.get("get_if_exists") and not options.get("name"):
        msg = "'actor_options' sets get_if_exists=True without a 'name': give the actor a name"
        raise ValueError(msg)
    if options.get("lifetime") == "detached" and not options.get("name"):
        msg = "'actor_options' sets lifetime='detached' without a 'name': give the actor a name"
        raise ValueError(msg)
    if "name" in options:
        check_name("actor_options['name']", options["name"])
    return options


def bind_options(remote_cls: ActorClass, options: Mapping[str, Any]) -> Any:
    """Apply ``options`` to ``remote_cls``; Ray's own validation errors name the argument."""
    try:
        return remote_cls.options(**options)
    except (TypeError, ValueError) as exc:
        msg = f"'actor_options' were refused by Ray: {exc}"
        raise type(exc)(msg) from exc


def make_actor(remote_cls: ActorClass, options: Mapping[str, Any], *args: Any) -> ActorHandle:
    """Create the actor, or get the existing one when ``get_if_exists`` is set.

    Ray resolves ``get_if_exists`` in the GCS, so two clients racing to create the
    same named actor both end up with the same one.
    """
    return bind_options(remote_cls, options).remote(*args)


def get_named_actor(name: object, namespace: object, *, kind: str) -> ActorHandle:
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


def new_client_id() -> int:
    """A random id for one facade instance: the first half of its request ids."""
    return secrets.randbits(62)


class RequestLog:
    """Remembers which ``(client, seq)`` requests were applied, so a retry is a no-op.

    A client numbers its requests 1, 2, 3, ... Ray retries calls that were in flight
    when an actor died, and runs retries out of order, so the log keeps, per client,
    a floor (every seq at or below it was applied) and the set of applied seqs above
    it; the set stays small because the floor advances as soon as the gaps fill.

    Two bounds keep memory finite, each documented where it bites: at most
    ``max_clients`` clients are remembered (the least recently seen is forgotten), and
    a client may have at most ``max_window`` requests applied above a missing one
    (after that the missing one is given up on: its late arrival counts as done).

    Examples:
        >>> log = RequestLog()
        >>> log.first_time(7, 1), log.first_time(7, 1), log.first_time(7, 3)
        (True, False, True)
        >>> log.snapshot()
        {7: (1, (3,))}
    """

    __slots__ = ("_clients", "max_clients", "max_window")

    def __init__(self, *, max_clients: int = 100_000, max_window: int = 65_536) -> None:
        self._clients: dict[int, tuple[int, set[int]]] = {}
        self.max_clients = max_clients
        self.max_window = max_window

    def __len__(self) -> int:
        return len(self._clients)

    def first_time(self, client: int, seq: int) -> bool:
        """Record request ``(client, seq)``; True if it was not applied before."""
        entry = self._clients.pop(client, None)  # re-inserted last: most recently seen
        if entry is None:
            floor, above = 0, set()
            if len(self._clients) >= self.max_clients:
                del self._clients[next(iter(self._clients))]
        else:
            floor, above = entry
        if seq <= floor or seq in above:
            self._clients[client] = (floor, above)
            return False
        if seq == floor + 1:
            floor = seq
            while floor + 1 in above:
                floor += 1
                above.discard(floor)
        else:
            above.add(seq)
            if len(above) > self.max_window:
                floor = min(above)
                above.discard(floor)
                while floor + 1 in above:
                    floor += 1
                    above.discard(floor)
        self._clients[client] = (floor, above)
        return True

    def snapshot(self) -> dict[int, tuple[int, tuple[int, ...]]]:
        """Plain, picklable copy of the log (for checkpoints)."""
        return {c: (floor, tuple(sorted(above))) for c, (floor, above) in self._clients.items()}

    @classmethod
    def from_snapshot(
        cls, snapshot: Mapping[int, tuple[int, tuple[int, ...]]], **limits: int
    ) -> RequestLog:
        """Rebuild a log from `snapshot()` output."""
        log = cls(**limits)
        log._clients = {c: (floor, set(above)) for c, (floor, above) in snapshot.items()}
        return log
