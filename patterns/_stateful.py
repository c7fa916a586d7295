"""The base of the library's checkpointed actors: restore or start, apply once, save, report.

Every stateful actor of the library (a counter, a parameter-server shard, an agent) is a
plain state class held by an actor built on `StatefulActor`:

- ``__init__`` restores the newest checkpoint, or starts a fresh state (Ray re-runs
  ``__init__`` with the same arguments when it restarts the actor, so recovery needs no
  code of its own); checkpoints under an older key layout still restore;
- `StatefulActor._apply` runs a state method and, if it changed the state, saves before
  the reply leaves, so an acknowledged change is in the store;
- ``checkpoint()``, ``pid()`` and ``describe()`` are the same for every family.

The state class offers ``changes`` (a count of applied mutations), ``snapshot()`` and a
class method that rebuilds it from a snapshot; mutating methods take the ``request``
(``(client, seq)`` or None) and skip a request they applied before
(`patterns._requests.RequestLog`, inside the snapshot).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from patterns._checkpointer import Checkpointer
from patterns.checkpointing import CheckpointStore

__all__ = ["State", "StatefulActor"]

R = TypeVar("R")


class State(Protocol):
    """What `StatefulActor` needs of a state class."""

    changes: int

    def snapshot(self) -> Any:
        """A plain, picklable copy of the state."""
        ...


class StatefulActor:
    """An actor holding a `State`, checkpointed through a `Checkpointer`.

    Args:
        fresh: Builds the state when there is nothing to restore.
        restore: Rebuilds the state from a saved snapshot.
        store: Where checkpoints go (None: no checkpointing).
        key: The checkpoint key (None without a store).
        checkpoint_every: Save after every N applied changes.
        info: What ``describe()`` reports (at least ``{"kind": ...}``).
        legacy_keys: Keys an older release saved this actor's checkpoints under; the
            newest of them restores when ``key`` holds nothing, and is saved under
            ``key`` from then on.

    Examples:
        >>> class Tally:
        ...     def __init__(self, n=0):
        ...         self.n, self.changes = n, 0
        ...     def add(self, k):
        ...         self.n += k
        ...         self.changes += 1
        ...         return self.n
        ...     def snapshot(self):
        ...         return self.n
        >>> actor = StatefulActor(
        ...     fresh=Tally, restore=Tally, store=None, key=None, checkpoint_every=1,
        ...     info={"kind": "Tally"},
        ... )
        >>> actor._apply(actor._state.add, 2)
        2
        >>> actor.describe()["kind"], actor.checkpoint() is None
        ('Tally', True)
    """

    def __init__(
        self,
        *,
        fresh: Callable[[], Any],
        restore: Callable[[Any], Any],
        store: CheckpointStore | None,
        key: str | None,
        checkpoint_every: int,
        info: Mapping[str, Any],
        legacy_keys: Sequence[str] = (),
    ) -> None:
        self._checkpointer = Checkpointer(store, key or "", checkpoint_every)
        restored = self._checkpointer.restore(legacy_keys=legacy_keys)
        self._state: Any = restore(restored.state) if restored is not None else fresh()
        self._info = {**info, "key": key, "restored_version": self._checkpointer.version}

    def _apply(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run ``method(*args, **kwargs)`` on the state; save before replying if it changed it."""
        before = self._state.changes
        result = method(*args, **kwargs)
        if self._state.changes != before:
            self._checkpointer.changed(self._state.snapshot)
        return result

    def _describe(self) -> dict[str, Any]:
        """Family-specific entries of ``describe()`` (override)."""
        return {}

    def checkpoint(self) -> int | None:
        """Save a checkpoint now; the version written (None without a store)."""
        return self._checkpointer.save(self._state.snapshot())

    def pid(self) -> int:
        """The process id of this actor's worker (for crash demos and fault tests)."""
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        """What this actor is (``kind``, ``key``, ...); `attach_named` checks it."""
        return {**self._info, **self._describe()}
