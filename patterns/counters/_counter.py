"""`Counter`: one count in one actor, every increment acknowledged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import get_named_actor, make_actor, rebuild
from patterns._calls import DEFAULT, Timeout
from patterns._checkpointer import default_key
from patterns._checks import check_bool
from patterns._facade import ActorFacade, check_facade_timeout
from patterns._ray_internals import actor_id_hex
from patterns._requests import RequestIds
from patterns.checkpointing import CheckpointStore
from patterns.counters import _actor
from patterns.counters._validate import (
    check_count,
    check_options,
    check_store,
    describe_named,
    new_creator,
)

__all__ = ["Counter"]


class Counter(ActorFacade):
    """A counter that lives in one Ray actor; every increment is acknowledged.

    The facade is cheap to pass around: send it to tasks and actors and they all count
    into the same actor. Each copy numbers its own calls, so retries never double-count.

    **Lifecycle.** ``close()`` (or the end of a ``with`` block) stops the actor and
    returns once Ray reports it dead; its checkpoints stay in the store. A facade from
    `attach`, or a copy unpickled in a task, does not own the actor: its ``close()``
    releases it and the actor keeps running. ``kill()`` crashes the actor's process (a
    fault demo): with a store, Ray restarts it and it restores its checkpoint.

    Args:
        start: The initial value (an int >= 0). Ignored if the store already holds a
            checkpoint under ``key``: the counter resumes from it.
        store: Where to checkpoint (see `patterns.checkpointing`). With a store,
            acknowledged increments survive the actor's process being killed, and the
            actor defaults to ``max_restarts=-1`` and a few retries of a call that was
            in flight (``max_task_retries=3``).
        key: The checkpoint key. Defaults to the counter's name (``namespace/name``)
            when it has one, else to a fresh random key (read it back from `key`;
            pass it again to resume after your program restarts).
        checkpoint_every: Checkpoint after every N applied changes. 1 (the default)
            makes every acknowledged increment durable; N > 1 is cheaper but may lose
            up to N - 1 acknowledged increments in a crash.
        name: The actor's name, so that other programs can `attach` to it. With
            ``actor_options={"get_if_exists": True}`` the counter attaches to a live
            actor of that name instead of creating one (race-free: Ray decides in its
            control store; the other arguments then only apply if it is created, and
            this facade owns the actor only if it created it).
        namespace: The Ray namespace of a named counter (default: the job's).
        timeout: Seconds each call waits for its reply when it is given no
            ``timeout=`` (default 60; None: no bound).
        actor_options: Other options for the actor (``lifetime``, ``num_cpus``,
            ``resources``, ``max_restarts``, ``get_if_exists``, ...). A named actor
            ends with the process that created it unless ``lifetime="detached"``.

    Raises:
        TypeError: If an argument has the wrong type (``start`` not an int, ``store``
            not a CheckpointStore, ...).
        ValueError: If ``start < 0``, ``checkpoint_every < 1``, ``key`` or
            ``checkpoint_every`` is given without a store, ``actor_options`` sets
            ``name``/``namespace``, or ``get_if_exists`` comes without ``name``.

    Examples:
        >>> with Counter() as counter:
        ...     counter.increment()
        ...     counter.increment(2)
        ...     counter.value()
        1
        3
        3
    """

    _kind = "Counter"

    def __init__(
        self,
        *,
        start: int = 0,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        start = check_count("start", start)
        store, checkpoint_every = check_store(store, key, checkpoint_every)
        seconds = check_facade_timeout(timeout)
        options, name, namespace = check_options(
            actor_options, name, namespace, store=store, facade="Counter"
        )
        if store is not None:
            key = default_key(key, {"name": name, "namespace": namespace}, "counter")
        creator = new_creator()
        info = {"kind": "Counter", "creator": creator}
        if name is not None:
            options = {**options, "name": name}
            if namespace is not None:
                options["namespace"] = namespace
        remote_cls = _actor.RemoteCounterActor
        actor = make_actor(remote_cls, options, start, store, key, checkpoint_every, info)
        owned = True
        if options.get("get_if_exists"):  # the actor may have existed: trust what it says
            assert name is not None  # check_options refuses get_if_exists without a name
            found = describe_named(
                actor, name, kind="Counter", timeout=seconds, method="Counter(...)"
            )
            key = found.get("key")
            owned = found.get("creator") == creator
        self._setup(actor, key, name, namespace, seconds)
        self._facade_owned = owned

    def _setup(
        self,
        actor: ActorHandle[Any],
        key: str | None,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
    ) -> None:
        self._actor = actor
        self._key = key
        self._exactly_once = key is not None  # request ids only matter with a store
        self._requests = RequestIds()
        # Bound once: looking up an actor method on a handle costs a little every time.
        self._increment: Any = actor.increment
        self._init_facade([actor], name=name, namespace=namespace, owned=True, timeout=timeout)

    @property
    def _client(self) -> int:
        return self._requests.client

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Timeout = DEFAULT,
    ) -> Counter:
        """Return a facade for the live counter actor called ``name``.

        Args:
            name: The counter's name (``name=`` when it was created).
            namespace: The Ray namespace it lives in (default: this job's).
            own: Take the actor over: this facade's ``close()`` stops it (to end a
                detached counter from another program). By default the facade
                releases it on ``close()`` and the actor keeps running.
            timeout: The new facade's timeout (see the class).

        Returns:
            A new facade (with its own client id) for that actor.

        Raises:
            TypeError: If an argument has the wrong type, or the actor is not a Counter.
            ValueError: If there is no live actor with that name.
            CallTimeoutError: If the actor did not say what it is within ``timeout``.

        Examples:
            >>> with Counter(name="doctest-attach") as first:
            ...     _ = first.increment(5)
            ...     with Counter.attach("doctest-attach") as attached:
            ...         attached.value()
            5
        """
        own = check_bool("own", own)
        seconds = check_facade_timeout(timeout)
        actor = get_named_actor(name, namespace, kind="Counter")
        info = describe_named(actor, name, kind="Counter", timeout=seconds, method="attach")
        return rebuild(cls, actor, info.get("key"), name, namespace, seconds, owned=own)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) gets a fresh client id and sequence, so two
        # writers never share request ids; it does not own the actor.
        state = (self._actor, self._key, self.name, self.namespace, self.timeout)
        return (rebuild, (Counter, *state))

    def __repr__(self) -> str:
        where = f"name={self.name!r}" if self.name else f"actor_id={actor_id_hex(self._actor)!r}"
        return f"Counter({where}, key={self._key!r})"

    @property
    def actor(self) -> ActorHandle[Any]:
        """The Ray actor handle behind the facade."""
        return self._actor

    @property
    def key(self) -> str | None:
        """The checkpoint key (None without a store)."""
        return self._key

    def increment(self, n: int = 1, *, timeout: Timeout = DEFAULT) -> int:
        """Add ``n`` and return the new value once the actor has applied it.

        When this returns, the increment is acknowledged: with a store it is in the
        checkpoint (``checkpoint_every=1``) and will never be lost or counted twice.

        Args:
            n: How much to add (an int >= 0).
            timeout: Seconds to wait for the reply (default: the counter's timeout;
                None: no bound).

        Returns:
            The value right after this increment (for a call that Ray re-sent after a
            crash and that had already been applied, the current value).

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            CallTimeoutError: No reply within ``timeout`` (the increment may still be
                applied).
            ActorLostError: The actor died under the call and Ray retried it as often
                as it may (a poison call): not acknowledged, it may or may not count.
            FacadeClosedError: The counter was closed.

        Examples:
            >>> with Counter(start=10) as counter:
            ...     counter.increment(5)
            15
        """
        seconds = self._seconds(timeout)  # checked before anything is sent
        self._check_open("increment")
        value: int = self._get(self.increment_async(n), timeout=seconds, method="increment")
        return value

    def increment_async(self, n: int = 1) -> ObjectRef[int]:
        """Send an increment of ``n`` and return at once.

        Args:
            n: How much to add (an int >= 0).

        Returns:
            An ObjectRef to the value right after this increment; the increment is
            acknowledged when the ref resolves.

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            FacadeClosedError: The counter was closed.

        Examples:
            >>> import ray
            >>> with Counter() as counter:
            ...     ray.get([counter.increment_async() for _ in range(3)])
            [1, 2, 3]
        """
        if type(n) is not int or n < 0:
            n = check_count("n", n)
        self._check_open("increment_async")
        ref: ObjectRef[int]
        if self._exactly_once:
            ref = self._increment.remote(n, *self._requests.next())
        else:
            ref = self._increment.remote(n)
        return ref

    def value(self, *, timeout: Timeout = DEFAULT) -> int:
        """Return the current value.

        Args:
            timeout: Seconds to wait for the reply (default: the counter's timeout).

        Returns:
            The value after every increment the actor has applied so far.

        Examples:
            >>> with Counter(start=4) as counter:
            ...     counter.value()
            4
        """
        seconds = self._seconds(timeout)
        self._check_open("value")
        value: int = self._get(self.value_async(), timeout=seconds, method="value")
        return value

    def value_async(self) -> ObjectRef[int]:
        """Ask for the current value and return at once: an ObjectRef to it.

        Examples:
            >>> import ray
            >>> with Counter(start=2) as counter:
            ...     ray.get(counter.value_async())
            2
        """
        self._check_open("value_async")
        ref: ObjectRef[int] = self._actor.value.remote()
        return ref

    def reset(self, *, timeout: Timeout = DEFAULT) -> None:
        """Set the value to 0 (exactly once, like an increment).

        Args:
            timeout: Seconds to wait for the reply (default: the counter's timeout).

        Examples:
            >>> with Counter(start=3) as counter:
            ...     counter.reset()
            ...     counter.value()
            0
        """
        seconds = self._seconds(timeout)
        self._check_open("reset")
        self._get(self.reset_async(), timeout=seconds, method="reset")

    def reset_async(self) -> ObjectRef[None]:
        """Send a reset and return at once: an ObjectRef that resolves once it is applied.

        Examples:
            >>> import ray
            >>> with Counter(start=3) as counter:
            ...     ray.get(counter.reset_async())
            ...     counter.value()
            0
        """
        self._check_open("reset_async")
        ref: ObjectRef[None]
        if self._exactly_once:
            ref = self._actor.reset.remote(*self._requests.next())
        else:
            ref = self._actor.reset.remote()
        return ref

    def checkpoint(self, *, timeout: Timeout = DEFAULT) -> int | None:
        """Write a checkpoint now (useful with ``checkpoint_every > 1``, before a planned stop).

        Args:
            timeout: Seconds to wait for the reply (default: the counter's timeout).

        Returns:
            The version written, or None if the counter has no store.

        Examples:
            >>> with Counter() as counter:
            ...     counter.checkpoint() is None
            True
        """
        seconds = self._seconds(timeout)
        self._check_open("checkpoint")
        version: int | None = self._get(
            self.checkpoint_async(), timeout=seconds, method="checkpoint"
        )
        return version

    def checkpoint_async(self) -> ObjectRef[int | None]:
        """Ask for a checkpoint and return at once: an ObjectRef to the version written."""
        self._check_open("checkpoint_async")
        ref: ObjectRef[int | None] = self._actor.checkpoint.remote()
        return ref

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        ref: ObjectRef[dict[str, Any]] = self._actor.stats.remote()
        return ref
