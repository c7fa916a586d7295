"""A run on the driver: start the pool, move the data by one transport, watch, clean up.

- ``transport="executor"``: the DataFrame goes through ``mapInArrow``; each Spark task
  sends its partition's Arrow batches to the pool (`patterns.spark_bridge._executor`).
  For groups, the rows are first repartitioned by key, unless Spark's partitioning
  already groups them, and sorted by key within each partition, so every group is
  whole in one task. The result is materialised (``localCheckpoint``) before the pool
  stops, so the DataFrame returned never needs the pool again.
- ``transport="driver"``: the DataFrame is collected as one Arrow table on the driver,
  sent through the pool from here, and the results become a DataFrame
  (``createDataFrame``). For data that fits the driver.

A watcher thread reads the run's ledger once a second: it prints progress lines and,
when a batch failed for good, cancels the Spark job so that Spark's task retries do not
repeat it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import ray

from patterns import _compat
from patterns.errors import CallTimeoutError, PatternError
from patterns.spark_bridge._errors import (
    BridgeActorLostError,
    BridgeBatchError,
    BridgeError,
    BridgeSchemaError,
)
from patterns.spark_bridge._executor import ExecutorPlan, driver_auth, run_partition
from patterns.spark_bridge._ledger import BridgeStats
from patterns.spark_bridge._pool import Pool, start_pool
from patterns.spark_bridge._schema import Target
from patterns.spark_bridge._send import LEDGER_TIMEOUT_S, RunPlan, send_all

__all__ = ["RunSettings", "run"]

# How often the watcher reads the ledger (also the delay before a failed run is cancelled).
POLL_S = 1.0


@dataclass(frozen=True)
class RunSettings:
    """A validated call of one of the public functions."""

    label: str  # the public function's name, for progress lines
    mode: str  # "batches" or "groups"
    key_names: tuple[str, ...]
    factory: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    struct: Any  # the output StructType
    target: Target
    n_actors: int
    batch_size: int
    max_in_flight: int
    transport: str
    actor_options: dict[str, Any]
    progress: bool | None
    progress_interval_s: float
    ray_address: str | None
    executor_idle_s: float
    ready_timeout_s: float
    num_partitions: int | None
    key_affinity: bool = True
    shared: Any = None  # a BridgePool whose actors the run uses (and does not stop)
    timeout: float | None = 60.0  # longest wait for one reply from the pool (None: no bound)

    @property
    def retries(self) -> int:
        """Ray's re-sends of a killed actor's call (the actors' ``max_task_retries``)."""
        return int(self.actor_options.get("max_task_retries", 0))

    def who(self, pool: Pool) -> str:
        """How errors name the pool: the BridgePool's name, or the run's own pool."""
        if self.shared is not None:
            return str(self.shared._who)
        return f"{self.label} pool {pool.spec.run!r}"


class _Watcher:
    """Reads the ledger every second: progress lines, and cancels the job on a failure."""

    def __init__(
        self,
        pool: Pool,
        settings: RunSettings,
        *,
        on_failure: Any = None,
        watch_start: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self._pool = pool
        self._watch_start = watch_start
        self.pool_error: BridgeError | None = None
        self._settings = settings
        self._on_failure = on_failure
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._began = time.monotonic()
        self.total: int | None = None  # rows, when the transport knows it
        self.printed = 0
        self._thread = threading.Thread(target=self._loop, name="spark-bridge-watch", daemon=True)

    def __enter__(self) -> _Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=LEDGER_TIMEOUT_S)

    def line(self, summary: dict[str, Any], *, final: bool = False) -> str:
        s = self._settings
        elapsed = time.monotonic() - self._began
        rows = f"{summary['rows_in']:,}"
        if self.total is not None:
            rows += f"/{self.total:,}"
        what = f"{summary['groups']:,} groups, " if s.mode == "groups" else ""
        per_actor = " ".join(str(n) for n in summary["batches_per_actor"])
        text = (
            f"[spark-bridge {elapsed:6.1f}s] {s.label} ({s.transport}): {what}{rows} rows in "
            f"{summary['batches']:,} batches; per actor [{per_actor}]"
        )
        if summary["batches_rerun"] or summary["batches_resent"]:
            text += f"; re-run {summary['batches_rerun']}, re-sent {summary['batches_resent']}"
        return text + ("; done" if final else "")

    def say(self, summary: dict[str, Any], *, final: bool = False) -> None:
        print(self.line(summary, final=final), file=self._stream, flush=True)
        self.printed += 1

    def _loop(self) -> None:
        progress = self._settings.progress
        interval = self._settings.progress_interval_s
        next_line = self._began + interval
        cancelled = False
        while not self._stop.wait(POLL_S):
            if self._watch_start:  # the job runs while the actors start: did they?
                try:
                    self._watch_start = not self._pool.started()
                except BridgeError as error:
                    self.pool_error, self._watch_start = error, False
                    if self._on_failure is not None and not cancelled:
                        cancelled = True
                        with contextlib.suppress(Exception):
                            self._on_failure()
                    return
            try:
                summary: dict[str, Any] = ray.get(
                    self._pool.ledger.summary(), timeout=LEDGER_TIMEOUT_S
                )
            except Exception:  # the ledger is gone: the run is ending
                return
            if summary["failed"] and not cancelled and self._on_failure is not None:
                cancelled = True
                with contextlib.suppress(Exception):
                    self._on_failure()
            if progress is not False and time.monotonic() >= next_line:
                self.say(summary)
                next_line += interval


@contextlib.contextmanager
def _job_group(spark: Any, group: str, description: str) -> Iterator[None]:
    """Run this thread's Spark jobs in ``group`` (so it can be cancelled), then restore."""
    sc = spark.sparkContext
    keys = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")
    saved = {key: sc.getLocalProperty(key) for key in keys}
    sc.setJobGroup(group, description, interruptOnCancel=True)
    try:
        yield
    finally:
        for key, value in saved.items():
            sc.setLocalProperty(key, value)


def _executor_transport(df: Any, settings: RunSettings, pool: Pool, group: str) -> Any:
    address = settings.ray_address or ray.get_runtime_context().gcs_address
    plan = ExecutorPlan(
        RunPlan(
            pool.spec, settings.mode, settings.key_names, settings.batch_size,
            settings.max_in_flight, settings.target, settings.key_affinity,
            timeout=settings.timeout, startup_s=settings.ready_timeout_s,
            who=settings.who(pool), retries=settings.retries,
        ),
        address,
        driver_auth(),
        settings.executor_idle_s,
        settings.ready_timeout_s,
    )  # fmt: skip
    source = by_key(df, settings) if settings.mode == "groups" else df
    mapped = source.mapInArrow(functools.partial(run_partition, plan), settings.struct)
    with _job_group(df.sparkSession, group, f"{settings.label} {pool.spec.run}"):
        # Materialised now, while the pool lives; later actions never call it again.
        return mapped.localCheckpoint(eager=True)


def _exchanges(frame: Any) -> int:
    """How many exchanges (shuffles) Spark's physical plan of ``frame`` holds."""
    plan = str(frame._jdf.queryExecution().executedPlan().toString())
    return len(re.findall(r"\bExchange\b", plan))


def grouped_by(df: Any, keys: list[str]) -> bool:
    """True if Spark's partitioning of ``df`` already puts all rows of a key in one partition.

    Asked of Spark's planner: a ``groupBy`` on the keys needs no shuffle of its own
    (``df`` is hash-partitioned by the keys or a part of them, a single partition, ...).
    False when the plan cannot be read (the safe answer: the bridge shuffles).
    """
    try:
        return _exchanges(df.groupBy(*keys).count()) == _exchanges(df)
    except Exception:  # not a classic PySpark DataFrame (no JVM plan to read)
        return False


def by_key(df: Any, settings: RunSettings) -> Any:
    """``df`` with every group whole in one partition and sorted by key within it.

    The rows are repartitioned by key only when they have to be: ``num_partitions``
    given, or Spark's partitioning does not already group them (`grouped_by`).
    """
    keys = list(settings.key_names)
    if settings.num_partitions is not None or not grouped_by(df, keys):
        partitions = settings.num_partitions or max(
            df.sparkSession.sparkContext.defaultParallelism, settings.n_actors
        )
        df = df.repartition(partitions, *keys)
    return df.sortWithinPartitions(*keys)  # free when already sorted (RemoveRedundantSorts)


def _driver_transport(df: Any, settings: RunSettings, table: Any, pool: Pool) -> Any:
    import pyarrow as pa

    if settings.mode == "groups":
        order = [(name, "ascending") for name in settings.key_names]
        table = table.sort_by(order)  # nulls at the end, together: all a group needs
    plan = RunPlan(
        pool.spec,
        settings.mode,
        settings.key_names,
        settings.batch_size,
        settings.max_in_flight,
        settings.target,
        settings.key_affinity,
        timeout=settings.timeout,
        who=settings.who(pool),
        retries=settings.retries,
    )
    results = list(
        send_all(plan, table.to_batches(), actors=pool.actors, ledger=pool.ledger, partition=0)
    )
    out = pa.concat_tables(results) if results else settings.target.empty()
    return _compat.create_dataframe_from_arrow(df.sparkSession, out, settings.struct)


def _failure_error(failure: dict[str, Any]) -> PatternError:
    if failure.get("timeout"):
        return CallTimeoutError(failure["message"])
    if failure.get("lost"):
        return BridgeActorLostError(
            failure["message"], key=failure["key"], actor=failure["actor"],
            remote_type=failure["remote_type"], remote_message=failure["remote_message"],
        )  # fmt: skip
    if failure.get("schema"):
        return BridgeSchemaError.mismatch(
            failure["key"],
            actor=failure["actor"],
            column=failure["column"],
            expected=failure["expected"],
            got=failure["got"],
        )
    return BridgeBatchError.from_remote(
        failure["key"],
        actor=failure["actor"],
        remote_type=failure["remote_type"],
        remote_message=failure["remote_message"],
        remote_traceback=failure["remote_traceback"],
    )


def _ledger_failure(pool: Pool) -> dict[str, Any] | None:
    try:
        failure: dict[str, Any] | None = ray.get(pool.ledger.failure(), timeout=LEDGER_TIMEOUT_S)
        if failure is None:
            failure = ray.get(pool.ledger.last_trouble(), timeout=LEDGER_TIMEOUT_S)
        return failure
    except Exception:
        return None


def run(df: Any, settings: RunSettings, stats: BridgeStats | None) -> Any:
    """Run the validated call; return the result DataFrame (materialised)."""
    began = time.monotonic()
    if settings.shared is not None:
        pool = settings.shared._run_pool()  # its actors, this run's ledger
    else:
        # The actors start while Spark does its part (collect, or the job's first tasks).
        pool = start_pool(
            n_actors=settings.n_actors,
            factory=settings.factory,
            args=settings.args,
            kwargs=settings.kwargs,
            options=settings.actor_options,
            ready_timeout_s=settings.ready_timeout_s,
        )
    summary: dict[str, Any] | None = None
    try:
        if settings.transport == "driver":
            table = _compat.collect_as_arrow(df)  # the one Spark job of this transport
            if table.num_rows == 0:
                return _compat.create_dataframe_from_arrow(
                    df.sparkSession, settings.target.empty(), settings.struct
                )
            pool.wait_started()
            watcher = _Watcher(pool, settings)
            watcher.total = table.num_rows
            with watcher:
                result = _driver_transport(df, settings, table, pool)
        else:
            group = f"spark-bridge-{uuid.uuid4().hex[:12]}"
            cancel = functools.partial(df.sparkSession.sparkContext.cancelJobGroup, group)
            watcher = _Watcher(pool, settings, on_failure=cancel, watch_start=True)
            try:
                with watcher:
                    result = _executor_transport(df, settings, pool, group)
            except Exception as exc:  # Spark's error: the pool or the ledger says why
                if watcher.pool_error is not None:
                    raise watcher.pool_error from exc
                pool.started(wait_s=5.0)  # raises if an actor failed to start
                failure = _ledger_failure(pool)
                if failure is None:
                    raise
                raise _failure_error(failure) from exc
        summary = ray.get(pool.ledger.summary(), timeout=LEDGER_TIMEOUT_S)
        if settings.progress is True or (settings.progress is None and watcher.printed):
            watcher.say(summary, final=True)
        return result
    finally:
        pool.kill()
        if stats is not None:
            if summary is not None:
                stats.update(summary)
            stats.update(
                {
                    "transport": settings.transport,
                    "n_actors": settings.n_actors,
                    "seconds": time.monotonic() - began,
                }
            )
