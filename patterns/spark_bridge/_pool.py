"""The actor pool of a run: ``n_actors`` named actors holding the user's object, and the ledger.

Each pool actor builds one instance of the user's class in its ``__init__`` (that is
where a model is loaded, once per actor) and runs calls one at a time. Names put the
pool where every sender can find it: the driver holds the handles, and Spark's Python
workers look the actors up by name (a handle pickled by the driver does not travel
through Spark). A run with a pool of its own also starts a ledger actor and kills both
when it ends, however it ends. A `BridgePool` starts its ledger actor with its actors
and keeps both for its life: each of its runs only opens and closes the run's entry
in that ledger (each call names the run and its output schema), so a run on a reused
pool starts no actor.
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
from ray.actor import ActorHandle

from patterns._actors import bind_options
from patterns._calls import MAX_TASK_RETRIES
from patterns.spark_bridge._errors import BridgeBatchError, BridgeError
from patterns.spark_bridge._ledger import Ledgers, RunLedger
from patterns.spark_bridge._schema import Target

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "NAMESPACE",
    "POOL_DEFAULTS",
    "Pool",
    "PoolSpec",
    "kill_actors",
    "new_spec",
    "start_actors",
    "start_ledger",
    "start_pool",
]

NAMESPACE = "spark-bridge"

# One CPU per actor: the pool's work is the heavy part of the job. A killed actor comes
# back (its __init__ runs again, so its model is reloaded) and Ray re-sends the calls
# that were out; a batch that keeps killing its actor fails after MAX_TASK_RETRIES re-sends.
POOL_DEFAULTS: dict[str, Any] = {
    "num_cpus": 1,
    "max_restarts": -1,
    "max_task_retries": MAX_TASK_RETRIES,
    "scheduling_strategy": "SPREAD",
}


@dataclass(frozen=True)
class PoolSpec:
    """Names of one run's actors: where senders find the pool and the ledger.

    ``pool`` names the actors and the ledger when they outlive the run (a
    `BridgePool`: its ``name=`` or a generated one); by default they are named after
    the run. ``namespace`` is where they live. ``run`` names the run's entry in the
    ledger.
    """

    run: str
    n_actors: int
    pool: str = ""
    namespace: str = NAMESPACE

    def actor_name(self, index: int) -> str:
        return f"{self.pool or self.run}/actor-{index}"

    @property
    def ledger_name(self) -> str:
        return f"{self.pool or self.run}/ledger"

    @property
    def ledger_ref(self) -> tuple[str, str, str]:
        """What a pool actor needs to report to the run's ledger: name, namespace, run."""
        return (self.ledger_name, self.namespace, self.run)


def _remote_error(exc: BaseException) -> tuple[str, str, str]:
    return type(exc).__name__, str(exc), "".join(traceback.format_exception(exc))


