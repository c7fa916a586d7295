"""Spark bridge: Ray actors over a Spark DataFrame's batches or groups, results as a DataFrame.

Spark reads and writes the data; a pool of Ray actors does the heavy or stateful work
in between: a model loaded once per actor scores every batch, or a forecaster fits one
model per (store, item) group. `map_batches_with_actors` sends fixed-size batches of
rows to the pool; `map_groups_with_actors` sends whole groups, each key always to the
same actor (`actor_for_key`). The result is a Spark DataFrame of ``output_schema``.

What it promises:

- **Where data moves.** ``transport="executor"`` (default): Spark's Python workers send
  their partitions' Arrow batches to the actors and get Arrow back; nothing passes
  through the driver. ``transport="driver"``: the DataFrame is collected to the driver
  as Arrow, sent from there, and the results become a DataFrame: for data that fits.
- **Back-pressure.** Each sender (the driver, or each running Spark task) has at most
  ``max_in_flight`` calls out per actor.
- **Failures.** Bad arguments raise ``TypeError``/``ValueError`` before any Spark job
  or actor starts. A batch whose code raises, or whose result does not match
  ``output_schema``, stops the run with a `BridgeBatchError` (`BridgeSchemaError`)
  naming its group key or place, the actor and the remote error. A killed actor is
  restarted by Ray and the calls it had are sent again; the run completes with every
  row once, and `BridgeStats` counts each batch once however often it was retried.
  A batch that kills its actor on every attempt (a poison batch) stops the run after
  Ray's ``MAX_TASK_RETRIES`` re-sends and one more by the bridge (which lets a call
  that only queued behind a poison call run) with `BridgeActorLostError` (an
  ``ActorLostError``).
- **Bounded waits.** Every wait of a sender is bounded by the run's ``timeout``: an
  actor alive but stuck stops the run with ``CallTimeoutError``, never a hang. Every
  error of the bridge is a ``PatternError``.
- **Lifetime.** By default the pool lives for one call. The returned DataFrame is
  materialised before the pool stops (``localCheckpoint`` on the executors for the
  executor transport), so later actions on it never need the actors. A `BridgePool`
  passed as ``actor_class`` keeps its actors from call to call, until its ``close()``
  (a facade like the library's others: ``with``, ``attach``, ``stats``, ``pids``).

`to_ray_dataset` and `from_ray_dataset` hand a whole DataFrame to Ray Data and take
a Dataset back: the executors put Arrow blocks into Ray's object store (owned by a
`BlockOwner`, one actor per node) and read them back from it, with every row exactly
once whatever Spark retries, and nothing through the driver.

What it does not: it does not make a stateful ``__call__`` exactly-once. A batch may
run twice on an actor (re-sent after a crash, or by a retried Spark task); results are
kept once, but side effects of ``__call__`` happen again.

``pyspark``, ``pandas`` and ``pyarrow`` are imported when a function runs, never when
``patterns`` is imported.
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from patterns._actors import (
    actor_info,
    check_actor_options,
    check_kind,
    check_naming,
    get_named_actor,
)
from patterns._calls import DEFAULT, DEFAULT_TIMEOUT_S, Timeout, check_timeout, stop_actors
from patterns._checks import (
    check_bool,
    check_choice,
    check_constructor_args,
    check_int,
    check_name,
    check_positive_float,
    describe,
)
from patterns._facade import ActorFacade, check_facade_timeout
from patterns.errors import CallTimeoutError
from patterns.spark_bridge._datasets import from_ray_dataset, to_ray_dataset
from patterns.spark_bridge._errors import (
    BridgeActorLostError,
    BridgeBatchError,
    BridgeError,
    BridgeSchemaError,
)
from patterns.spark_bridge._keys import actor_for_key, check_key_names
from patterns.spark_bridge._ledger import BridgeStats
from patterns.spark_bridge._owner import BlockOwner
from patterns.spark_bridge._pool import (
    NAMESPACE,
    POOL_DEFAULTS,
    Pool,
    PoolSpec,
    kill_actors,
    new_spec,
    start_actors,
)
from patterns.spark_bridge._pool import start_ledger as _start_ledger
from patterns.spark_bridge._run import RunSettings, run
from patterns.spark_bridge._schema import parse_output_schema
from patterns.spark_bridge._send import LEDGER_TIMEOUT_S

__all__ = [
    "BlockOwner",
    "BridgeActorLostError",
    "BridgeBatchError",
    "BridgeError",
    "BridgePool",
    "BridgeSchemaError",
    "BridgeStats",
    "actor_for_key",
    "from_ray_dataset",
    "map_batches_with_actors",
    "map_groups_with_actors",
    "to_ray_dataset",
]

TRANSPORTS = ("executor", "driver")


def _check_actor_class(actor_class: object, arity: int | None, signature: str) -> type:
    if not inspect.isclass(actor_class):
        msg = f"'actor_class' must be a class, got {describe(actor_class)}"
        raise TypeError(msg)
    owners = [k for k in actor_class.__mro__ if k is not object and "__call__" in vars(k)]
    call = vars(owners[0])["__call__"] if owners else None
    if not callable(call):
        msg = (
            f"'actor_class' must define __call__{signature}, got {actor_class.__qualname__}, "
            "which has no __call__"
        )
        raise TypeError(msg)
    if arity is None:  # a BridgePool's class: its use decides the arity
        return actor_class
    try:
        inspect.signature(call).bind(*([None] * (arity + 1)))
    except TypeError:
        msg = (
            f"'actor_class' must define __call__{signature}, got {actor_class.__qualname__}"
            f".__call__{inspect.signature(call)}"
        )
        raise TypeError(msg) from None
    except ValueError:  # no signature (a builtin): trust it
        pass
    return actor_class


def _check_dataframe(df: object) -> Any:
    try:
        from pyspark.sql import DataFrame
    except ImportError as exc:  # pragma: no cover - pyspark is a dependency of the extra
        msg = "the Spark bridge needs pyspark: pip install 'ray-actor-patterns[spark]'"
        raise ImportError(msg) from exc
    if not isinstance(df, DataFrame):
        msg = f"'df' must be a pyspark.sql.DataFrame, got {describe(df)}"
        raise TypeError(msg)
    return df


def _check_ray_connected() -> None:
    import ray

    if not ray.is_initialized():
        msg = (
            "Ray is not connected in this process: start a cluster first "
            "(`with RayOnSpark() as cluster:`) or call ray.init(address=...)"
        )
        raise RuntimeError(msg)


def _check_actor_arguments(
    actor_args: object, actor_kwargs: object
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return check_constructor_args("actor_args", actor_args, "actor_kwargs", actor_kwargs)


def _check_pool_options(
    actor_options: object,
    name: object = None,
    namespace: object = None,
    *,
    facade: str = "BridgePool",
) -> tuple[dict[str, Any], str | None, str | None]:
    options = check_actor_options(actor_options, defaults=POOL_DEFAULTS)
    checked_name, checked_namespace = check_naming(name, namespace, options, facade=facade)
    if "get_if_exists" in options:
        msg = "'actor_options' may not set 'get_if_exists': use BridgePool.attach(name)"
        raise ValueError(msg)
    if "lifetime" in options and checked_name is None:
        msg = "'actor_options' sets 'lifetime' without a name: pass name= too"
        raise ValueError(msg)
    return options, checked_name, checked_namespace


def _check_run_options(actor_options: object) -> dict[str, Any]:
    options = check_actor_options(actor_options, defaults=POOL_DEFAULTS)
    for reserved in ("name", "namespace", "get_if_exists", "lifetime"):
        if reserved in options:
            msg = (
                f"'actor_options' may not set {reserved!r}: a call's own pool is named by "
                "the bridge (name a BridgePool(..., name=...) to share it)"
            )
            raise ValueError(msg)
    return options


class BridgePool(ActorFacade):
    """Actors that several bridge calls share: started once, stopped by `close`.

    By default every call of `map_batches_with_actors` or `map_groups_with_actors`
    starts a pool of its own and stops it at the end, so every call pays for new Ray
    worker processes, their imports and ``actor_class.__init__`` (a model load). Pass
    a ``BridgePool`` as ``actor_class`` instead and the call uses its actors, already
    started, and leaves them running for the next call. The actors are the same from
    call to call, so with key affinity a key meets the same actor (and its state) in
    every call. The pool also keeps the run ledger (a small actor, named
    ``{name}/ledger``, that counts each batch once): a call on the pool starts no actor.

    The facade follows the library's conventions (CONTRIBUTING.md): ``close()`` stops
    the actors and returns once Ray reports them dead (idempotent; ``with`` calls it);
    a copy unpickled elsewhere, or a facade from `attach`, *releases* the actors on
    ``close()`` instead; ``kill()`` only simulates a crash (Ray restarts the actors,
    which rebuild their object); ``stats()`` and ``pids()`` inspect them. A call on a
    closed pool raises `patterns.errors.FacadeClosedError`.

    The actors are created at once; `wait_ready` waits until each has built its
    ``actor_class(*actor_args, **actor_kwargs)``. A call on a pool that is still
    starting waits for it (up to ``ready_timeout_s``), as a call with its own pool does.

    Args:
        actor_class: A class whose instances are callable: ``__call__(self, batch)``
            for `map_batches_with_actors`, ``__call__(self, key, group)`` for
            `map_groups_with_actors`.
        n_actors: Number of actors (an int >= 1).
        actor_args: Positional arguments for ``actor_class``.
        actor_kwargs: Keyword arguments for ``actor_class``.
        actor_options: Ray options for the actors (see `map_batches_with_actors`;
            the name and namespace come from ``name=`` and ``namespace=``).
        name: Name the actors ``{name}/actor-{i}``, so that another program (or
            another driver) can `attach` to the pool. Default: a generated name.
        namespace: The Ray namespace of the actors (default ``"spark-bridge"``, where
            Spark's Python workers look them up).
        ready_timeout_s: How long the actors may take to start (their ``__init__``).
        timeout: Seconds any one wait on the pool may last in its calls (a run's
            reply from an actor, ``stats``, ``pids``, ``close``): default
            `patterns.DEFAULT_TIMEOUT_S`; None for no bound. A run given this pool
            uses it unless the run is given its own ``timeout=``.

    Raises:
        TypeError: An argument has the wrong type (``actor_class`` without ``__call__``...).
        ValueError: An argument is out of range.
        RuntimeError: Ray is not connected in this process.

    Examples:
        >>> with BridgePool(Forecaster, n_actors=2) as pool:  # doctest: +SKIP
        ...     pool.wait_ready()
        ...     week1 = map_groups_with_actors(df1, "store", pool, output_schema=SCHEMA)
        ...     week2 = map_groups_with_actors(df2, "store", pool, output_schema=SCHEMA)
    """

    _kind = "BridgePool"

    def __init__(
        self,
        actor_class: type,
        *,
        n_actors: int = 2,
        actor_args: Sequence[Any] = (),
        actor_kwargs: Mapping[str, Any] | None = None,
        actor_options: Mapping[str, Any] | None = None,
        name: str | None = None,
        namespace: str | None = None,
        ready_timeout_s: float = 120.0,
        timeout: Timeout = DEFAULT,
    ) -> None:
        cls = _check_actor_class(actor_class, None, "(self, ...)")
        size = check_int("n_actors", n_actors, minimum=1)
        args, kwargs = _check_actor_arguments(actor_args, actor_kwargs)
        options, name, namespace = _check_pool_options(actor_options, name, namespace)
        ready = check_positive_float("ready_timeout_s", ready_timeout_s)
        seconds = check_facade_timeout(timeout)
        _check_ray_connected()
        spec = PoolSpec("", size, name or f"pool-{uuid.uuid4().hex[:12]}", namespace or NAMESPACE)
        info = {
            "kind": "BridgePool",
            "n_actors": size,
            "options": options,
            "ready_timeout_s": ready,
        }
        actors = start_actors(
            spec, factory=cls, args=args, kwargs=kwargs, options=options, info=info
        )
        try:
            ledger = _start_ledger(spec, lifetime=options.get("lifetime"))
        except BaseException:
            kill_actors(actors)
            raise
        self._setup(cls, spec, actors, ledger, options, ready, name, namespace, seconds, owned=True)

    def _setup(
        self,
        cls: type,
        spec: PoolSpec,
        actors: list[Any],
        ledger: Any,
        options: dict[str, Any],
        ready_timeout_s: float,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
        *,
        owned: bool,
        started: bool = False,
    ) -> None:
        self.actor_class: type = cls
        self._spec = spec
        self._actors = actors
        self._ledger = ledger  # the pool's ledger actor: one for all its runs
        self._options = options
        self._ready_timeout_s = ready_timeout_s
        self._init_facade(actors, name=name, namespace=namespace, owned=owned, timeout=timeout)
        self._starting = Pool(
            spec, actors, ledger, factory=cls, options=options,
            ready_timeout_s=ready_timeout_s, owns_actors=False, owns_ledger=False,
            started=started,
        )  # fmt: skip

    @property
    def n_actors(self) -> int:
        """Number of actors in the pool."""
        return self._spec.n_actors

    @property
    def ready_timeout_s(self) -> float:
        """How long the actors may take to start."""
        return self._ready_timeout_s

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Timeout = DEFAULT,
    ) -> BridgePool:
        """Return a facade for the live pool whose actors were named ``name``.

        Args:
            name: The pool's ``name=`` when it was created.
            namespace: Its ``namespace=`` (default ``"spark-bridge"``).
            own: Take the actors over: this facade's ``close()`` stops them. By
                default it releases them and they keep running.
            timeout: The new facade's timeout.

        Returns:
            A facade for the same actors.

        Raises:
            ValueError: No live pool of that name.
            TypeError: The actor of that name is not a pool actor of the bridge.
            CallTimeoutError: The pool did not say what it is within ``timeout``.
        """
        own = check_bool("own", own)
        seconds = check_facade_timeout(timeout)
        where = namespace or NAMESPACE
        first = get_named_actor(f"{name}/actor-0", where, kind="BridgePool")
        info = actor_info(first, f"{name}/actor-0", what="BridgePool actor", timeout=seconds)
        check_kind(info, name, "BridgePool")
        spec = PoolSpec("", info["n_actors"], name, where)
        actors = [first] + [
            get_named_actor(spec.actor_name(i), where, kind="BridgePool")
            for i in range(1, spec.n_actors)
        ]
        try:
            ledger = ray.get_actor(spec.ledger_name, namespace=where)
        except ValueError:  # gone (it died): a new one serves the pool's next runs
            ledger = _start_ledger(spec, lifetime=info["options"].get("lifetime"), reuse=True)
        pool = cls.__new__(cls)
        pool._setup(
            info["factory"], spec, actors, ledger, info["options"], info["ready_timeout_s"],
            name, namespace, seconds, owned=own, started=True,
        )  # fmt: skip
        return pool

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (a task, another actor, another thread's pickle) releases on close().
        state = (
            self.actor_class, self._spec, self._actors, self._ledger, self._options,
            self._ready_timeout_s, self.name, self.namespace, self.timeout,
        )  # fmt: skip
        return (_rebuild_pool, state)

    def _live_ledger(self) -> Any:
        """The pool's ledger actor; a new one if it died (its runs' counts died with it)."""
        from ray.exceptions import RayActorError

        if not self._starting.started():
            return self._ledger  # starting with the actors: the run waits for both
        try:
            ray.get(self._ledger.ping.remote(), timeout=LEDGER_TIMEOUT_S)
        except RayActorError:
            lifetime = self._options.get("lifetime")
            self._ledger = _start_ledger(self._spec, lifetime=lifetime, reuse=True)
        return self._ledger

    def _run_pool(self) -> Pool:
        """The pool of one run: these actors and the pool's ledger, under a new run id.

        The run ends by closing its entry in the ledger: it starts and stops no actor.
        """
        spec = new_spec(self.n_actors, self._spec.pool, self._spec.namespace)
        return Pool(
            spec, self._actors, self._live_ledger(), factory=self.actor_class,
            options=self._options, ready_timeout_s=self._ready_timeout_s, owns_actors=False,
            owns_ledger=False, started=self._starting.started(),
        )  # fmt: skip

    def close(self, *, timeout: object = DEFAULT) -> None:
        """Stop the actors and the pool's ledger (or release them: see `attach`).

        Args:
            timeout: Seconds for Ray to report them dead (default: the pool's timeout).

        Raises:
            CallTimeoutError: They were still alive after ``timeout`` (the pool is
                closed all the same).
        """
        if self.closed:
            return
        try:
            super().close(timeout=timeout)
        finally:
            if self.owned:
                ledgers = [self._ledger]
                try:  # the live one, if a facade replaced a ledger that died
                    ledgers.append(ray.get_actor(self._spec.ledger_name, self._spec.namespace))
                except ValueError:
                    pass
                stop_actors(ledgers, timeout=self._seconds(timeout), who=self._who)

    def wait_ready(self, *, timeout: Timeout = DEFAULT) -> None:
        """Block until every actor has built its object.

        Args:
            timeout: Seconds to wait at most (default: what is left of
                ``ready_timeout_s``; None: that too).

        Raises:
            FacadeClosedError: The pool is closed.
            BridgeError: An actor's ``__init__`` raised, or the actors could not be
                placed within ``ready_timeout_s``.
            CallTimeoutError: They were not ready within ``timeout``.
        """
        self._check_open("wait_ready")
        seconds = check_timeout(timeout)
        if seconds is DEFAULT or seconds is None:
            self._starting.wait_started()
            return
        deadline = time.monotonic() + seconds
        while not self._starting.started(wait_s=min(1.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                msg = f"{self._who}: wait_ready timed out after {seconds:g} s"
                raise CallTimeoutError(msg)

    def _base_stats(self) -> dict[str, Any]:
        return {
            **super()._base_stats(),
            "n_actors": self.n_actors,
            "actor_class": self.actor_class.__qualname__,
            "ready_timeout_s": self._ready_timeout_s,
        }

    def __repr__(self) -> str:
        named = f", name={self.name!r}" if self.name else ""
        return (
            f"BridgePool(actor_class={self.actor_class.__qualname__}, n_actors={self.n_actors}"
            f"{named}, closed={self.closed})"
        )


def _rebuild_pool(
    cls: type,
    spec: PoolSpec,
    actors: list[Any],
    ledger: Any,
    options: dict[str, Any],
    ready_timeout_s: float,
    name: str | None,
    namespace: str | None,
    timeout: float | None,
) -> BridgePool:
    pool = BridgePool.__new__(BridgePool)
    pool._setup(
        cls, spec, actors, ledger, options, ready_timeout_s, name, namespace, timeout,
        owned=False, started=True,
    )  # fmt: skip
    return pool


def _settings(
    *,
    label: str,
    mode: str,
    df: Any,
    key_cols: object,
    actor_class: object,
    output_schema: object,
    n_actors: object,
    batch_size: object,
    transport: object,
    actor_args: object,
    actor_kwargs: object,
    max_in_flight: object,
    actor_options: object,
    progress: object,
    progress_interval_s: object,
    ray_address: object,
    executor_idle_s: object,
    ready_timeout_s: object,
    num_partitions: object,
    key_affinity: object = True,
    timeout: object = DEFAULT,
) -> RunSettings:
    """Every argument checked, in the order of the signature; nothing has started yet."""
    df = _check_dataframe(df)
    key_names: list[str] = []
    shared = actor_class if isinstance(actor_class, BridgePool) else None
    if shared is not None:
        shared._check_open(label)
        actor_class = shared.actor_class
    if mode == "groups":
        key_names = check_key_names(key_cols, df.columns)
        cls = _check_actor_class(actor_class, 2, "(self, key, group)")
    else:
        cls = _check_actor_class(actor_class, 1, "(self, batch)")
    pool = 2 if n_actors is None else check_int("n_actors", n_actors, minimum=1)
    size = check_int("batch_size", batch_size, minimum=1)
    chosen = check_choice("transport", transport, TRANSPORTS)
    args, kwargs = _check_actor_arguments(actor_args, actor_kwargs)
    in_flight = check_int("max_in_flight", max_in_flight, minimum=1)
    options = _check_run_options(actor_options)
    seconds = check_timeout(timeout)
    if shared is not None:
        # The pool's actors are built: what would build them belongs to the pool.
        if n_actors is not None and pool != shared.n_actors:
            size_now = shared.n_actors
            msg = f"'n_actors' must be the BridgePool's ({size_now}) or left out, got {pool}"
            raise ValueError(msg)
        if args or kwargs or actor_options:
            msg = (
                "'actor_args', 'actor_kwargs' and 'actor_options' belong to the BridgePool "
                "given as 'actor_class': pass them to BridgePool(...), not here"
            )
            raise ValueError(msg)
        pool, args, kwargs, options = shared.n_actors, (), {}, shared._options
        ready_timeout_s = shared._ready_timeout_s
    if seconds is DEFAULT:
        seconds = shared.timeout if shared is not None else DEFAULT_TIMEOUT_S
    shown = None if progress is None else check_bool("progress", progress)
    interval = check_positive_float("progress_interval_s", progress_interval_s)
    address = None if ray_address is None else check_name("ray_address", ray_address)
    idle = check_positive_float("executor_idle_s", executor_idle_s)
    ready = check_positive_float("ready_timeout_s", ready_timeout_s)
    partitions = None
    if num_partitions is not None:
        partitions = check_int("num_partitions", num_partitions, minimum=1)
    _check_ray_connected()
    struct, target = parse_output_schema(output_schema)
    return RunSettings(
        label=label,
        mode=mode,
        key_names=tuple(key_names),
        factory=cls,
        args=args,
        kwargs=kwargs,
        struct=struct,
        target=target,
        n_actors=pool,
        batch_size=size,
        max_in_flight=in_flight,
        transport=chosen,
        actor_options=options,
        progress=shown,
        progress_interval_s=interval,
        ray_address=address,
        executor_idle_s=idle,
        ready_timeout_s=ready,
        num_partitions=partitions,
        key_affinity=check_bool("key_affinity", key_affinity),
        shared=shared,
        timeout=seconds,
    )


def _check_stats(stats: object) -> BridgeStats | None:
    if stats is not None and not isinstance(stats, BridgeStats):
        msg = f"'stats' must be a BridgeStats or None, got {describe(stats)}"
        raise TypeError(msg)
    return stats


def map_batches_with_actors(
    df: Any,
    actor_class: type | BridgePool,
    *,
    output_schema: Any,
    n_actors: int | None = None,
    batch_size: int = 10_000,
    transport: str = "executor",
    actor_args: Sequence[Any] = (),
    actor_kwargs: Mapping[str, Any] | None = None,
    max_in_flight: int = 2,
    actor_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    progress_interval_s: float = 5.0,
    stats: BridgeStats | None = None,
    ray_address: str | None = None,
    executor_idle_s: float = 10.0,
    ready_timeout_s: float = 120.0,
    timeout: Timeout = DEFAULT,
) -> Any:
    """Run ``actor_class`` instances over the batches of ``df``; return the results as a DataFrame.

    ``n_actors`` actors are started, each building ``actor_class(*actor_args,
    **actor_kwargs)`` once (load a model there). Each batch of up to ``batch_size`` rows
    goes, as a pandas DataFrame, to the actor with the fewest calls out, whose
    ``__call__(batch)`` returns a pandas DataFrame of ``output_schema``'s columns (any
    number of rows). The actors are killed when the call returns or raises (unless they
    belong to a `BridgePool`).

    Args:
        df: The input Spark DataFrame.
        actor_class: A class whose instances are callable: ``__call__(self, batch)``;
            or a `BridgePool` of such actors, already started, which the call uses and
            leaves running (``n_actors``, ``actor_args``, ``actor_kwargs``,
            ``actor_options`` and ``ready_timeout_s`` are then the pool's).
        output_schema: The result's schema: a Spark DDL string (``"id long, score
            double"``) or a ``StructType``. Every result must have exactly these columns.
        n_actors: Number of actors (an int >= 1; default 2, or the `BridgePool`'s).
        batch_size: Rows per call (an int >= 1).
        transport: ``"executor"``: Spark's Python workers send their partitions to the
            actors; ``"driver"``: ``df`` is collected on the driver and sent from there
            (for data that fits the driver).
        actor_args: Positional arguments for ``actor_class``.
        actor_kwargs: Keyword arguments for ``actor_class``.
        max_in_flight: Calls each sender may have out to one actor at once (an int >= 1).
        actor_options: Ray options for the pool actors, over the defaults
            ``num_cpus=1, max_restarts=-1, max_task_retries=3, scheduling_strategy="SPREAD"``
            (``name``, ``namespace``, ``lifetime`` are the bridge's to set).
        progress: Progress lines on stderr every ``progress_interval_s``: None (default)
            only for runs that last longer than that, True always, False never.
        progress_interval_s: Seconds between progress lines.
        stats: A `BridgeStats` to fill with what the run did.
        ray_address: Where Spark's Python workers find Ray (executor transport); default
            the GCS address this driver is connected to.
        executor_idle_s: A Spark Python worker leaves the Ray cluster after this many
            seconds without bridge work (it stays connected between tasks until then).
        ready_timeout_s: How long the pool's actors may take to start.
        timeout: The run's budget for a stuck actor: the longest any sender waits
            without a reply from the pool (one batch's work, or room for the next
            one). Past it the run stops with `patterns.errors.CallTimeoutError` naming
            the actors waited for. Default: the `BridgePool`'s timeout, else
            `patterns.DEFAULT_TIMEOUT_S` (60 s); the first reply of a sender may also
            take ``ready_timeout_s``, while the actors start; None: no bound. Raise it
            for batches whose work takes longer.

    Returns:
        A Spark DataFrame of ``output_schema``, already computed.

    Raises:
        TypeError: An argument has the wrong type (``df`` not a DataFrame,
            ``actor_class`` without ``__call__``, ...).
        ValueError: An argument is out of range (``n_actors < 1``, ``batch_size < 1``,
            an unknown ``transport``, a bad ``output_schema``).
        RuntimeError: Ray is not connected in this process.
        BridgeBatchError: A batch failed on its actor (its place in the input, the
            actor, the remote error); `BridgeSchemaError` if its result did not match
            ``output_schema``.
        BridgeActorLostError: A batch crashed its actor on every attempt (a poison
            batch: Ray re-sends a killed actor's calls ``MAX_TASK_RETRIES`` times,
            the bridge once more).
        CallTimeoutError: An actor sent no reply within ``timeout``.
        BridgeError: The pool could not start.
        FacadeClosedError: The `BridgePool` given is closed.

    Examples:
        >>> class Doubler:  # doctest: +SKIP
        ...     def __call__(self, batch):
        ...         return batch.assign(y=batch["id"] * 2)
        >>> out = map_batches_with_actors(  # doctest: +SKIP
        ...     spark.range(5), Doubler, output_schema="id long, y long"
        ... )
        >>> sorted(r.y for r in out.collect())  # doctest: +SKIP
        [0, 2, 4, 6, 8]
    """
    settings = _settings(
        label="map_batches_with_actors",
        mode="batches",
        df=df,
        key_cols=None,
        actor_class=actor_class,
        output_schema=output_schema,
        n_actors=n_actors,
        batch_size=batch_size,
        transport=transport,
        actor_args=actor_args,
        actor_kwargs=actor_kwargs,
        max_in_flight=max_in_flight,
        actor_options=actor_options,
        progress=progress,
        progress_interval_s=progress_interval_s,
        ray_address=ray_address,
        executor_idle_s=executor_idle_s,
        ready_timeout_s=ready_timeout_s,
        num_partitions=None,
        timeout=timeout,
    )
    return run(df, settings, _check_stats(stats))


def map_groups_with_actors(
    df: Any,
    key_cols: str | Sequence[str],
    actor_class: type | BridgePool,
    *,
    output_schema: Any,
    n_actors: int | None = None,
    transport: str = "executor",
    actor_args: Sequence[Any] = (),
    actor_kwargs: Mapping[str, Any] | None = None,
    max_in_flight: int = 2,
    batch_size: int = 10_000,
    num_partitions: int | None = None,
    key_affinity: bool = True,
    actor_options: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    progress_interval_s: float = 5.0,
    stats: BridgeStats | None = None,
    ray_address: str | None = None,
    executor_idle_s: float = 10.0,
    ready_timeout_s: float = 120.0,
    timeout: Timeout = DEFAULT,
) -> Any:
    """Run ``actor_class`` instances over the groups of ``df``; return the results as a DataFrame.

    Rows with equal values in ``key_cols`` form a group (nulls and NaNs group together,
    as in Spark's ``groupBy``). Each group goes whole to actor
    ``actor_for_key(key, n_actors)``, always the same one for a key (unless
    ``key_affinity=False``), whose
    ``__call__(key, group)`` gets the key as a tuple of Python values (None for a null)
    and the group as a pandas DataFrame of all its columns, and returns a pandas
    DataFrame of ``output_schema``'s columns. Small groups of one actor travel together
    in calls of up to ``batch_size`` rows; each still gets its own ``__call__``.

    With the executor transport the rows are first repartitioned by key into
    ``num_partitions`` partitions (default: Spark's default parallelism, at least
    ``n_actors``) and sorted by key within each, so that each group is whole in one
    Spark task and is read one group at a time. When Spark's partitioning of ``df``
    already keeps each key in one partition (``df.repartition(n, "store")`` for keys
    ``["store", "item"]``, or the output of an aggregation by those keys) and
    ``num_partitions`` is not given, there is no repartition: only the sort.

    Args:
        df: The input Spark DataFrame.
        key_cols: The key column, or a list of them.
        actor_class: A class whose instances are callable: ``__call__(self, key, group)``;
            or a `BridgePool` of such actors (see `map_batches_with_actors`).
        output_schema: The result's schema: a Spark DDL string or a ``StructType``.
        n_actors: Number of actors (an int >= 1; default 2, or the `BridgePool`'s).
        transport: ``"executor"`` or ``"driver"`` (see `map_batches_with_actors`).
        actor_args: Positional arguments for ``actor_class``.
        actor_kwargs: Keyword arguments for ``actor_class``.
        max_in_flight: Calls each sender may have out to one actor at once.
        batch_size: Most rows of small groups packed into one call (a larger group
            travels alone).
        num_partitions: Partitions of the repartition by key (executor transport);
            given, the rows are repartitioned even when already grouped by key.
        key_affinity: True (default): each key always goes to the same actor, so an
            actor may keep state per key. False: each group goes to the actor with
            the fewest calls out, which balances groups of very unequal cost (no
            state per key then).
        actor_options: Ray options for the pool actors (see `map_batches_with_actors`).
        progress: Progress lines on stderr (see `map_batches_with_actors`).
        progress_interval_s: Seconds between progress lines.
        stats: A `BridgeStats` to fill with what the run did.
        ray_address: Where Spark's Python workers find Ray (executor transport).
        executor_idle_s: Seconds a Spark Python worker stays connected without work.
        ready_timeout_s: How long the pool's actors may take to start.
        timeout: The run's budget for a stuck actor: the longest any sender waits
            without a reply from the pool (one batch's work, or room for the next
            one). Past it the run stops with `patterns.errors.CallTimeoutError` naming
            the actors waited for. Default: the `BridgePool`'s timeout, else
            `patterns.DEFAULT_TIMEOUT_S` (60 s); the first reply of a sender may also
            take ``ready_timeout_s``, while the actors start; None: no bound. Raise it
            for batches whose work takes longer.

    Returns:
        A Spark DataFrame of ``output_schema``, already computed.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: ``key_cols`` names a column ``df`` lacks (all such columns are
            named), or another argument is out of range.
        RuntimeError: Ray is not connected in this process.
        BridgeBatchError: A group failed on its actor (its key, the actor, the remote
            error); `BridgeSchemaError` if its result did not match ``output_schema``.
        BridgeActorLostError: A batch crashed its actor on every attempt (a poison
            batch: Ray re-sends a killed actor's calls ``MAX_TASK_RETRIES`` times,
            the bridge once more).
        CallTimeoutError: An actor sent no reply within ``timeout``.
        BridgeError: The pool could not start.
        FacadeClosedError: The `BridgePool` given is closed.

    Examples:
        >>> class Mean:  # doctest: +SKIP
        ...     def __call__(self, key, group):
        ...         return pd.DataFrame({"k": [key[0]], "mean": [group["v"].mean()]})
        >>> df = spark.createDataFrame(  # doctest: +SKIP
        ...     [("a", 1.0), ("a", 3.0), ("b", 5.0)], "k string, v double"
        ... )
        >>> out = map_groups_with_actors(  # doctest: +SKIP
        ...     df, "k", Mean, output_schema="k string, mean double"
        ... )
        >>> sorted(out.collect())  # doctest: +SKIP
        [Row(k='a', mean=2.0), Row(k='b', mean=5.0)]
    """
    settings = _settings(
        label="map_groups_with_actors",
        mode="groups",
        df=df,
        key_cols=key_cols,
        actor_class=actor_class,
        output_schema=output_schema,
        n_actors=n_actors,
        batch_size=batch_size,
        transport=transport,
        actor_args=actor_args,
        actor_kwargs=actor_kwargs,
        max_in_flight=max_in_flight,
        actor_options=actor_options,
        progress=progress,
        progress_interval_s=progress_interval_s,
        ray_address=ray_address,
        executor_idle_s=executor_idle_s,
        ready_timeout_s=ready_timeout_s,
        num_partitions=num_partitions,
        key_affinity=key_affinity,
        timeout=timeout,
    )
    return run(df, settings, _check_stats(stats))
