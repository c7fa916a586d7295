"""`ShardedCounter`: one count spread over shard actors, with optional client-side batching."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Mapping
from typing import Any

import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import rebuild
from patterns._batching import ClientBatcher
from patterns._calls import DEFAULT, Timeout
from patterns._checkpointer import default_key
from patterns._checks import check_bool, check_int
from patterns._facade import check_facade_timeout, gather
from patterns._sharded import ShardedFacade, live_shard_count, shard_member
from patterns.checkpointing import CheckpointStore
from patterns.counters import _actor
from patterns.counters._validate import (
    check_batching,
    check_count,
    check_options,
    check_store,
    describe_named,
    new_creator,
)
from patterns.errors import PatternError

__all__ = ["ShardedCounter"]

# A bound must stay > 0 even when an earlier step of the same call used it all.
_MIN_LEFT_S = 1e-3


@ray.remote(num_cpus=0)
def _sum(*values: int) -> int:
    return sum(values)


@ray.remote(num_cpus=0)
def _shard_stats(client: dict[str, Any], *shards: dict[str, Any]) -> dict[str, Any]:
    return {
        **client,
        "value": sum(shard["value"] for shard in shards),
        "shard_values": [shard["value"] for shard in shards],
        "checkpoint_versions": [shard["checkpoint_version"] for shard in shards],
    }


def legacy_shard_key(key: str, index: int) -> str:
    """Where releases before the shared layout kept shard ``index``: ``{key}/shard-{i}``."""
    return f"{key}/shard-{index}"


class ShardedCounter(ShardedFacade):
    """A counter spread over ``n_shards`` actors: writers do not queue behind one actor.

    Each increment goes to one shard (round robin, starting at a random shard per
    facade); `value()` sums the shards. A sum is not a snapshot: it includes the
    increments each shard had applied when it answered; once writers are
    acknowledged, it is exact.

    **Batching mode** (``batch_size`` and/or ``flush_interval_s``): `increment()`
    adds to a buffer on the client and returns at once; the buffer is sent to a shard
    as one call when it holds ``batch_size`` increments or is ``flush_interval_s``
    seconds old, and on `flush()`, `value()` and `close()` (also at the end of a
    ``with`` block). Sends do not wait for the reply; `flush()` does, and at most a
    few batches per shard are out at once (a further send waits for room, within the
    call's timeout). Buffered increments are acknowledged only when `flush()` (or
    `close()`) returns: if the client process dies, or the facade is dropped without
    being closed, before that, they are lost. A batch that fails (even one the
    background flush sent) is raised by the next call.

    **Lifecycle.** ``close()`` flushes, stops the shard actors and returns once Ray
    reports them dead; their checkpoints stay in the store. A facade from `attach`,
    or a copy unpickled in a task (with its own, empty buffer), flushes and releases
    the shards on ``close()``: they keep running. ``kill()`` crashes the shards'
    processes (a fault demo); it sends nothing and leaves the buffer as it is.

    With a store, shard ``i`` checkpoints under ``f"{key}/shard-{i}-of-{n_shards}"``
    (a checkpoint of the older layout, ``f"{key}/shard-{i}"``, still restores) and
    increments are exactly-once as for `Counter` (a flushed batch is one request).

    Args:
        n_shards: How many actors (an int >= 1).
        start: The initial value (an int >= 0), held by shard 0.
        store: Where the shards checkpoint (see `Counter`).
        key: The checkpoint key prefix (default: the name, else a random key).
        checkpoint_every: Checkpoint each shard after every N applied changes.
        batch_size: Batching mode: send the buffer when it holds this many increments.
        flush_interval_s: Batching mode: send the buffer when it is this many seconds
            old (a background thread does it).
        name: Names the shards ``f"{name}/shard-{i}-of-{n_shards}"`` (see `attach`).
            With ``actor_options={"get_if_exists": True}`` a live sharded counter of
            that name is attached instead (its number of shards must match).
        namespace: The Ray namespace of named shards (default: the job's).
        timeout: Seconds each call waits when it is given no ``timeout=`` (default
            60; None: no bound).
        actor_options: Other options for every shard actor, as for `Counter`. Shards
            default to ``scheduling_strategy="SPREAD"``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_shards < 1``, ``start < 0``, ``checkpoint_every < 1``,
            ``batch_size < 1`` or ``flush_interval_s <= 0``, ``key`` or
            ``checkpoint_every`` is given without a store, or a live counter of that
            name has a different number of shards.

    Examples:
        >>> with ShardedCounter(n_shards=2) as counter:
        ...     for _ in range(4):
        ...         counter.increment()
        ...     counter.value()
        ...     counter.shard_values()
        4
        [2, 2]
        >>> with ShardedCounter(n_shards=2, batch_size=100) as batched:
        ...     for _ in range(250):
        ...         batched.increment()
        ...     batched.value()
        250
    """

    _kind = "ShardedCounter"

    def __init__(
        self,
        *,
        n_shards: int = 4,
        start: int = 0,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        batch_size: int | None = None,
        flush_interval_s: float | None = None,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        n_shards = check_int("n_shards", n_shards, minimum=1)
        start = check_count("start", start)
        store, checkpoint_every = check_store(store, key, checkpoint_every)
        batch_size, flush_interval_s = check_batching(batch_size, flush_interval_s)
        seconds = check_facade_timeout(timeout)
        options, name, namespace = check_options(
            actor_options,
            name,
            namespace,
            store=store,
            facade="ShardedCounter",
            defaults={"scheduling_strategy": "SPREAD"},
        )
        joining = bool(options.get("get_if_exists"))
        if joining:
            assert name is not None  # check_options refuses get_if_exists without a name
            existing = live_shard_count(name, namespace)
            if existing is not None and existing != n_shards:
                msg = (
                    f"'n_shards' must match the live ShardedCounter {name!r}, which has "
                    f"{existing} shards, got {n_shards}"
                )
                raise ValueError(msg)
        if store is not None:
            key = default_key(key, {"name": name, "namespace": namespace}, "sharded-counter")
        creator = new_creator()
        base_key = key

        def shard_args(index: int, shard_key: str | None) -> tuple[Any, ...]:
            info = {
                "kind": "ShardedCounter",
                "n_shards": n_shards,
                "index": index,
                "base_key": base_key,
                "creator": creator,
            }
            legacy = [legacy_shard_key(base_key, index)] if base_key is not None else []
            shard_start = start if index == 0 else 0
            return (shard_start, store, shard_key, checkpoint_every, info, legacy)

        shards = self._start_shards(
            _actor.RemoteCounterActor,
            options,
            n_shards,
            shard_args,
            name=name,
            namespace=namespace,
            key=key,
        )
        owned = True
        if joining:  # the shards may have existed: trust what they say
            assert name is not None
            infos = [
                describe_named(
                    shard,
                    f"{name}/{shard_member(index, n_shards)}",
                    kind="ShardedCounter",
                    timeout=seconds,
                    method="ShardedCounter(...)",
                )
                for index, shard in enumerate(shards)
            ]
            key = infos[0].get("base_key")
            owned = infos[0].get("creator") == creator
        self._setup(shards, key, name, namespace, seconds, batch_size, flush_interval_s)
        self._facade_owned = owned

    def _setup(
        self,
        shards: list[ActorHandle[Any]],
        key: str | None,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
        batch_size: int | None,
        flush_interval_s: float | None,
    ) -> None:
        self._setup_shards(
            shards, key=key, name=name, namespace=namespace, owned=True, timeout=timeout
        )
        self._adds = [shard.add for shard in self._shards]
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._next_shard = itertools.count(random.randrange(len(self._shards)))
        self._batcher: ClientBatcher[int] | None = None
        if batch_size is not None or flush_interval_s is not None:
            self._batcher = ClientBatcher(
                self._send_batch,
                batch_size=batch_size,
                flush_interval_s=flush_interval_s,
                # Back-pressure: never more than a few batches per shard in flight.
                max_pending=4 * len(self._shards),
                timeout=timeout,
                who=self._who,
                adds="increment",
            )

    @property
    def _thread(self) -> Any:
        return self._batcher.thread if self._batcher is not None else None

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        batch_size: int | None = None,
        flush_interval_s: float | None = None,
        timeout: Timeout = DEFAULT,
    ) -> ShardedCounter:
        """Return a facade for the live sharded counter called ``name``.

        Args:
            name: The name given when it was created (``name=``).
            namespace: The Ray namespace it lives in (default: any).
            own: Take the shards over: this facade's ``close()`` stops them. By
                default the facade releases them on ``close()``; they keep running.
            batch_size: Batching mode for this facade (see the class).
            flush_interval_s: Batching mode for this facade (see the class).
            timeout: The new facade's timeout (see the class).

        Returns:
            A new facade (with its own client id and buffer) for those shards.

        Raises:
            TypeError: If an argument has the wrong type or the actors are not a
                ShardedCounter.
            ValueError: If there is no live sharded counter with that name.

        Examples:
            >>> with ShardedCounter(n_shards=2, name="doctest-sharded") as first:
            ...     first.increment(3)
            ...     with ShardedCounter.attach("doctest-sharded") as attached:
            ...         attached.value()
            3
        """
        own = check_bool("own", own)
        batch_size, flush_interval_s = check_batching(batch_size, flush_interval_s)
        seconds = check_facade_timeout(timeout)
        shards, infos = cls._find_shards(name, namespace, kind="ShardedCounter", timeout=seconds)
        key = infos[0].get("base_key")
        state = (shards, key, name, namespace, seconds, batch_size, flush_interval_s)
        return rebuild(cls, *state, owned=own)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy gets a fresh client id, sequences and an empty buffer; what this
        # facade has buffered stays here until it flushes. It does not own the shards.
        state = (
            self._shards,
            self._key,
            self.name,
            self.namespace,
            self.timeout,
            self._batch_size,
            self._flush_interval_s,
        )
        return (rebuild, (ShardedCounter, *state))

    def __repr__(self) -> str:
        named = f", name={self.name!r}" if self.name else ""
        size = f", batch_size={self._batch_size}" if self._batch_size is not None else ""
        interval = (
            f", flush_interval_s={self._flush_interval_s}"
            if self._flush_interval_s is not None
            else ""
        )
        return f"ShardedCounter(n_shards={self.n_shards}{named}{size}{interval})"

    @property
    def batching(self) -> bool:
        """True if increments are buffered on the client."""
        return self._batcher is not None

    # ---------------------------------------------------------------- sending
    def _send(self, n: int) -> ObjectRef[None]:
        index = next(self._next_shard) % len(self._shards)
        ref: ObjectRef[None] = self._adds[index].remote(n, *self._ids(index))
        return ref

    def _send_batch(self, increments: list[int]) -> ObjectRef[None]:
        # A flushed batch is one request: applied (and deduplicated) as a whole.
        return self._send(sum(increments))

    def _flush_within(self, seconds: float | None, method: str) -> float | None:
        """Flush the buffer within ``seconds``; what is left of them for the rest."""
        if self._batcher is None:
            return seconds
        started = time.monotonic()
        self._batcher.flush(seconds, method=method)
        if seconds is None:
            return None
        return max(_MIN_LEFT_S, seconds - (time.monotonic() - started))

    def _send_buffer(self, method: str) -> None:
        if self._batcher is not None:
            self._batcher.send_buffer(method=method)

    # ---------------------------------------------------------------- calls
    def increment(self, n: int = 1, *, timeout: Timeout = DEFAULT) -> None:
        """Add ``n``: sent and acknowledged before returning, or buffered when batching.

        Args:
            n: How much to add (an int >= 0).
            timeout: Seconds to wait for the reply, or for room to send a full buffer
                when batching (default: the counter's timeout; None: no bound).

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            CallTimeoutError: No reply (or no room) within ``timeout``: the increment
                is sent and may still be applied.
            PatternError: A batch sent earlier failed (batching mode), or the shard
                died under the call (`ActorLostError`).
            FacadeClosedError: The counter was closed.

        Examples:
            >>> with ShardedCounter(n_shards=3) as counter:
            ...     counter.increment(7)
            ...     counter.value()
            7
        """
        if type(n) is not int or n < 0:
            n = check_count("n", n)
        if self._batcher is None:
            seconds = self._seconds(timeout)
            self._check_open("increment")
            self._get(self._send(n), timeout=seconds, method="increment")
            return
        self._check_open("increment")
        self._batcher.add(n, timeout=timeout)

    def increment_async(self, n: int = 1) -> ObjectRef[None]:
        """Send an increment of ``n`` to a shard and return at once (not when batching).

        Args:
            n: How much to add (an int >= 0).

        Returns:
            An ObjectRef that resolves (to None) when the shard has applied it.

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
            PatternError: In batching mode (use `increment()` then `flush()`).
            FacadeClosedError: The counter was closed.

        Examples:
            >>> import ray
            >>> with ShardedCounter(n_shards=2) as counter:
            ...     _ = ray.get([counter.increment_async(2) for _ in range(3)])
            ...     counter.value()
            6
        """
        if type(n) is not int or n < 0:
            n = check_count("n", n)
        self._check_open("increment_async")
        if self._batcher is not None:
            msg = (
                f"{self._who}: increment_async is not available in batching mode: "
                "use increment() and flush()"
            )
            raise PatternError(msg)
        return self._send(n)

    def flush(self, *, timeout: Timeout = DEFAULT) -> None:
        """Send the buffer and wait until every batch this facade sent is applied.

        When this returns, every increment made through this facade is acknowledged.
        Without batching there is nothing to flush.

        Args:
            timeout: Seconds to wait (default: the counter's timeout; None: no bound).

        Raises:
            CallTimeoutError: Some batches did not finish within ``timeout``: they stay
                pending and the next flush waits for them again.
            PatternError: A batch failed (`ActorLostError` if its shard died under it
                and Ray gave up): those increments are not acknowledged.

        Examples:
            >>> with ShardedCounter(n_shards=2, batch_size=1000) as counter:
            ...     counter.increment(5)
            ...     counter.flush()
            ...     counter.value()
            5
        """
        seconds = self._seconds(timeout)
        self._check_open("flush")
        self._flush_within(seconds, "flush")

    def _release(self, timeout: float | None) -> None:
        if self._batcher is not None:
            self._batcher.close(timeout)

    def value(self, *, timeout: Timeout = DEFAULT) -> int:
        """Flush this facade's buffer, then return the sum of the shards.

        Args:
            timeout: Seconds for both (default: the counter's timeout; None: no bound).

        Returns:
            The total over all shards.

        Examples:
            >>> with ShardedCounter(n_shards=2, start=9) as counter:
            ...     counter.value()
            9
        """
        return sum(self._shard_values(timeout, "value"))

    def value_async(self) -> ObjectRef[int]:
        """Ask for the total and return at once (this facade's buffer is sent first).

        Returns:
            An ObjectRef to the sum of the shards.

        Examples:
            >>> import ray
            >>> with ShardedCounter(n_shards=2, start=1) as counter:
            ...     ray.get(counter.value_async())
            1
        """
        self._check_open("value_async")
        self._send_buffer("value_async")
        ref: ObjectRef[int] = _sum.remote(*[shard.value.remote() for shard in self._shards])
        return ref

    def _shard_values(self, timeout: Timeout, method: str) -> list[int]:
        seconds = self._seconds(timeout)
        self._check_open(method)
        left = self._flush_within(seconds, method)
        refs = [shard.value.remote() for shard in self._shards]
        values: list[int] = self._get(refs, timeout=left, method=method)
        return values

    def shard_values(self, *, timeout: Timeout = DEFAULT) -> list[int]:
        """Return each shard's value, shard 0 first (this facade's buffer is flushed).

        Args:
            timeout: Seconds for both (default: the counter's timeout; None: no bound).

        Returns:
            One value per shard.

        Examples:
            >>> with ShardedCounter(n_shards=3, start=2) as counter:
            ...     counter.shard_values()
            [2, 0, 0]
        """
        return self._shard_values(timeout, "shard_values")

    def shard_values_async(self) -> ObjectRef[list[int]]:
        """Ask for each shard's value and return at once (the buffer is sent first)."""
        self._check_open("shard_values_async")
        self._send_buffer("shard_values_async")
        ref: ObjectRef[list[int]] = gather.remote(*[s.value.remote() for s in self._shards])
        return ref

    def _send_resets(self) -> list[ObjectRef[None]]:
        return [shard.reset.remote(*self._ids(i)) for i, shard in enumerate(self._shards)]

    def reset(self, *, timeout: Timeout = DEFAULT) -> None:
        """Flush this facade's buffer, then set every shard to 0.

        Shards are reset one by one: increments from other writers that race with the
        reset may land before or after it.

        Args:
            timeout: Seconds for both (default: the counter's timeout; None: no bound).

        Examples:
            >>> with ShardedCounter(n_shards=2, start=5) as counter:
            ...     counter.reset()
            ...     counter.value()
            0
        """
        seconds = self._seconds(timeout)
        self._check_open("reset")
        left = self._flush_within(seconds, "reset")
        self._get(self._send_resets(), timeout=left, method="reset")

    def reset_async(self) -> ObjectRef[list[None]]:
        """Send the buffer, then a reset to every shard, and return at once."""
        self._check_open("reset_async")
        self._send_buffer("reset_async")
        ref: ObjectRef[list[None]] = gather.remote(*self._send_resets())
        return ref

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        client = {
            "key": self._key,
            "n_shards": self.n_shards,
            "batch_size": self._batch_size,
            "flush_interval_s": self._flush_interval_s,
            "buffered": self._batcher.buffered if self._batcher is not None else 0,
        }
        ref: ObjectRef[dict[str, Any]] = _shard_stats.remote(
            client, *[shard.stats.remote() for shard in self._shards]
        )
        return ref
