"""Counters that live in Ray actors, with exactly-once acknowledged increments.

`Counter` keeps one count in one actor. `ShardedCounter` spreads the
increments of many writers over ``k`` actors and sums them on read, and can batch
increments on the client for very high rates.

Counters count things: values start at ``start >= 0`` and increments are ints
``n >= 0``. Because the value never goes down (except by ``reset()``), "the final
value equals the number of acknowledged increments" is something a test can check,
and a lost or doubled increment shows.

**Exactly-once.** Give a counter a checkpoint store and every increment whose call
returned is counted exactly once, even if the actor's process is killed and Ray
restarts it:

* each facade instance (and each copy of it unpickled in a task) draws a random
  client id and numbers its calls 1, 2, 3, ...; the actor remembers which
  ``(client, seq)`` it has applied (`patterns._requests.RequestLog`), so a call
  that arrives twice is applied once;
* the actor writes a checkpoint (value and that memory) before the call returns, so
  what was acknowledged is in the store;
* with a store the actor is created with ``max_restarts=-1`` and
  ``max_task_retries=-1`` (override them in ``actor_options``), and its ``__init__``
  restores the newest checkpoint, so after a crash Ray brings it back by itself.

Without a store, calls carry no request ids (a restarted actor starts over, so there
is nothing to deduplicate against) and a counter costs what a bare Ray actor costs.

Calls in flight when the process dies are re-sent by Ray to the restarted actor: a
call that was applied and checkpointed before the crash is recognised and not applied
again (its reply is then the counter's current value); a call that was not is applied
now. Either way the caller sees one successful return and the count moves once. A
call that *raises* (retries exhausted, ``ray.kill``) was not acknowledged: it may or
may not have been counted.

With ``checkpoint_every=N > 1`` a checkpoint is written every N applied changes, which
is cheaper, but up to N - 1 acknowledged increments since the last checkpoint are lost
if the process dies (never double-counted: the request memory is in the same
snapshot).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
from collections.abc import Mapping
from typing import Any

import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import (
    actor_info,
    attach_named,
    check_actor_options,
    check_kind,
    get_named_actor,
    make_actor,
    rebuild,
    restartable_defaults,
)
from patterns._batching import ClientBatcher
from patterns._checkpointer import Checkpointer, check_store_args, default_key
from patterns._checks import check_int, check_name, check_positive_float
from patterns._requests import RequestIds, RequestLog
from patterns.checkpointing import CheckpointStore

__all__ = ["Counter", "ShardedCounter"]

_SNAPSHOT_FORMAT = 1


class _CounterState:
    """The count and the memory of applied requests: plain Python, no Ray.

    Examples:
        >>> state = _CounterState(start=5)
        >>> state.increment(2, request=(1, 1))
        7
        >>> state.increment(2, request=(1, 1))  # the same request again: not applied
        7
        >>> _CounterState.from_snapshot(state.snapshot()).value
        7
    """

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.changes = 0  # applied mutations, so the actor knows when to checkpoint
        self.requests = RequestLog()

    def _first_time(self, request: tuple[int, int] | None) -> bool:
        return request is None or self.requests.first_time(*request)

    def increment(self, n: int = 1, request: tuple[int, int] | None = None) -> int:
        """Add ``n`` unless ``request`` was applied before; return the value."""
        if self._first_time(request):
            self.value += n
            self.changes += 1
        return self.value

    def reset(self, request: tuple[int, int] | None = None) -> None:
        """Set the value to 0 unless ``request`` was applied before."""
        if self._first_time(request):
            self.value = 0
            self.changes += 1

    def snapshot(self) -> dict[str, Any]:
        """A plain, picklable copy of the state."""
        return {
            "format": _SNAPSHOT_FORMAT,
            "value": self.value,
            "requests": self.requests.snapshot(),
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> _CounterState:
        """Rebuild the state from `snapshot()` output."""
        if snapshot.get("format") != _SNAPSHOT_FORMAT:
            msg = f"unknown counter snapshot format {snapshot.get('format')!r}"
            raise ValueError(msg)
        state = cls(snapshot["value"])
        state.requests = RequestLog.from_snapshot(snapshot["requests"])
        return state


def _request(client: int | None, seq: int | None) -> tuple[int, int] | None:
    return None if client is None or seq is None else (client, seq)


class _CounterActor:
    """The actor: a ``_CounterState`` plus checkpointing. Restores itself in ``__init__``."""

    def __init__(
        self,
        start: int,
        store: CheckpointStore | None,
        key: str | None,
        checkpoint_every: int,
        info: dict[str, Any],
    ) -> None:
        self._checkpointer = Checkpointer(store, key or "", checkpoint_every)
        restored = self._checkpointer.restore()
        if restored is not None:
            self._state = _CounterState.from_snapshot(restored.state)
        else:
            self._state = _CounterState(start)
        self._info = {**info, "key": key, "restored_version": self._checkpointer.version}

    def _applied(self, before: int) -> None:
        if self._state.changes != before:
            # Saved before the reply leaves: an acknowledged change is in the store.
            self._checkpointer.changed(self._state.snapshot)

    # Facades send (client, seq) only when the counter has a store: without one there
    # is nothing to deduplicate against (a restarted actor starts over anyway).
    def increment(self, n: int, client: int | None = None, seq: int | None = None) -> int:
        before = self._state.changes
        value = self._state.increment(n, _request(client, seq))
        self._applied(before)
        return value

    def add(self, n: int, client: int | None = None, seq: int | None = None) -> None:
        self.increment(n, client, seq)

    def reset(self, client: int | None = None, seq: int | None = None) -> None:
        before = self._state.changes
        self._state.reset(_request(client, seq))
        self._applied(before)

    def value(self) -> int:
        return self._state.value

    def checkpoint(self) -> int | None:
        return self._checkpointer.save(self._state.snapshot())

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return {**self._info, "value": self._state.value, "clients": len(self._state.requests)}


_RemoteCounterActor = ray.remote(_CounterActor)


@ray.remote(num_cpus=0)
def _sum(*values: int) -> int:
    return sum(values)


def _check_count(name: str, value: object) -> int:
    return check_int(name, value, minimum=0)


def _check_timeout(timeout: object) -> float | None:
    return None if timeout is None else check_positive_float("timeout", timeout)


def _check_store_args(store: object, key: object, checkpoint_every: object) -> tuple[Any, int]:
    return check_store_args(store, key, checkpoint_every, what="counter")


def _describe_actor(actor: ActorHandle[Any], name: str) -> dict[str, Any]:
    return actor_info(actor, name, what="counter")


class Counter:
    """A counter that lives in one Ray actor; every increment is acknowledged.

    The facade is cheap to pass around: send it to tasks and actors and they all count
    into the same actor. Each copy numbers its own calls, so retries never double-count.

    Args:
        start: The initial value (an int >= 0). Ignored if the store already holds a
            checkpoint under ``key``: the counter resumes from it.
        store: Where to checkpoint (see `patterns.checkpointing`). With a store,
            acknowledged increments survive the actor's process being killed, and the
            actor defaults to ``max_restarts=-1, max_task_retries=-1``.
        key: The checkpoint key. Defaults to the actor's name (``namespace/name``) when
            it has one, else to a fresh random key (read it back from `key`; pass
            it again to resume after your program restarts).
        checkpoint_every: Checkpoint after every N applied changes. 1 (the default)
            makes every acknowledged increment durable; N > 1 is cheaper but may lose
            up to N - 1 acknowledged increments in a crash.
        actor_options: Options for the actor (``name``, ``namespace``, ``lifetime``,
            ``num_cpus``, ``resources``, ``max_restarts``, ...). With ``name`` and
            ``get_if_exists=True`` the counter attaches to an existing actor of that
            name instead of creating one (race-free: Ray decides in its control store);
            the other arguments then only apply if it is created. A named actor ends
            with the process that created it unless ``lifetime="detached"``.

    Raises:
        TypeError: If an argument has the wrong type (``start`` not an int, ``store``
            not a CheckpointStore, ...).
        ValueError: If ``start < 0``, ``checkpoint_every < 1``, ``key`` or
            ``checkpoint_every`` is given without a store, or the actor options are
            inconsistent (``get_if_exists`` without ``name``).

    Examples:
        >>> counter = Counter()
        >>> counter.increment()
        1
        >>> counter.increment(2)
        3
        >>> counter.value()
        3
        >>> counter.reset()
        >>> counter.value()
        0
    """

    def __init__(
        self,
        start: int = 0,
        *,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        start = _check_count("start", start)
        store, checkpoint_every = _check_store_args(store, key, checkpoint_every)
        options = check_actor_options(actor_options, defaults=restartable_defaults(store))
        key = default_key(key, options, "counter") if store is not None else None
        info = {"kind": "Counter", "shards": 1, "index": 0}
        actor = make_actor(_RemoteCounterActor, options, start, store, key, checkpoint_every, info)
        if options.get("get_if_exists"):  # the actor may have existed: trust what it says
            found = _describe_actor(actor, options["name"])
            check_kind(found, options["name"], "Counter")
            key = found.get("key")
        self._setup(actor, key)

    def _setup(self, actor: ActorHandle[Any], key: str | None) -> None:
        self._actor = actor
        self._key = key
        self._exactly_once = key is not None  # request ids only matter with a store
        self._requests = RequestIds()
        # Bound once: looking up an actor method on a handle costs a little every time.
        self._increment: Any = actor.increment

    @property
    def _client(self) -> int:
        return self._requests.client

    @classmethod
    def attach(cls, name: str, *, namespace: str | None = None) -> Counter:
        """Return a facade for the live counter actor called ``name``.

        Args:
            name: The actor's name (``actor_options["name"]`` when it was created).
            namespace: The Ray namespace it lives in (default: this job's).

        Returns:
            A new facade (with its own client id) for that actor.

        Raises:
            TypeError: If ``name`` or ``namespace`` is not a str, or the actor is not a
                Counter.
            ValueError: If there is no live actor with that name.

        Examples:
            >>> first = Counter(actor_options={"name": "doctest-attach"})
            >>> _ = first.increment(5)
            >>> Counter.attach("doctest-attach").value()
            5
            >>> first.kill()
        """
        actor, info = attach_named(name, namespace, kind="Counter", what="counter")
        return rebuild(cls, actor, info.get("key"))

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) gets a fresh client id and sequence: two
        # writers never share request ids.
        return (rebuild, (Counter, self._actor, self._key))

    def __repr__(self) -> str:
        return f"Counter(actor_id={self._actor._actor_id.hex()!r})"

    @property
    def actor(self) -> ActorHandle[Any]:
        """The Ray actor handle behind the facade."""
        return self._actor

    @property
    def key(self) -> str | None:
        """The checkpoint key (None without a store)."""
        return self._key

    def increment(self, n: int = 1, *, timeout: float | None = None) -> int:
        """Add ``n`` and return the new value once the actor has applied it.

        When this returns, the increment is acknowledged: with a store it is in the
        checkpoint (``checkpoint_every=1``) and will never be lost or counted twice.

        Args:
            n: How much to add (an int >= 0).
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            The value right after this increment (for a call that Ray re-sent after a
            crash and that had already been applied, the current value).

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            ray.exceptions.GetTimeoutError: If ``timeout`` passed (the increment may
                still be applied).

        Examples:
            >>> counter = Counter(start=10)
            >>> counter.increment(5)
            15
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        return ray.get(self.increment_async(n), timeout=timeout)

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

        Examples:
            >>> counter = Counter()
            >>> refs = [counter.increment_async() for _ in range(3)]
            >>> ray.get(refs)
            [1, 2, 3]
        """
        if type(n) is not int or n < 0:
            n = _check_count("n", n)
        ref: ObjectRef[int]
        if self._exactly_once:
            ref = self._increment.remote(n, *self._requests.next())
        else:
            ref = self._increment.remote(n)
        return ref

    def value(self, *, timeout: float | None = None) -> int:
        """Return the current value.

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            The value after every increment the actor has applied so far.

        Examples:
            >>> Counter(start=4).value()
            4
        """
        return ray.get(self.value_async(), timeout=_check_timeout(timeout))

    def value_async(self) -> ObjectRef[int]:
        """Ask for the current value and return at once.

        Returns:
            An ObjectRef to the value.

        Examples:
            >>> ray.get(Counter(start=2).value_async())
            2
        """
        return self._actor.value.remote()

    def reset(self, *, timeout: float | None = None) -> None:
        """Set the value to 0 (exactly once, like an increment).

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Examples:
            >>> counter = Counter(start=3)
            >>> counter.reset()
            >>> counter.value()
            0
        """
        ray.get(self.reset_async(), timeout=_check_timeout(timeout))

    def reset_async(self) -> ObjectRef[None]:
        """Send a reset and return at once.

        Returns:
            An ObjectRef that resolves when the reset is applied.

        Examples:
            >>> counter = Counter(start=3)
            >>> ray.get(counter.reset_async())
            >>> counter.value()
            0
        """
        if self._exactly_once:
            return self._actor.reset.remote(*self._requests.next())
        return self._actor.reset.remote()

    def checkpoint(self, *, timeout: float | None = None) -> int | None:
        """Write a checkpoint now (useful with ``checkpoint_every > 1``).

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            The version written, or None if the counter has no store.

        Examples:
            >>> Counter().checkpoint() is None
            True
        """
        version: ObjectRef[int | None] = self._actor.checkpoint.remote()
        return ray.get(version, timeout=_check_timeout(timeout))

    def pid(self, *, timeout: float | None = None) -> int:
        """Return the process id of the actor (for crash demos and fault tests).

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            The OS process id of the worker running the actor right now.

        Examples:
            >>> Counter().pid() > 0
            True
        """
        pid: ObjectRef[int] = self._actor.pid.remote()
        return ray.get(pid, timeout=_check_timeout(timeout))

    def kill(self) -> None:
        """Terminate the actor for good (no restart); its checkpoints stay in the store.

        Examples:
            >>> Counter().kill()
        """
        ray.kill(self._actor, no_restart=True)


def _shard_name(name: str, index: int) -> str:
    return f"{name}/shard-{index}"


def _sharded_info(actors: list[ActorHandle[Any]], name: str, shards: int) -> str | None:
    """Check that ``actors`` are the ``shards`` shards of one ShardedCounter; return its key."""
    infos = [_describe_actor(actor, _shard_name(name, i)) for i, actor in enumerate(actors)]
    for info in infos:
        if info.get("kind") != "ShardedCounter":
            msg = f"the actors named {name!r}/shard-* are not a ShardedCounter"
            raise TypeError(msg)
        if info.get("shards") != shards:
            msg = (
                f"'shards' must match the existing ShardedCounter {name!r}, which has "
                f"{info.get('shards')} shards, got {shards}"
            )
            raise ValueError(msg)
    return infos[0].get("base_key")


class ShardedCounter:
    """A counter spread over ``shards`` actors: writers do not queue behind one actor.

    Each increment goes to one shard (round robin, starting at a random shard per
    facade); `value()` sums the shards. A sum is not a snapshot: it includes the
    increments each shard had applied when it answered; once writers are
    acknowledged, it is exact.

    **Batching mode** (``batch_size`` and/or ``flush_interval``): `increment()`
    adds to a buffer on the client and returns at once; the buffer is sent to a shard
    as one call when it holds ``batch_size`` increments or is ``flush_interval`` seconds
    old, and on `flush()`, `value()` and `close()` (also at the end of a
    ``with`` block). Sends do not wait for the reply; `flush()` does. Buffered
    increments are acknowledged only when `flush()` (or `close()`) returns:
    if the client process dies, or the facade is dropped without being closed, before
    that, they are lost.

    With a store, each shard checkpoints under ``f"{key}/shard-{i}"`` and increments
    are exactly-once as for `Counter` (a flushed batch is one request).

    Args:
        shards: How many actors (an int >= 1).
        start: The initial value (an int >= 0), held by shard 0.
        store: Where the shards checkpoint (see `Counter`).
        key: The checkpoint key prefix (default: the name, else a random key).
        checkpoint_every: Checkpoint each shard after every N applied changes.
        batch_size: Batching mode: send the buffer when it holds this many increments.
        flush_interval: Batching mode: send the buffer when it is this many seconds old
            (a background thread does it).
        actor_options: Options for every shard actor, as for `Counter`. Shards
            default to ``scheduling_strategy="SPREAD"``. A ``name`` names the shards
            ``f"{name}/shard-{i}"``; with ``get_if_exists=True`` an existing sharded
            counter of that name is attached (its number of shards must match).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``shards < 1``, ``start < 0``, ``checkpoint_every < 1``,
            ``batch_size < 1`` or ``flush_interval <= 0``, ``key`` or ``checkpoint_every``
            is given without a store, or an existing counter has a different number of
            shards.

    Examples:
        >>> counter = ShardedCounter(shards=2)
        >>> for _ in range(4):
        ...     counter.increment()
        >>> counter.value()
        4
        >>> counter.shard_values()
        [2, 2]
        >>> with ShardedCounter(shards=2, batch_size=100) as batched:
        ...     for _ in range(250):
        ...         batched.increment()
        ...     batched.value()
        250
    """

    def __init__(
        self,
        shards: int = 4,
        *,
        start: int = 0,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        batch_size: int | None = None,
        flush_interval: float | None = None,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        shards = check_int("shards", shards, minimum=1)
        start = _check_count("start", start)
        store, checkpoint_every = _check_store_args(store, key, checkpoint_every)
        batch_size, flush_interval = _check_batching(batch_size, flush_interval)
        defaults = {"scheduling_strategy": "SPREAD", **restartable_defaults(store)}
        options = check_actor_options(actor_options, defaults=defaults)
        key = default_key(key, options, "sharded-counter") if store is not None else None
        name = options.get("name")
        actors = []
        for index in range(shards):
            shard_options = dict(options)
            if name:
                shard_options["name"] = _shard_name(name, index)
            info = {"kind": "ShardedCounter", "shards": shards, "index": index, "base_key": key}
            shard_key = f"{key}/shard-{index}" if key is not None else None
            shard_start = start if index == 0 else 0
            args = (shard_start, store, shard_key, checkpoint_every, info)
            actors.append(make_actor(_RemoteCounterActor, shard_options, *args))
        if options.get("get_if_exists"):  # the actors may have existed: trust what they say
            key = _sharded_info(actors, str(name), shards)
        self._setup(actors, key, batch_size, flush_interval)

    def _setup(
        self,
        actors: list[ActorHandle[Any]],
        key: str | None,
        batch_size: int | None,
        flush_interval: float | None,
    ) -> None:
        self._actors = list(actors)
        self._adds = [actor.add for actor in self._actors]
        self._key = key
        self._exactly_once = key is not None
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        # One sequence per shard: each shard's request log then sees no gaps.
        self._requests = RequestIds(streams=len(self._actors))
        self._next_shard = itertools.count(random.randrange(len(self._actors)))
        self._closed = False
        self._batcher: ClientBatcher[int] | None = None
        if batch_size is not None or flush_interval is not None:
            self._batcher = ClientBatcher(
                self._send_batch,
                batch_size=batch_size,
                flush_interval=flush_interval,
                # Back-pressure: never more than a few batches per shard in flight.
                max_pending=4 * len(self._actors),
                name="ShardedCounter",
            )

    @property
    def _client(self) -> int:
        return self._requests.client

    @property
    def _thread(self) -> Any:
        return self._batcher.thread if self._batcher is not None else None

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        batch_size: int | None = None,
        flush_interval: float | None = None,
    ) -> ShardedCounter:
        """Return a facade for the live sharded counter called ``name``.

        Args:
            name: The name given in ``actor_options["name"]`` when it was created.
            namespace: The Ray namespace it lives in (default: this job's).
            batch_size: Batching mode for this facade (see the class).
            flush_interval: Batching mode for this facade (see the class).

        Returns:
            A new facade (with its own client id and buffer) for those actors.

        Raises:
            TypeError: If an argument has the wrong type or the actors are not a
                ShardedCounter.
            ValueError: If there is no live sharded counter with that name.

        Examples:
            >>> first = ShardedCounter(2, actor_options={"name": "doctest-sharded"})
            >>> first.increment(3)
            >>> ShardedCounter.attach("doctest-sharded").value()
            3
            >>> first.kill()
        """
        batch_size, flush_interval = _check_batching(batch_size, flush_interval)
        first = get_named_actor(
            _shard_name(check_name("name", name), 0), namespace, kind="ShardedCounter"
        )
        info = _describe_actor(first, _shard_name(name, 0))
        if info.get("kind") != "ShardedCounter":
            msg = f"the actors named {name!r}/shard-* are not a ShardedCounter"
            raise TypeError(msg)
        actors = [first] + [
            get_named_actor(_shard_name(name, i), namespace, kind="ShardedCounter")
            for i in range(1, info["shards"])
        ]
        return rebuild(cls, actors, info.get("base_key"), batch_size, flush_interval)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy gets a fresh client id, sequences and an empty buffer; what this
        # facade has buffered stays here until it flushes.
        args = (self._actors, self._key, self._batch_size, self._flush_interval)
        return (rebuild, (ShardedCounter, *args))

    def __repr__(self) -> str:
        mode = f", batch_size={self._batch_size}" if self.batching else ""
        return f"ShardedCounter(shards={len(self._actors)}{mode})"

    def __enter__(self) -> ShardedCounter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def shards(self) -> int:
        """The number of shard actors."""
        return len(self._actors)

    @property
    def actors(self) -> list[ActorHandle[Any]]:
        """The shard actor handles, shard 0 first."""
        return list(self._actors)

    @property
    def key(self) -> str | None:
        """The checkpoint key prefix (None without a store)."""
        return self._key

    @property
    def batching(self) -> bool:
        """True if increments are buffered on the client."""
        return self._batcher is not None

    def _send(self, n: int) -> ObjectRef[None]:
        index = next(self._next_shard) % len(self._actors)
        if self._exactly_once:
            return self._adds[index].remote(n, *self._requests.next(index))
        return self._adds[index].remote(n)

    def _send_batch(self, increments: list[int]) -> ObjectRef[None]:
        # A flushed batch is one request: applied (and deduplicated) as a whole.
        return self._send(sum(increments))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ShardedCounter is closed")

    def increment(self, n: int = 1, *, timeout: float | None = None) -> None:
        """Add ``n``: sent and acknowledged before returning, or buffered when batching.

        Args:
            n: How much to add (an int >= 0).
            timeout: Seconds to wait for the reply when not batching (None: forever).

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            RuntimeError: If the counter was closed.

        Examples:
            >>> counter = ShardedCounter(shards=3)
            >>> counter.increment(7)
            >>> counter.value()
            7
        """
        if type(n) is not int or n < 0:
            n = _check_count("n", n)
        if self._batcher is None:
            self._check_open()
            ray.get(self._send(n), timeout=_check_timeout(timeout))
            return
        self._batcher.add(n)

    def increment_async(self, n: int = 1) -> ObjectRef[None]:
        """Send an increment of ``n`` to a shard and return at once (not when batching).

        Args:
            n: How much to add (an int >= 0).

        Returns:
            An ObjectRef that resolves (to None) when the shard has applied it.

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            RuntimeError: In batching mode (use `increment()` then `flush()`),
                or if the counter was closed.

        Examples:
            >>> counter = ShardedCounter(shards=2)
            >>> _ = ray.get([counter.increment_async(2) for _ in range(3)])
            >>> counter.value()
            6
        """
        if type(n) is not int or n < 0:
            n = _check_count("n", n)
        if self._batcher is not None:
            msg = "increment_async is not available in batching mode: use increment() and flush()"
            raise RuntimeError(msg)
        self._check_open()
        return self._send(n)

    def flush(self, *, timeout: float | None = None) -> None:
        """Send the buffer and wait until every batch this facade sent is applied.

        When this returns, every increment made through this facade is acknowledged.
        Without batching there is nothing to flush.

        Args:
            timeout: Seconds to wait (None waits forever).

        Raises:
            ray.exceptions.GetTimeoutError: If ``timeout`` passed (batches stay pending
                and the next flush waits for them again).

        Examples:
            >>> counter = ShardedCounter(shards=2, batch_size=1000)
            >>> counter.increment(5)
            >>> counter.flush()
            >>> counter.value()
            5
        """
        timeout = _check_timeout(timeout)
        if self._batcher is not None:
            self._batcher.flush(timeout)

    def close(self, *, timeout: float | None = None) -> None:
        """Flush, stop the flush thread and refuse further increments (idempotent).

        The shard actors keep running (other facades may use them): see `kill()`.

        Args:
            timeout: Seconds to wait for the flush (None waits forever).

        Examples:
            >>> counter = ShardedCounter(shards=2, flush_interval=0.5)
            >>> counter.increment()
            >>> counter.close()
            >>> counter.value()
            1
        """
        if self._closed:
            return
        timeout = _check_timeout(timeout)
        if self._batcher is not None:
            self._batcher.close(timeout)
        self._closed = True

    def value(self, *, timeout: float | None = None) -> int:
        """Flush this facade's buffer, then return the sum of the shards.

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            The total over all shards.

        Examples:
            >>> ShardedCounter(shards=2, start=9).value()
            9
        """
        timeout = _check_timeout(timeout)
        if self._batcher is not None:
            self._batcher.flush(timeout)
        return sum(ray.get([actor.value.remote() for actor in self._actors], timeout=timeout))

    def value_async(self) -> ObjectRef[int]:
        """Ask for the total and return at once (this facade's buffer is sent first).

        Returns:
            An ObjectRef to the sum of the shards.

        Examples:
            >>> ray.get(ShardedCounter(shards=2, start=1).value_async())
            1
        """
        if self._batcher is not None:
            self._batcher.send_buffer()
        return _sum.remote(*[actor.value.remote() for actor in self._actors])

    def shard_values(self, *, timeout: float | None = None) -> list[int]:
        """Return each shard's value, shard 0 first (this facade's buffer is flushed).

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            One value per shard.

        Examples:
            >>> ShardedCounter(shards=3, start=2).shard_values()
            [2, 0, 0]
        """
        timeout = _check_timeout(timeout)
        if self._batcher is not None:
            self._batcher.flush(timeout)
        return ray.get([actor.value.remote() for actor in self._actors], timeout=timeout)

    def reset(self, *, timeout: float | None = None) -> None:
        """Flush this facade's buffer, then set every shard to 0.

        Shards are reset one by one: increments from other writers that race with the
        reset may land before or after it.

        Args:
            timeout: Seconds to wait (None waits forever).

        Examples:
            >>> counter = ShardedCounter(shards=2, start=5)
            >>> counter.reset()
            >>> counter.value()
            0
        """
        timeout = _check_timeout(timeout)
        if self._batcher is not None:
            self._batcher.flush(timeout)
        if self._exactly_once:
            refs = [
                actor.reset.remote(*self._requests.next(index))
                for index, actor in enumerate(self._actors)
            ]
        else:
            refs = [actor.reset.remote() for actor in self._actors]
        ray.get(refs, timeout=timeout)

    def checkpoint(self, *, timeout: float | None = None) -> list[int | None]:
        """Write a checkpoint of every shard now.

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            The version written per shard (None entries without a store).

        Examples:
            >>> ShardedCounter(shards=2).checkpoint()
            [None, None]
        """
        timeout = _check_timeout(timeout)
        return ray.get([actor.checkpoint.remote() for actor in self._actors], timeout=timeout)

    def pids(self, *, timeout: float | None = None) -> list[int]:
        """Return the process id of each shard actor (for crash demos and fault tests).

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            One OS process id per shard, shard 0 first.

        Examples:
            >>> len(ShardedCounter(shards=2).pids())
            2
        """
        timeout = _check_timeout(timeout)
        return ray.get([actor.pid.remote() for actor in self._actors], timeout=timeout)

    def kill(self) -> None:
        """Terminate every shard actor for good, without flushing the buffer.

        Examples:
            >>> ShardedCounter(shards=2).kill()
        """
        self._closed = True
        if self._batcher is not None:
            self._batcher.discard()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


def _check_batching(batch_size: object, flush_interval: object) -> tuple[int | None, float | None]:
    size = None if batch_size is None else check_int("batch_size", batch_size, minimum=1)
    interval = (
        None if flush_interval is None else check_positive_float("flush_interval", flush_interval)
    )
    return size, interval
