"""The parameter-server shard actor (a `StatefulActor`) and the `ParameterServer` facade."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import check_actor_options, check_naming, rebuild, restartable_defaults
from patterns._calls import DEFAULT, check_timeout
from patterns._checkpointer import check_store_args, default_key
from patterns._checks import check_bool, check_int
from patterns._facade import check_facade_timeout
from patterns._requests import as_request
from patterns._sharded import ShardedFacade
from patterns._stateful import StatefulActor
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

KIND = "ParameterServer"


class _ShardActor(StatefulActor):
    """One shard: a `ShardState`, restored from its checkpoint when there is one."""

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
        def fresh() -> ShardState:
            opt = Optimizer(optimizer["name"], optimizer["learning_rate"], optimizer["options"])
            return ShardState(pieces, opt, max_staleness)

        def restore(snapshot: Any) -> ShardState:
            state = ShardState.from_snapshot(snapshot)
            if state.pieces.keys() != pieces.keys():
                msg = (
                    f"the checkpoint under {key!r} holds pieces {sorted(state.pieces)}, "
                    f"not this shard's {sorted(pieces)}: use another key for other parameters"
                )
                raise ValueError(msg)
            return state

        super().__init__(
            fresh=fresh,
            restore=restore,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            info=info,
        )

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
        # Saved before the reply leaves (StatefulActor._apply): an acknowledged push is
        # in the store.
        applied: bool = self._apply(
            self._state.push,
            pieces,
            version=version,
            decision=decision,
            request=as_request(client, seq),
        )
        return applied

    def pull(self) -> tuple[int, dict[Piece, np.ndarray]]:
        # The arrays are serialised into the reply before the next call can run.
        result: tuple[int, dict[Piece, np.ndarray]] = self._state.pull()
        return result

    def version(self) -> int:
        return int(self._state.version)

    def stats(self) -> dict[str, Any]:
        state: ShardState = self._state
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

    def _describe(self) -> dict[str, Any]:
        return {"version": self._state.version}


_RemoteShardActor = ray.remote(_ShardActor)


@ray.remote(num_cpus=0)
def _first_when_all(*results: bool) -> bool:
    return results[0]


@ray.remote(num_cpus=0)
def _assemble(layout: Layout, *parts: tuple[int, dict[Piece, np.ndarray]]) -> dict[str, np.ndarray]:
    return layout.assemble([pieces for _, pieces in parts])


@ray.remote(num_cpus=0)
def _lowest(*versions: int) -> int:
    return min(versions)


@ray.remote(num_cpus=0)
def _server_stats(*per_shard: dict[str, Any]) -> dict[str, Any]:
    return _merge_stats(list(per_shard))


def _merge_stats(per_shard: list[dict[str, Any]]) -> dict[str, Any]:
    lead = per_shard[0]
    versions = [s["version"] for s in per_shard]
    return {
        "applied": min(versions),
        "dropped_stale": lead["dropped_stale"],
        "n_shards": len(per_shard),
        "bytes_per_shard": [s["bytes"] for s in per_shard],
        "elements_per_shard": [s["elements"] for s in per_shard],
        "versions": versions,
        "optimizer": lead["optimizer"],
        "learning_rate": lead["learning_rate"],
        "max_staleness": lead["max_staleness"],
        "restored_versions": [s["restored_version"] for s in per_shard],
        "checkpoint_versions": [s["checkpoint_version"] for s in per_shard],
    }


class ParameterServer(ShardedFacade):
    """Model parameters held by Ray actors, sharded, updated by pushed gradients.

    Workers ``pull()`` the current parameters, compute gradients on their data and
    ``push()`` them; each push is one optimizer step (``"sgd"``, ``"momentum"`` or
    ``"adam"``), applied to every shard. ``version()`` counts the pushes applied.

    **Sharding.** With ``n_shards=k`` the parameters are spread over ``k`` actors,
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
    (``checkpoint_every=1``), is created with ``max_restarts=-1`` and a few task retries
    (`patterns._calls.MAX_TASK_RETRIES`), and restores its newest checkpoint when Ray
    restarts it. Shard ``i`` of ``n`` checkpoints under ``f"{key}/shard-{i}-of-{n}"``.
    A push that crashes its shard on every attempt (a store whose ``save`` kills the
    process, say) fails with `patterns.errors.ActorLostError` after those retries, and
    the restarted shards serve the next calls.

    **Lifecycle.** ``close()`` (or leaving a ``with`` block) stops the shards and waits
    until Ray reports them dead; checkpoints stay in the store. A server from `attach`
    or unpickled in a task releases the shards instead (they keep running). ``kill()``
    crashes the shards as a SIGKILL would (Ray restarts them when they have a store).

    Args:
        params: Name -> numpy float array (ints are converted to float64): the initial
            parameters, the server's defining argument. Ignored by shards that find a
            checkpoint under their key.
        n_shards: How many actors hold the parameters (1 to the number of elements).
        optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        learning_rate: The step size, > 0.
        max_staleness: Drop pushes more than this many versions old (None: never).
        store: Where shards checkpoint (see `patterns.checkpointing`).
        key: Checkpoint key prefix; defaults to the name (``namespace/name`` with a
            namespace), else a random key.
        checkpoint_every: Checkpoint after every N pushes. N > 1 is cheaper, but a
            killed shard then loses up to N - 1 acknowledged pushes (its own pieces
            only: the shards may end at different versions).
        name: Names the shard actors ``f"{name}/shard-{i}-of-{n}"``, so another
            process can `attach` to the server.
        namespace: The Ray namespace of the named shards (None: the job's).
        actor_options: Options for every shard actor (``num_cpus``, ``resources``,
            ``max_task_retries``, ...; not ``name``/``namespace``, which are arguments).
        optimizer_options: ``{"momentum": 0.9}`` for momentum; ``{"beta1": 0.9,
            "beta2": 0.999, "epsilon": 1e-8}`` for adam (these are the defaults).
        timeout: Seconds each call waits by default (`patterns._calls.DEFAULT_TIMEOUT_S`
            unless given; None: no bound).

    Raises:
        TypeError: If an argument has the wrong type (``params`` not a dict of numeric
            arrays, ``store`` not a CheckpointStore, ...).
        ValueError: If ``params`` is empty, ``n_shards < 1`` or more than the elements,
            ``learning_rate <= 0``, ``max_staleness < 0``, ``optimizer`` is unknown,
            ``key`` or ``checkpoint_every`` is given without a store, or the actor
            options are inconsistent.

    Examples:
        >>> import numpy as np
        >>> with ParameterServer({"w": np.zeros(3)}, n_shards=2, learning_rate=0.5) as server:
        ...     server.push({"w": np.array([1.0, 2.0, 4.0])})
        ...     server.pull()["w"].tolist(), server.version()
        True
        ([-0.5, -1.0, -2.0], 1)
    """

    _layout: Layout

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        n_shards: int = 1,
        optimizer: str = "sgd",
        learning_rate: float = 0.01,
        max_staleness: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        name: str | None = None,
        namespace: str | None = None,
        actor_options: Mapping[str, Any] | None = None,
        optimizer_options: Mapping[str, float] | None = None,
        timeout: Any = DEFAULT,
    ) -> None:
        arrays = check_params(params)
        n_shards = check_int("n_shards", n_shards, minimum=1)
        opt_name, rate, options = check_optimizer(optimizer, learning_rate, optimizer_options)
        max_staleness = check_staleness("max_staleness", max_staleness)
        store, checkpoint_every = check_store_args(
            store, key, checkpoint_every, what="parameter server"
        )
        if isinstance(actor_options, Mapping) and actor_options.get("get_if_exists"):
            msg = (
                "'actor_options' sets get_if_exists=True: a ParameterServer always creates "
                "its shards (use ParameterServer.attach(name) to reach running ones)"
            )
            raise ValueError(msg)
        defaults = {"scheduling_strategy": "SPREAD", **restartable_defaults(store)}
        actor_opts = check_actor_options(actor_options, defaults=defaults)
        name, namespace = check_naming(name, namespace, actor_opts, facade=KIND)
        seconds = check_facade_timeout(timeout)
        layout = Layout.plan(arrays, n_shards)  # refuses more shards than elements
        naming = {"name": name, "namespace": namespace} if name is not None else {}
        key = default_key(key, naming, "parameter-server") if store is not None else None
        config = {"name": opt_name, "learning_rate": rate, "options": options}
        parts = layout.split(arrays)

        def shard_args(index: int, shard_key: str | None) -> tuple[Any, ...]:
            info = {"kind": KIND, "n_shards": n_shards, "index": index}
            if index == 0:  # what attach needs to split pushes and assemble pulls
                info |= {"layout": layout, "server_key": key}
            return (parts[index], config, max_staleness, store, shard_key, checkpoint_every, info)

        shards = self._start_shards(
            _RemoteShardActor,
            actor_opts,
            n_shards,
            shard_args,
            name=name,
            namespace=namespace,
            key=key,
        )
        self._setup(shards, layout, key, name, namespace, seconds, True)

    def _setup(
        self,
        shards: list[ActorHandle[Any]],
        layout: Layout,
        key: str | None,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
        owned: bool,
    ) -> None:
        self._layout = layout
        self._push: list[Any] = [shard.push for shard in shards]
        self._setup_shards(
            shards, key=key, name=name, namespace=namespace, owned=owned, timeout=timeout
        )

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Any = DEFAULT,
    ) -> ParameterServer:
        """A facade for the running server ``name`` (its shards ``name/shard-{i}-of-{n}``).

        The facade releases the shards on ``close()`` (they keep running) unless
        ``own=True``, which takes them over: its ``close()`` then stops them.

        Args:
            name: The ``name`` the server was created with.
            namespace: Its Ray namespace (None: search every namespace).
            own: Take the shards over (``close()`` stops them).
            timeout: Seconds each call of the new facade waits by default.

        Raises:
            ValueError: No live server of that name (or a shard is missing).
            TypeError: The actors of that name are not a ParameterServer's.
        """
        own = check_bool("own", own)
        seconds = check_facade_timeout(timeout)
        shards, infos = cls._find_shards(name, namespace, kind=KIND, timeout=seconds)
        lead = infos[0]
        return rebuild(
            cls,
            shards,
            lead["layout"],
            lead["server_key"],
            name,
            namespace,
            seconds,
            own,
            owned=own,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) numbers its pushes with a fresh client id
        # and does not own the shards: its close() releases them.
        state = (
            self._shards,
            self._layout,
            self._key,
            self.name,
            self.namespace,
            self.timeout,
            False,
        )
        return (rebuild, (ParameterServer, *state))

    def __repr__(self) -> str:
        arrays = ", ".join(f"{n}{list(s)}" for n, s in self._layout.shapes.items())
        named = f", name={self.name!r}" if self.name is not None else ""
        return f"ParameterServer({arrays}, n_shards={self.n_shards}{named})"

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
        ids = [self._ids(i) for i in range(len(parts))]
        lead: ObjectRef[bool] = self._push[0].remote(parts[0], version, None, *ids[0])
        follow = [self._push[i].remote(parts[i], None, lead, *ids[i]) for i in range(1, len(parts))]
        return [lead, *follow]

    def push(
        self,
        gradients: Mapping[str, Any],
        *,
        version: int | None = None,
        timeout: Any = DEFAULT,
    ) -> bool:
        """Apply one optimizer step with ``gradients`` on every shard; True if applied.

        When this returns, the push is acknowledged: with a store it is in every
        shard's checkpoint (``checkpoint_every=1``) and is never lost or applied twice.
        A push that raised was not acknowledged: it may have been applied on some
        shards, on all or on none.

        Args:
            gradients: Name -> array, for exactly the server's arrays, in their shapes;
                numeric and finite (cast to the parameters' dtype).
            version: The `version()` the gradients were computed on. With
                ``max_staleness=s``, a push more than ``s`` versions old is dropped.
                None: never dropped.
            timeout: Seconds to wait for the reply (default: the server's timeout).

        Returns:
            True if applied, False if dropped as stale (nothing changed).

        Raises:
            TypeError: If ``gradients`` is not a dict of numeric arrays, or ``version``
                not an int.
            ValueError: If a key is unknown or missing, a shape differs, a value is nan
                or inf, or ``version < 0``. Nothing is sent.
            patterns.errors.CallTimeoutError: No reply within ``timeout`` (the push may
                still be applied).
            patterns.errors.ActorLostError: A shard died under the push on every attempt.

        Examples:
            >>> import numpy as np
            >>> with ParameterServer({"w": np.zeros(2)}, max_staleness=0) as server:
            ...     server.push({"w": np.ones(2)}, version=0)
            ...     server.push({"w": np.ones(2)}, version=0)  # computed on version 0, now 1
            True
            False
        """
        check_timeout(timeout)
        self._check_open("push")
        refs = self._send(gradients, version)
        return bool(self._get(refs, timeout=timeout, method="push")[0])

    def push_async(
        self, gradients: Mapping[str, Any], *, version: int | None = None
    ) -> ObjectRef[bool]:
        """Send a push and return at once (arguments as in `push`, checked here).

        Returns:
            An ObjectRef to True (applied) or False (dropped); it resolves once every
            shard has taken the push: then it is acknowledged.
        """
        self._check_open("push_async")
        refs = self._send(gradients, version)
        return refs[0] if len(refs) == 1 else _first_when_all.remote(*refs)

    # --- reads ----------------------------------------------------------------------------

    def _pull_with_version(self, *, timeout: Any, method: str) -> tuple[dict[str, np.ndarray], int]:
        """The parameters and shard 0's version when it answered (for `train`)."""
        check_timeout(timeout)
        self._check_open(method)
        parts: list[tuple[int, dict[Piece, np.ndarray]]] = self._get(
            [shard.pull.remote() for shard in self._shards], timeout=timeout, method=method
        )
        return self._layout.assemble([pieces for _, pieces in parts]), parts[0][0]

    def pull(self, *, timeout: Any = DEFAULT) -> dict[str, np.ndarray]:
        """Return the current parameters, as fresh arrays the caller may modify.

        Every shard answers the pull after the pushes this facade sent before it (Ray
        runs one caller's calls to an actor in order), so a pull sees your own pushes.

        Args:
            timeout: Seconds to wait (default: the server's timeout).

        Returns:
            Name -> array, in the shapes and dtypes of the initial parameters.
        """
        return self._pull_with_version(timeout=timeout, method="pull")[0]

    def pull_async(self) -> ObjectRef[dict[str, np.ndarray]]:
        """Ask for the parameters and return at once.

        Returns:
            An ObjectRef to name -> array. Like anything read from Ray's object store,
            the arrays may be read-only: copy one before changing it in place.
        """
        self._check_open("pull_async")
        ref: ObjectRef[dict[str, np.ndarray]] = _assemble.remote(
            self._layout, *[shard.pull.remote() for shard in self._shards]
        )
        return ref

    def version(self, *, timeout: Any = DEFAULT) -> int:
        """Return how many whole pushes are applied: the lowest version over the shards.

        Args:
            timeout: Seconds to wait (default: the server's timeout).
        """
        check_timeout(timeout)
        self._check_open("version")
        refs = [shard.version.remote() for shard in self._shards]
        versions: list[int] = self._get(refs, timeout=timeout, method="version")
        return min(versions)

    def version_async(self) -> ObjectRef[int]:
        """Ask for `version` and return at once: an ObjectRef to the same int."""
        self._check_open("version_async")
        ref: ObjectRef[int] = _lowest.remote(*[shard.version.remote() for shard in self._shards])
        return ref

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        ref: ObjectRef[dict[str, Any]] = _server_stats.remote(
            *[shard.stats.remote() for shard in self._shards]
        )
        return ref

    def stats(self, *, timeout: Any = DEFAULT) -> dict[str, Any]:
        """Return the common facade entries and the server's counters and sizes.

        Besides the entries every facade reports (``kind``, ``name``, ``namespace``,
        ``actors``, ``owned``, ``closed``, ``timeout_s``): ``applied`` (= `version()`),
        ``dropped_stale`` (pushes refused as too old), ``n_shards``, ``bytes_per_shard``
        and ``elements_per_shard`` (parameters only), ``versions`` (per shard),
        ``optimizer``, ``learning_rate``, ``max_staleness``, ``restored_versions`` (the
        checkpoint each shard restored when it last started: 0 if none) and
        ``checkpoint_versions``.

        Args:
            timeout: Seconds to wait (default: the server's timeout).

        Examples:
            >>> import numpy as np
            >>> params = {"W": np.zeros((4, 2)), "b": np.zeros(2)}
            >>> with ParameterServer(params, n_shards=2) as server:
            ...     stats = server.stats()
            >>> stats["applied"], stats["dropped_stale"], stats["bytes_per_shard"]
            (0, 0, [48, 32])
        """
        return super().stats(timeout=timeout)
