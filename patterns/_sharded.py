"""The multi-shard facade: one state spread over ``n`` actors (`ShardedCounter`, `ParameterServer`).

What every sharded facade does the same way, on top of `ActorFacade`:

- shard ``i`` of ``n`` is the member ``shard-{i}-of-{n}``: its actor is named
  ``{name}/shard-{i}-of-{n}`` when the facade has a ``name``, and it checkpoints under
  ``{key}/shard-{i}-of-{n}`` (`patterns._checkpointer.member_key`). Counting the shards
  in the member name keeps a checkpoint of 4 shards from restoring into 2;
- mutating calls are numbered per shard (`RequestIds` with one stream per shard), so
  each shard's request log sees no gaps;
- ``attach(name)`` finds shard 0 among the named actors, reads ``n`` from its name and
  checks every shard's ``describe()``;
- ``checkpoint()``, ``pids()``, ``stats()`` and ``close()`` fan out to every shard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ray import ObjectRef
from ray.actor import ActorClass, ActorHandle

from patterns._actors import actor_info, make_actor
from patterns._calls import DEFAULT
from patterns._checkpointer import member_key
from patterns._facade import ActorFacade, gather
from patterns._requests import RequestIds

__all__ = ["ShardedFacade", "live_shard_count", "shard_member"]


def shard_member(index: int, n_shards: int) -> str:
    """The member name of shard ``index`` of ``n_shards``: names and keys use it.

    Examples:
        >>> shard_member(0, 4)
        'shard-0-of-4'
    """
    return f"shard-{index}-of-{n_shards}"


def _shard_pattern(name: str) -> re.Pattern[str]:
    return re.compile(re.escape(name) + r"/shard-0-of-(\d+)")


def live_shard_count(name: str, namespace: str | None) -> int | None:
    """How many shards the live sharded facade ``name`` has (None: there is none).

    For a facade that joins named shards (``get_if_exists``): its shard names count the
    shards, so asking for another count would silently start a second set of actors.
    ``namespace`` None means the job's, where such a facade creates its shards.
    """
    import ray

    space = namespace if namespace is not None else ray.get_runtime_context().namespace
    pattern = _shard_pattern(name)
    for entry in ray.util.list_named_actors(all_namespaces=True):
        match = pattern.fullmatch(entry["name"])
        if match and entry["namespace"] == space:
            return int(match.group(1))
    return None


class ShardedFacade(ActorFacade):
    """Base of the facades whose state is spread over shard actors.

    A subclass starts its shards with `_start_shards`, sets itself up with
    `_setup_shards` (from ``__init__`` and from its ``_setup``), numbers its mutating
    calls with `_ids`, and finds the shards of a named facade with `_find_shards`.
    """

    _shards: list[ActorHandle[Any]]
    _key: str | None
    _requests: RequestIds
    _exactly_once: bool

    # ---------------------------------------------------------------- start / attach
    @staticmethod
    def _start_shards(
        remote_cls: ActorClass[Any],
        options: Mapping[str, Any],
        n_shards: int,
        shard_args: Callable[[int, str | None], tuple[Any, ...]],
        *,
        name: str | None,
        namespace: str | None,
        key: str | None,
    ) -> list[ActorHandle[Any]]:
        """Create ``n_shards`` actors of ``remote_cls``.

        Args:
            remote_cls: The shard's Ray actor class.
            options: Checked actor options (without ``name``/``namespace``).
            n_shards: How many shards.
            shard_args: ``shard_args(index, shard_key)``: the constructor arguments of
                shard ``index`` (``shard_key`` is None without a store).
            name: The facade's name (shards are named ``{name}/shard-{i}-of-{n}``).
            namespace: The Ray namespace of named shards.
            key: The checkpoint key prefix (None without a store).
        """
        shards = []
        for index in range(n_shards):
            member = shard_member(index, n_shards)
            shard_options = dict(options)
            if name is not None:
                shard_options["name"] = f"{name}/{member}"
                if namespace is not None:
                    shard_options["namespace"] = namespace
            shard_key = member_key(key, member) if key is not None else None
            shards.append(make_actor(remote_cls, shard_options, *shard_args(index, shard_key)))
        return shards

    @staticmethod
    def _find_shards(
        name: str, namespace: str | None, *, kind: str, timeout: float | None
    ) -> tuple[list[ActorHandle[Any]], list[dict[str, Any]]]:
        """The live shards of the sharded facade ``name`` and their ``describe()``.

        Raises:
            ValueError: No live shards of that name (or some are missing).
            TypeError: The actors are not shards of a ``kind``.
        """
        import ray

        pattern = _shard_pattern(name)
        where = f" in namespace {namespace!r}" if namespace is not None else ""
        found = [
            entry
            for entry in ray.util.list_named_actors(all_namespaces=True)
            if pattern.fullmatch(entry["name"])
            and (namespace is None or entry["namespace"] == namespace)
        ]
        if not found:
            msg = f"no live {kind} named {name!r}{where} (no actor {name}/shard-0-of-N)"
            raise ValueError(msg)
        match = pattern.fullmatch(found[0]["name"])
        assert match is not None
        n_shards = int(match.group(1))
        space = namespace if namespace is not None else found[0]["namespace"]
        shards = []
        for index in range(n_shards):
            shard_name = f"{name}/{shard_member(index, n_shards)}"
            try:
                shards.append(ray.get_actor(shard_name, namespace=space))
            except ValueError as exc:
                msg = f"the {kind} {name!r}{where} lacks its shard {shard_name!r}"
                raise ValueError(msg) from exc
        infos = [actor_info(shard, name, what=kind, timeout=timeout) for shard in shards]
        for info in infos:
            if info.get("kind") != kind:
                msg = f"the actors named {name}/shard-* are a {info.get('kind')}, not a {kind}"
                raise TypeError(msg)
        return shards, infos

    def _setup_shards(
        self,
        shards: list[ActorHandle[Any]],
        *,
        key: str | None,
        name: str | None,
        namespace: str | None,
        owned: bool,
        timeout: float | None,
    ) -> None:
        self._shards = list(shards)
        self._key = key
        self._exactly_once = key is not None  # request ids only matter with a store
        # One sequence per shard: each shard's request log then sees no gaps.
        self._requests = RequestIds(streams=len(self._shards))
        self._init_facade(shards, name=name, namespace=namespace, owned=owned, timeout=timeout)

    # ---------------------------------------------------------------- calls
    def _ids(self, index: int) -> tuple[int, int] | tuple[None, None]:
        """The next request id for shard ``index`` ((None, None) without a store)."""
        return self._requests.next(index) if self._exactly_once else (None, None)

    @property
    def n_shards(self) -> int:
        """The number of shard actors."""
        return len(self._shards)

    @property
    def actors(self) -> list[ActorHandle[Any]]:
        """The shard actor handles, shard 0 first."""
        return list(self._shards)

    @property
    def key(self) -> str | None:
        """The checkpoint key prefix (None without a store)."""
        return self._key

    def checkpoint_async(self) -> ObjectRef[list[int | None]]:
        """Ask every shard to write a checkpoint now; an ObjectRef to the versions."""
        self._check_open("checkpoint_async")
        ref: ObjectRef[list[int | None]] = gather.remote(
            *[shard.checkpoint.remote() for shard in self._shards]
        )
        return ref

    def checkpoint(self, *, timeout: object = DEFAULT) -> list[int | None]:
        """Write a checkpoint of every shard now (before a planned stop, say).

        Args:
            timeout: Seconds to wait (default: the facade's timeout).

        Returns:
            The version written per shard (None entries without a store).
        """
        refs = [shard.checkpoint.remote() for shard in self._shards]
        versions: list[int | None] = self._get(refs, timeout=timeout, method="checkpoint")
        return versions
