"""The counter actor: a `CounterState` on `StatefulActor` (restore or start, apply, save)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ray

from patterns._requests import as_request
from patterns._stateful import StatefulActor
from patterns.checkpointing import CheckpointStore
from patterns.counters._state import CounterState

__all__ = ["CounterActor", "RemoteCounterActor"]


class CounterActor(StatefulActor):
    """One counter (or one shard of a sharded counter) in an actor.

    Facades send ``(client, seq)`` only when the counter has a store: without one there
    is nothing to deduplicate against (a restarted actor starts over anyway).

    Args:
        start: The initial value when there is no checkpoint to restore.
        store: Where to checkpoint (None: nowhere).
        key: The checkpoint key (None without a store).
        checkpoint_every: Save after every N applied changes.
        info: What ``describe()`` reports (``kind``, the shard's place, ...).
        legacy_keys: Keys an older release saved this counter under.
    """

    def __init__(
        self,
        start: int,
        store: CheckpointStore | None,
        key: str | None,
        checkpoint_every: int,
        info: Mapping[str, Any],
        legacy_keys: Sequence[str] = (),
    ) -> None:
        super().__init__(
            fresh=lambda: CounterState(start),
            restore=CounterState.from_snapshot,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            info=info,
            legacy_keys=legacy_keys,
        )

    def increment(self, n: int, client: int | None = None, seq: int | None = None) -> int:
        """Add ``n`` (once per request id); the value after it."""
        value: int = self._apply(self._state.increment, n, as_request(client, seq))
        return value

    def add(self, n: int, client: int | None = None, seq: int | None = None) -> None:
        """`increment` without the reply's value (what a sharded counter sends)."""
        self._apply(self._state.increment, n, as_request(client, seq))

    def reset(self, client: int | None = None, seq: int | None = None) -> None:
        """Set the value to 0 (once per request id)."""
        self._apply(self._state.reset, as_request(client, seq))

    def value(self) -> int:
        """The value after every applied change."""
        return int(self._state.value)

    def stats(self) -> dict[str, Any]:
        """What ``stats()`` of a facade reports about this actor."""
        return {
            "value": self._state.value,
            "key": self._info.get("key"),
            "checkpoint_version": self._checkpointer.version,
            "clients": len(self._state.requests),
        }

    def _describe(self) -> dict[str, Any]:
        return {"value": self._state.value, "clients": len(self._state.requests)}


RemoteCounterActor = ray.remote(CounterActor)
