"""Argument checks and actor look-ups shared by `Counter` and `ShardedCounter`.

Everything here runs at the caller's line, before any actor starts: a bad argument is a
``TypeError``/``ValueError`` naming it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ray.actor import ActorHandle

from patterns._actors import check_kind, check_options_and_naming, restartable_defaults
from patterns._calls import get, target
from patterns._checkpointer import check_store_args
from patterns._checks import check_int, check_positive_float
from patterns.checkpointing import CheckpointStore

__all__ = [
    "check_batching",
    "check_count",
    "check_options",
    "check_store",
    "describe_named",
    "new_creator",
]


def check_count(name: str, value: object) -> int:
    """A count or an increment: an int >= 0 (``bool`` refused, numpy ints accepted)."""
    return check_int(name, value, minimum=0)


def check_store(store: object, key: object, checkpoint_every: object) -> tuple[Any, int]:
    """``store``, ``key`` and ``checkpoint_every`` together (the last two need a store)."""
    return check_store_args(store, key, checkpoint_every, what="counter")


def check_batching(batch_size: object, flush_interval_s: object) -> tuple[int | None, float | None]:
    """The batching mode: ``batch_size`` >= 1 and/or ``flush_interval_s`` > 0, or neither."""
    size = None if batch_size is None else check_int("batch_size", batch_size, minimum=1)
    interval = (
        None
        if flush_interval_s is None
        else check_positive_float("flush_interval_s", flush_interval_s)
    )
    return size, interval


def check_options(
    actor_options: object,
    name: object,
    namespace: object,
    *,
    store: CheckpointStore | None,
    facade: str,
    defaults: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], str | None, str | None]:
    """Validate ``actor_options`` with the facade's ``name=``/``namespace=``.

    Returns the options merged over the defaults (restartable with a store), without
    ``name``/``namespace``, and the checked name and namespace.
    """
    options, checked_name, checked_namespace, _ = check_options_and_naming(
        actor_options,
        name,
        namespace,
        defaults={**(defaults or {}), **restartable_defaults(store)},
        facade=facade,
    )
    return options, checked_name, checked_namespace


def new_creator() -> str:
    """A random token a facade gives the actors it creates (``describe()["creator"]``).

    With ``get_if_exists`` the facade may get actors another facade created: it owns
    them (its ``close()`` stops them) only if they carry its own token.
    """
    return uuid.uuid4().hex


def describe_named(
    actor: ActorHandle[Any], name: str, *, kind: str, timeout: float | None, method: str
) -> dict[str, Any]:
    """The ``describe()`` of the named actor ``name``, checked to be a ``kind``.

    Raises:
        TypeError: The actor is not a ``kind`` of this library.
        CallTimeoutError: It did not answer within ``timeout``.
    """
    try:
        describe: Any = actor.describe
    except AttributeError:
        msg = f"the actor named {name!r} is not a counter of this library"
        raise TypeError(msg) from None
    info: dict[str, Any] = get(
        describe.remote(), timeout=timeout, who=target(kind, name), method=method
    )
    check_kind(info, name, kind)
    return info
