"""Checkpointing plumbing shared by the stateful patterns.

- Facade side: `check_store_args` validates ``store``, ``key`` and
  ``checkpoint_every`` together, and `default_key` picks the checkpoint key (the
  actor's name when it has one, so a re-created named actor resumes).
- Actor side: a `Checkpointer` restores the newest snapshot once, in the actor's
  ``__init__``, and saves every ``every`` applied changes. Ray re-runs ``__init__``
  with the same arguments when it restarts an actor (``max_restarts``), so a pattern
  built this way needs no recovery code of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from patterns._checks import check_int, check_name, describe
from patterns.checkpointing import Checkpoint, CheckpointStore

__all__ = ["Checkpointer", "check_store", "check_store_args", "default_key", "member_key"]


def check_store(store: object) -> CheckpointStore | None:
    """Validate a ``store`` argument for a facade (None means no checkpointing).

    Examples:
        >>> check_store(None) is None
        True
    """
    if store is None:
        return None
    if isinstance(store, str | os.PathLike):
        msg = (
            f"'store' must be a CheckpointStore, got the path {str(store)!r}: "
            f"wrap it, e.g. store=DirectoryStore({str(store)!r})"
        )
        raise TypeError(msg)
    if not isinstance(store, CheckpointStore):
        msg = f"'store' must be a CheckpointStore (with save and load), got {describe(store)}"
        raise TypeError(msg)
    return store


def check_store_args(
    store: object, key: object, checkpoint_every: object, *, what: str
) -> tuple[CheckpointStore | None, int]:
    """Validate ``store``, ``key`` and ``checkpoint_every``; return the store and the interval.

    ``key`` and ``checkpoint_every`` mean nothing without a store, and passing them
    anyway is almost always a forgotten ``store=``: refused, naming ``what`` (``"counter"``).

    Examples:
        >>> check_store_args(None, None, 1, what="counter")
        (None, 1)
        >>> check_store_args(None, "hits", 1, what="counter")
        Traceback (most recent call last):
        ...
        ValueError: 'key' only applies to a counter with a 'store', got store=None
    """
    checked = check_store(store)
    every = check_int("checkpoint_every", checkpoint_every, minimum=1)
    if key is not None:
        check_name("key", key)
    if checked is None and (key is not None or every != 1):
        given = "'key'" if key is not None else "'checkpoint_every'"
        msg = f"{given} only applies to a {what} with a 'store', got store=None"
        raise ValueError(msg)
    return checked, every


def default_key(key: object, options: Mapping[str, Any], prefix: str) -> str:
    """The checkpoint key: ``key`` if given, else the actor's name, else a fresh random one.

    Examples:
        >>> default_key(None, {"name": "hits", "namespace": "shop"}, "counter")
        'shop/hits'
        >>> default_key(None, {}, "counter").startswith("counter-")
        True
    """
    if key is not None:
        return check_name("key", key)
    if options.get("name"):
        namespace = options.get("namespace")
        return f"{namespace}/{options['name']}" if namespace else str(options["name"])
    return f"{prefix}-{uuid.uuid4().hex}"


def member_key(key: str, member: str) -> str:
    """The checkpoint key of one actor of a multi-actor facade: ``{key}/{member}``.

    The one layout of every family: a facade's ``key`` is a prefix, and each of its
    actors saves under it with the member's name: ``shard-{i}-of-{n}`` for shards,
    ``replica-{i}-of-{n}`` for replicas, a child's name for a supervisor's children.
    Counting the members in the name keeps a 4-shard checkpoint from restoring into a
    2-shard facade by mistake.

    Examples:
        >>> member_key("hits", "shard-0-of-4")
        'hits/shard-0-of-4'
    """
    return f"{key}/{member}"


class Checkpointer:
    """Actor-side helper: restore once at start, then save every ``every`` changes.

    Without a store every method is a cheap no-op, so an actor uses one code path
    with or without checkpointing.

    Examples:
        >>> import tempfile
        >>> from patterns.checkpointing import DirectoryStore
        >>> checkpointer = Checkpointer(DirectoryStore(tempfile.mkdtemp()), "k", every=2)
        >>> checkpointer.restore() is None
        True
        >>> checkpointer.changed(lambda: {"n": 1})  # one unsaved change: not yet
        >>> checkpointer.changed(lambda: {"n": 2})  # two: saved as version 1
        >>> Checkpointer(checkpointer.store, "k", every=1).restore()
        Checkpoint(version=1, state={'n': 2})
    """

    def __init__(self, store: CheckpointStore | None, key: str, every: int) -> None:
        self.store = store
        self.key = key
        self.every = every
        self.version = 0
        self._unsaved = 0

    @property
    def enabled(self) -> bool:
        """True when there is a store to save to."""
        return self.store is not None

    def restore(self, legacy_keys: Sequence[str] = ()) -> Checkpoint | None:
        """Load the newest snapshot (None without a store or without one saved).

        Args:
            legacy_keys: Keys an older layout saved the same state under, newest layout
                first. When ``key`` holds nothing, the first of them that holds a
                snapshot restores, and that snapshot is saved under ``key`` at once (the
                old key is left as it was), so later saves continue from it.
        """
        if self.store is None:
            return None
        found = self.store.load(self.key)
        if found is None:
            for old in legacy_keys:
                found = self.store.load(old)
                if found is not None:
                    self.store.save(self.key, found.state, found.version)
                    break
        if found is not None:
            self.version = found.version
        return found

    def changed(self, snapshot: Callable[[], Any], count: int = 1) -> None:
        """Record ``count`` applied changes; save when ``every`` of them are unsaved."""
        if self.store is None:
            return
        self._unsaved += count
        if self._unsaved >= self.every:
            self.save(snapshot())

    def save(self, state: Any) -> int | None:
        """Save ``state`` now as the next version; return it (None without a store)."""
        if self.store is None:
            return None
        self.store.save(self.key, state, self.version + 1)
        self.version += 1
        self._unsaved = 0
        return self.version