class PoolActor:
    """One pool slot: the user's object, and a ``run`` method per kind of work.

    ``run_batch`` calls ``__call__(batch)``, ``run_groups`` ``__call__(key, group)``.
    Each call names its run's ledger (name, namespace, run) and the target schema, so
    one actor can serve the runs of a `BridgePool` one after the other. Results leave
    as Arrow tables of the target schema.
    """

    def __init__(
        self,
        index: int,
        factory: Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self._index = index
        self._info = dict(info or {})  # what attach needs: the pool's size, class, options
        self._ledgers: dict[tuple[str, str], Any] = {}  # by (name, namespace): a few at most
        self._instance = factory(*args, **kwargs)

    def _report_start(self, ledger: tuple[str, str, str], batch: str) -> None:
        # Fire and forget: a start only feeds the re-run count (see BridgeStats).
        name, namespace, run = ledger
        try:
            handle = self._ledgers.get((name, namespace))
            if handle is None:
                if len(self._ledgers) > 8:  # earlier runs' ledgers are gone
                    self._ledgers.clear()
                handle = ray.get_actor(name, namespace=namespace)
                self._ledgers[(name, namespace)] = handle
            handle.started.remote(run, batch, actor=self._index, pid=os.getpid())
        except Exception:  # the ledger is gone: the run is over or ending
            self._ledgers.pop((name, namespace), None)

    def _call(self, target: Target, key: object, *args: Any) -> pa.Table:
        try:
            result = self._instance(*args)
        except Exception as exc:
            kind, message, text = _remote_error(exc)
            raise BridgeBatchError.from_remote(
                key, actor=self._index, remote_type=kind, remote_message=message,
                remote_traceback=text,
            ) from None  # fmt: skip
        return target.conform(result, key=key, actor=self._index)

    def run_batch(
        self, ledger: tuple[str, str, str], target: Target, batch: str, where: str, table: pa.Table
    ) -> pa.Table:
        """``__call__`` one batch; ``where`` describes it for error messages."""
        self._report_start(ledger, batch)
        return self._call(target, where, table.to_pandas())

    def run_groups(
        self,
        ledger: tuple[str, str, str],
        target: Target,
        batch: str,
        keys: list[tuple[Any, ...]],
        sizes: list[int],
        table: pa.Table,
    ) -> pa.Table:
        """``__call__(key, group)`` for each group packed in ``table``; one table back."""
        import pyarrow as pa

        self._report_start(ledger, batch)
        frame = table.to_pandas()
        results = []
        start = 0
        for key, size in zip(keys, sizes, strict=True):
            group = frame.iloc[start : start + size].reset_index(drop=True)
            start += size
            results.append(self._call(target, key, key, group))
        return pa.concat_tables(results) if results else target.empty()

    def ready(self) -> int:
        """The actor's pid, once its ``__init__`` (the user's too) has run."""
        return os.getpid()

    def pid(self) -> int:
        """The actor's process id (``BridgePool.pids``)."""
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        """What `BridgePool.attach` rebuilds a facade from."""
        return {**self._info, "index": self._index, "factory": type(self._instance)}


_RemotePoolActor = ray.remote(PoolActor)
_RemoteLedger = ray.remote(Ledgers)


class Pool:
    """The driver's side of a run's actors: create, check they started, kill.

    ``ledger`` is the ledger actor; ``run_ledger`` the run's view of it (``spec.run``).
    """

    def __init__(
        self,
        spec: PoolSpec,
        actors: list[ActorHandle[Any]],
        ledger: Any,
        *,
        factory: Callable[..., Any],
        options: Mapping[str, Any],
        ready_timeout_s: float,
        owns_actors: bool = True,
        owns_ledger: bool = True,
        started: bool = False,
    ) -> None:
        self.spec = spec
        self.actors = actors
        self.ledger_actor = ledger
        self.ledger = RunLedger(ledger, spec.run)
        self._owns_actors = owns_actors
        self._owns_ledger = owns_ledger
        self._factory = factory
        self._options = options
        self._timeout = ready_timeout_s
        self._deadline = time.monotonic() + ready_timeout_s
        self._starting: list[Any] = [] if started else [a.ready.remote() for a in actors]
        self._starting.append(ledger.ping.remote())

    def kill(self) -> None:
        """End the run: kill the actors and the ledger it owns (no restart), else close
        the run's entry in the pool's ledger; safe to call twice."""
        owned = list(self.actors) if self._owns_actors else []
        if self._owns_ledger:
            owned.append(self.ledger_actor)
        else:
            try:
                self.ledger.close()  # fire and forget: the entry is dropped in order
            except Exception:  # the ledger is gone
                pass
        kill_actors(owned)

    def started(self, wait_s: float = 0.0) -> bool:
        """True once every actor has built its object; waits up to ``wait_s`` for it.

        Raises:
            BridgeError: An actor's ``__init__`` raised, or the actors could not be
                placed within ``ready_timeout_s`` (with what the cluster has free).
        """
        from ray.exceptions import RayActorError

        if not self._starting:
            return True
        wait_s = min(wait_s, max(0.0, self._deadline - time.monotonic()))
        done, self._starting = ray.wait(
            self._starting, num_returns=len(self._starting), timeout=wait_s
        )
        try:
            ray.get(done)
        except RayActorError as exc:
            name = getattr(self._factory, "__qualname__", repr(self._factory))
            msg = f"{name}(...) failed in a pool actor's __init__: {_init_error(exc)}"
            raise BridgeError(msg) from exc
        if self._starting and time.monotonic() >= self._deadline:
            free = ray.available_resources().get("CPU", 0.0)
            msg = (
                f"the pool's {len(self.actors)} actors did not start within {self._timeout:g} "
                f"s: each asks for {self._options.get('num_cpus', 1):g} CPU and the cluster "
                f"has {free:g} free (lower 'n_actors', or pass actor_options={{'num_cpus': ...}})"
            )
            raise BridgeError(msg)
        return not self._starting

    def wait_started(self) -> None:
        """Block until every actor has started (see `started`)."""
        while not self.started(wait_s=1.0):
            pass

    def pids(self, timeout: float = 60.0) -> list[int]:
        """The pool actors' current process ids."""
        return list(ray.get([a.ready.remote() for a in self.actors], timeout=timeout))


def kill_actors(actors: Sequence[Any]) -> None:
    """Kill these actors (no restart); those already gone are skipped."""
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone
            pass


def start_actors(
    spec: PoolSpec,
    *,
    factory: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
) -> list[ActorHandle[Any]]:
    """Create the ``spec.n_actors`` named pool actors; do not wait for them.

    ``info`` is what each actor tells `BridgePool.attach` (`PoolActor.describe`).
    """
    actors: list[ActorHandle[Any]] = []
    try:
        for i in range(spec.n_actors):
            named = {**options, "name": spec.actor_name(i), "namespace": spec.namespace}
            remote = bind_options(_RemotePoolActor, named)
            actors.append(remote.remote(i, factory, args, kwargs, info))
    except BaseException:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        raise
    return actors


def new_spec(n_actors: int, pool: str = "", namespace: str = NAMESPACE) -> PoolSpec:
    """The names of a new run (with the actors of ``pool``, if given)."""
    return PoolSpec(f"run-{uuid.uuid4().hex[:12]}", n_actors, pool, namespace)


def start_ledger(spec: PoolSpec, *, lifetime: str | None = None, reuse: bool = False) -> Any:
    """Create the ledger actor of a run (or of a `BridgePool`); do not wait for it.

    ``reuse``: return the live ledger of that name if there is one (a pool's facade
    replacing a ledger that died). It never restarts: a restarted ledger would have
    forgotten what it counted, so a run whose ledger died fails instead.
    """
    options: dict[str, Any] = {
        "name": spec.ledger_name, "namespace": spec.namespace, "num_cpus": 0,
        "max_restarts": 0, "get_if_exists": reuse,
    }  # fmt: skip
    if lifetime is not None:
        options["lifetime"] = lifetime
    return _RemoteLedger.options(**options).remote(spec.n_actors)


def start_pool(
    *,
    n_actors: int,
    factory: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: Mapping[str, Any],
    ready_timeout_s: float,
) -> Pool:
    """Create the ledger and ``n_actors`` actors; do not wait for them (see `Pool.started`).

    The actors are named at once, so senders can find them and queue calls while they
    start: the Spark side of a run gets going in the meantime.
    """
    spec = new_spec(n_actors)
    ledger = start_ledger(spec)
    try:
        actors = start_actors(spec, factory=factory, args=args, kwargs=kwargs, options=options)
        return Pool(
            spec, actors, ledger, factory=factory, options=options,
            ready_timeout_s=ready_timeout_s,
        )  # fmt: skip
    except BaseException:
        ray.kill(ledger, no_restart=True)
        raise


def _init_error(exc: BaseException) -> str:
    """The user's exception from an actor that died in ``__init__``, as one line."""
    text = str(exc)
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith(("File ", "^", "Traceback")):
            return line
    return text.strip() or type(exc).__name__
