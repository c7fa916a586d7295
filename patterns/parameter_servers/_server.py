"""The parameter-server actors (one per shard) and the `ParameterServer` facade."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import check_actor_options, make_actor, rebuild, restartable_defaults
from patterns._checkpointer import Checkpointer, check_store_args, default_key
from patterns._checks import check_int, check_positive_float
from patterns._requests import RequestIds
from patterns.checkpointing import CheckpointStore
from patterns.parameter_servers._state import (
    Layout,
    Optimizer,
    Piece,
    ShardState,
    check_gradients,
    check_optimizer,
    check_params,
    check_staleness,
)

__all__ = ["ParameterServer"]


class _ShardActor:
    """One shard: a `ShardState` plus checkpointing. Restores itself in ``__init__``."""

    def __init__(
        self,
        pieces: dict[Piece, np.ndarray],
        optimizer: dict[str, Any],
        max_staleness: int | None,
        store: CheckpointStore | None,
        key: str | None,
        checkpoint_every: int,
        info: dict[str, Any],
    ) -> None:
        self._checkpointer = Checkpointer(store, key or "", checkpoint_every)
        restored = self._checkpointer.restore()
        if restored is not None:
            state = ShardState.from_snapshot(restored.state)
            if state.pieces.keys() != pieces.keys():
                msg = (
                    f"the checkpoint under {key!r} holds pieces {sorted(state.pieces)}, "
                    f"not this shard's {sorted(pieces)}: use another key for other parameters"
                )
                raise ValueError(msg)
        else:
            opt = Optimizer(optimizer["name"], optimizer["learning_rate"], optimizer["options"])
            state = ShardState(pieces, opt, max_staleness)
        self._state = state
        self._info = {**info, "key": key, "restored_version": self._checkpointer.version}

    # The lead shard (index 0) is called with ``version`` and decides; the others are
    # called with ``decision``, the lead's reply for the same push, which Ray resolves
    # before running them: every shard applies exactly the pushes the lead applied.
    def push(
        self,
        pieces: dict[Piece, np.ndarray],
        version: int | None,
        decision: bool | None,
        client: int | None = None,
        seq: int | None = None,
    ) -> bool:
        request = None if client is None or seq is None else (client, seq)
        before = self._state.changes
        applied = self._state.push(pieces, version=version, decision=decision, request=request)
        if self._state.changes != before:
            # Saved before the reply leaves: an acknowledged push is in the store.
            self._checkpointer.changed(self._state.snapshot)
        return applied

    def pull(self) -> tuple[int, dict[Piece, np.ndarray]]:
        # The arrays are serialised into the reply before the next call can run.
        return self._state.pull()

    def version(self) -> int:
        return self._state.version

    def stats(self) -> dict[str, Any]:
        state = self._state
        return {
            "version": state.version,
            "dropped_stale": state.dropped_stale,
            "bytes": state.nbytes,
            "elements": sum(values.size for values in state.pieces.values()),
            "optimizer": state.optimizer.name,
            "learning_rate": state.optimizer.learning_rate,
            "max_staleness": state.max_staleness,
            "restored_version": self._info["restored_version"],
            "checkpoint_version": self._checkpointer.version,
        }

    def checkpoint(self) -> int | None:
        return self._checkpointer.save(self._state.snapshot())

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return {**self._info, "version": self._state.version}


_RemoteShardActor = ray.remote(_ShardActor)


@ray.remote(num_cpus=0)
def _first_when_all(*results: bool) -> bool:
    return results[0]


@ray.remote(num_cpus=0)
def _assemble(layout: Layout, *parts: tuple[int, dict[Piece, np.ndarray]]) -> dict[str, np.ndarray]:
    return layout.assemble([pieces for _, pieces in parts])


def _check_timeout(timeout: object) -> float | None:
    return None if timeout is None else check_positive_float("timeout", timeout)


def _shard_name(name: str, index: int) -> str:
    return f"{name}/shard-{index}"


class ParameterServer:
    """Model parameters held by Ray actors, sharded, updated by pushed gradients.

    Workers ``pull()`` the current parameters, compute gradients on their data and
    ``push()`` them; each push is one optimizer step (``"sgd"``, ``"momentum"`` or
    ``"adam"``), applied to every shard. ``version()`` counts the pushes applied.

    **Sharding.** With ``shards=k`` the parameters are spread over ``k`` actors,
    balanced by size: arrays larger than a fair share are cut into row ranges, so one
    big matrix still shards. A pull gathers every shard's pieces; a push sends each
    shard its pieces. The optimizers are elementwise and run in the parameters' dtype,
    so any number of shards gives bit-identical parameters.

    **Staleness.** With ``max_staleness=s``, a push whose ``version`` (the `version()`
    its gradients were computed on) is more than ``s`` versions old is dropped: nothing
    is applied and ``push`` returns False. Shard 0 takes that decision, once per push,
    and the other shards receive its answer, so every shard applies the same pushes.

    **Exactly-once.** With a ``store``, every push that returned is applied exactly once
    even if a shard's process is killed: each push carries a request id per shard, each
    shard remembers the ids it applied, checkpoints before replying
    (``checkpoint_every=1``), is created with ``max_restarts=-1, max_task_retries=-1``
    and restores its newest checkpoint when Ray restarts it. Shard ``i`` checkpoints
    under ``f"{key}/shard-{i}-of-{shards}"``.

    Args:
        params: Name -> numpy float array (ints are converted to float64): the initial
            parameters. Ignored by shards that find a checkpoint under their key.
        shards: How many actors hold the parameters (1 to the number of elements).
        optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        learning_rate: The step size, > 0.
        max_staleness: Drop pushes more than this many versions old (None: never).
        store: Where shards checkpoint (see `patterns.checkpointing`).
        key: Checkpoint key prefix; defaults to the actor name, else a random key.
        checkpoint_every: Checkpoint after every N pushes. N > 1 is cheaper, but a
            killed shard then loses up to N - 1 acknowledged pushes (its own pieces
            only: the shards may end at different versions).
        actor_options: Options for every shard actor (``num_cpus``, ``resources``,
            ``name`` (shard ``i`` is named ``f"{name}/shard-{i}"``), ...).
        optimizer_options: ``{"momentum": 0.9}`` for momentum; ``{"beta1": 0.9,
            "beta2": 0.999, "epsilon": 1e-8}`` for adam (these are the defaults).

    Raises:
        TypeError: If an argument has the wrong type (``params`` not a dict of numeric
            arrays, ``store`` not a CheckpointStore, ...).
        ValueError: If ``params`` is empty, ``shards < 1`` or more than the elements,
            ``learning_rate <= 0``, ``max_staleness < 0``, ``optimizer`` is unknown,
            ``key`` or ``checkpoint_every`` is given without a store, or the actor
            options are inconsistent.

    Examples:
        >>> import numpy as np
        >>> server = ParameterServer({"w": np.zeros(3)}, shards=2, learning_rate=0.5)
        >>> server.push({"w": np.array([1.0, 2.0, 4.0])})
        True
        >>> server.pull()["w"].tolist()
        [-0.5, -1.0, -2.0]
        >>> server.version()
        1
        >>> server.kill()
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        shards: int = 1,
        optimizer: str = "sgd",
        learning_rate: float = 0.01,
        max_staleness: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        actor_options: Mapping[str, Any] | None = None,
        optimizer_options: Mapping[str, float] | None = None,
    ) -> None:
        arrays = check_params(params)
        shards = check_int("shards", shards, minimum=1)
        name, rate, options = check_optimizer(optimizer, learning_rate, optimizer_options)
        max_staleness = check_staleness("max_staleness", max_staleness)
        store, checkpoint_every = check_store_args(
            store, key, checkpoint_every, what="parameter server"
        )
        defaults = {"scheduling_strategy": "SPREAD", **restartable_defaults(store)}
        actor_opts = check_actor_options(actor_options, defaults=defaults)
        if actor_opts.get("get_if_exists"):
            msg = (
                "'actor_options' sets get_if_exists=True: a ParameterServer always creates "
                "its shards"
            )
            raise ValueError(msg)
        layout = Layout.plan(arrays, shards)  # refuses more shards than elements
        key = default_key(key, actor_opts, "parameter-server") if store is not None else None
        config = {"name": name, "learning_rate": rate, "options": options}
        parts = layout.split(arrays)
        actors = []
        for index, part in enumerate(parts):
            shard_options = dict(actor_opts)
            if actor_opts.get("name"):
                shard_options["name"] = _shard_name(actor_opts["name"], index)
            shard_key = f"{key}/shard-{index}-of-{shards}" if key is not None else None
            info = {"kind": "ParameterServer", "shards": shards, "index": index}
            args = (part, config, max_staleness, store, shard_key, checkpoint_every, info)
            actors.append(make_actor(_RemoteShardActor, shard_options, *args))
        self._setup(actors, layout, key)

    def _setup(self, actors: list[ActorHandle[Any]], layout: Layout, key: str | None) -> None:
        self._actors = list(actors)
        self._layout = layout
        self._key = key
        self._exactly_once = key is not None  # request ids only matter with a store
        # One sequence per shard: each shard's request log then sees no gaps.
        self._requests = RequestIds(streams=len(self._actors))
        self._push: list[Any] = [actor.push for actor in self._actors]

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) numbers its pushes with a fresh client id.
        return (rebuild, (ParameterServer, self._actors, self._layout, self._key))

    def __repr__(self) -> str:
        names = ", ".join(f"{n}{list(s)}" for n, s in self._layout.shapes.items())
        return f"ParameterServer({names}, shards={len(self._actors)})"

    @property
    def shards(self) -> int:
        """The number of shard actors."""
        return len(self._actors)

    @property
    def actors(self) -> list[ActorHandle[Any]]:
        """The shard actor handles, shard 0 (the lead) first."""
        return list(self._actors)

    @property
    def key(self) -> str | None:
        """The checkpoint key prefix (None without a store)."""
        return self._key

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter array."""
        return dict(self._layout.shapes)

    @property
    def layout(self) -> list[list[tuple[str, int, int]]]:
        """Per shard, the ``(name, start, stop)`` element ranges (C order) it holds."""
        return [[tuple(p) for p in shard] for shard in self._layout.shards]  # type: ignore[misc]

    # --- pushes ---------------------------------------------------------------------------

    def _send(self, gradients: Mapping[str, Any], version: int | None) -> list[ObjectRef[bool]]:
        if version is not None:
            version = check_int("version", version, minimum=0)
        checked = check_gradients(gradients, self._layout.shapes, self._layout.dtypes)
        parts = self._layout.split(checked)
        # Nothing is drawn or sent before every check passed.
        ids = [
            self._requests.next(i) if self._exactly_once else (None, None)
            for i in range(len(parts))
        ]
        lead: ObjectRef[bool] = self._push[0].remote(parts[0], version, None, *ids[0])
        follow = [self._push[i].remote(parts[i], None, lead, *ids[i]) for i in range(1, len(parts))]
        return [lead, *follow]

    def push(
        self,
        gradients: Mapping[str, Any],
        *,
        version: int | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Apply one optimizer step with ``gradients`` on every shard; True if applied.

        When this returns, the push is acknowledged: with a store it is in every
        shard's checkpoint (``checkpoint_every=1``) and is never lost or applied twice.

        Args:
            gradients: Name -> array, for exactly the server's arrays, in their shapes;
                numeric and finite (cast to the parameters' dtype).
            version: The `version()` the gradients were computed on. With
                ``max_staleness=s``, a push more than ``s`` versions old is dropped.
                None: never dropped.
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            True if applied, False if dropped as stale (nothing changed).

        Raises:
            TypeError: If ``gradients`` is not a dict of numeric arrays, or ``version``
                not an int.
            ValueError: If a key is unknown or missing, a shape differs, a value is nan
                or inf, or ``version < 0``. Nothing is sent.
            ray.exceptions.GetTimeoutError: If ``timeout`` passed (the push may still
                be applied).

        Examples:
            >>> import numpy as np
            >>> server = ParameterServer({"w": np.zeros(2)}, max_staleness=0)
            >>> server.push({"w": np.ones(2)}, version=0)
            True
            >>> server.push({"w": np.ones(2)}, version=0)  # computed on version 0, now 1
            False
            >>> server.kill()
        """
        timeout = _check_timeout(timeout)
        refs = self._send(gradients, version)
        return bool(ray.get(refs, timeout=timeout)[0])

    def push_async(
        self, gradients: Mapping[str, Any], *, version: int | None = None
    ) -> ObjectRef[bool]:
        """Send a push and return at once (arguments as in `push`, checked here).

        Returns:
            An ObjectRef to True (applied) or False (dropped); it resolves once every
            shard has taken the push: then it is acknowledged.
        """
        refs = self._send(gradients, version)
        return refs[0] if len(refs) == 1 else _first_when_all.remote(*refs)

    # --- reads ----------------------------------------------------------------------------

    def _pull_with_version(self, timeout: float | None = None) -> tuple[dict[str, np.ndarray], int]:
        """The parameters and shard 0's version when it answered (for `train`)."""
        parts: list[tuple[int, dict[Piece, np.ndarray]]] = ray.get(
            [actor.pull.remote() for actor in self._actors], timeout=timeout
        )
        return self._layout.assemble([pieces for _, pieces in parts]), parts[0][0]

    def pull(self, *, timeout: float | None = None) -> dict[str, np.ndarray]:
        """Return the current parameters, as fresh arrays the caller may modify.

        Every shard answers the pull after the pushes this facade sent before it (Ray
        runs one caller's calls to an actor in order), so a pull sees your own pushes.

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            Name -> array, in the shapes and dtypes of the initial parameters.
        """
        return self._pull_with_version(_check_timeout(timeout))[0]

    def pull_async(self) -> ObjectRef[dict[str, np.ndarray]]:
        """Ask for the parameters and return at once.

        Returns:
            An ObjectRef to name -> array. Like anything read from Ray's object store,
            the arrays may be read-only: copy one before changing it in place.
        """
        ref: ObjectRef[dict[str, np.ndarray]] = _assemble.remote(
            self._layout, *[actor.pull.remote() for actor in self._actors]
        )
        return ref

    def version(self, *, timeout: float | None = None) -> int:
        """Return how many whole pushes are applied: the lowest version over the shards.

        Args:
            timeout: Seconds to wait (None waits forever).
        """
        timeout = _check_timeout(timeout)
        return min(ray.get([actor.version.remote() for actor in self._actors], timeout=timeout))

    def stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Return counters and sizes: applied, dropped_stale, shards, bytes per shard, ...

        Keys: ``applied`` (= `version()`), ``dropped_stale`` (pushes refused as too
        old), ``shards``, ``bytes_per_shard`` and ``elements_per_shard`` (parameters
        only), ``versions`` (per shard), ``optimizer``, ``learning_rate``,
        ``max_staleness``, ``restored_versions`` (the checkpoint each shard restored
        when it last started: 0 if none) and ``checkpoint_versions``.

        Args:
            timeout: Seconds to wait (None waits forever).

        Examples:
            >>> import numpy as np
            >>> server = ParameterServer({"W": np.zeros((4, 2)), "b": np.zeros(2)}, shards=2)
            >>> stats = server.stats()
            >>> stats["applied"], stats["dropped_stale"], stats["bytes_per_shard"]
            (0, 0, [48, 32])
            >>> server.kill()
        """
        timeout = _check_timeout(timeout)
        per_shard: list[dict[str, Any]] = ray.get(
            [actor.stats.remote() for actor in self._actors], timeout=timeout
        )
        lead = per_shard[0]
        versions = [s["version"] for s in per_shard]
        return {
            "applied": min(versions),
            "dropped_stale": lead["dropped_stale"],
            "shards": len(per_shard),
            "bytes_per_shard": [s["bytes"] for s in per_shard],
            "elements_per_shard": [s["elements"] for s in per_shard],
            "versions": versions,
            "optimizer": lead["optimizer"],
            "learning_rate": lead["learning_rate"],
            "max_staleness": lead["max_staleness"],
            "restored_versions": [s["restored_version"] for s in per_shard],
            "checkpoint_versions": [s["checkpoint_version"] for s in per_shard],
        }

    def checkpoint(self, *, timeout: float | None = None) -> list[int | None]:
        """Write a checkpoint of every shard now (before a planned stop, say).

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            The version written per shard (None entries without a store).
        """
        timeout = _check_timeout(timeout)
        return ray.get([actor.checkpoint.remote() for actor in self._actors], timeout=timeout)

    def pids(self, *, timeout: float | None = None) -> list[int]:
        """Return the process id of each shard actor, shard 0 first (for fault demos).

        Args:
            timeout: Seconds to wait (None waits forever).
        """
        timeout = _check_timeout(timeout)
        return ray.get([actor.pid.remote() for actor in self._actors], timeout=timeout)

    def kill(self) -> None:
        """Terminate every shard actor for good (checkpoints stay in the store)."""
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
