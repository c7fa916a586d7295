"""One sender's loop, shared by both transports: batches out to the pool, results back.

The driver transport runs it once over the whole collected table; the executor
transport runs it in every Spark task over that task's partition. It cuts the input
into calls (fixed-size batches, or whole groups packed per actor), sends each call to
its actor with `Dispatcher`'s back-pressure, yields each result table as it comes back,
and tells the ledger what came back. A failed call becomes a `BridgeBatchError` naming
its batch or group key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
from ray.actor import ActorHandle

from patterns.spark_bridge._dispatch import Dispatcher, Finished
from patterns.spark_bridge._errors import BridgeBatchError, BridgeError
from patterns.spark_bridge._keys import GroupPacker, rebatch
from patterns.spark_bridge._ledger import Done
from patterns.spark_bridge._pool import PoolSpec
from patterns.spark_bridge._schema import Target

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Call", "RunPlan", "send_all"]

# Seconds to wait for the ledger to store a report before giving up on it.
LEDGER_TIMEOUT_S = 60.0
# Done reports are sent in bundles: at least this often, or this many at a time.
REPORT_EVERY_S = 1.0
REPORT_BATCHES = 64


@dataclass(frozen=True)
class RunPlan:
    """What a sender needs to know about a run (it travels inside the Spark job)."""

    spec: PoolSpec
    mode: str  # "batches" or "groups"
    key_names: tuple[str, ...]
    batch_size: int
    max_in_flight: int
    target: Target  # the output schema, checked in the actor
    affinity: bool = True  # groups: each key to actor_for_key(key); else the least loaded


@dataclass(frozen=True)
class Call:
    """One call to the pool: its batch id, how to name it in errors, its size."""

    batch: str
    key: object  # the group key (tuple) of a single group, else a description
    rows: int
    groups: int


def _calls(
    plan: RunPlan, batches: Iterable[pa.RecordBatch], partition: int
) -> Iterator[tuple[Call, int | None, tuple[Any, ...]]]:
    """(call, actor or None for "least loaded", arguments of the actor method)."""
    if plan.mode == "batches":
        first = 0
        for number, table in enumerate(rebatch(batches, plan.batch_size)):
            last = first + table.num_rows - 1
            where = f"partition {partition}, batch {number} (rows {first}-{last})"
            batch = f"p{partition}:b{number}"
            first += table.num_rows
            yield Call(batch, where, table.num_rows, 0), None, (batch, where, table)
        return
    import pyarrow as pa

    # Without affinity every group is packed into one stream; the dispatcher places it.
    streams = plan.spec.pool_size if plan.affinity else 1
    packer = GroupPacker(plan.key_names, pool_size=streams, batch_size=plan.batch_size)
    number = 0

    def calls_for(packs: list[Any]) -> Iterator[tuple[Call, int | None, tuple[Any, ...]]]:
        nonlocal number
        for pack in packs:
            batch = f"p{partition}:g{number}"
            number += 1
            if len(pack.keys) == 1:
                key: object = pack.keys[0]
            else:
                key = f"{len(pack.keys)} groups, keys {pack.keys[0]!r} to {pack.keys[-1]!r}"
            table = pa.concat_tables(pack.parts)
            call = Call(batch, key, table.num_rows, len(pack.keys))
            actor = pack.actor if plan.affinity else None
            yield call, actor, (batch, pack.keys, pack.sizes, table)

    for record_batch in batches:
        yield from calls_for(packer.add(record_batch))
    yield from calls_for(packer.finish())


class _Reports:
    """Done reports for the ledger, sent in bundles without waiting (the last one waits)."""

    def __init__(self, ledger: Any, *, connected: bool) -> None:
        self._ledger = ledger
        self._held: list[Done] = []
        self._sent_at = time.monotonic()
        self._connected = connected
        self._sender = os.getpid()

    def add(self, done: Done, peak: int) -> None:
        self._held.append(done)
        if len(self._held) >= REPORT_BATCHES or time.monotonic() - self._sent_at >= REPORT_EVERY_S:
            self.send(peak)

    def send(self, peak: int, *, wait: bool = False) -> None:
        ref = self._ledger.done.remote(
            self._held, sender=self._sender, connected=self._connected, peak=peak
        )
        self._held, self._connected, self._sent_at = [], False, time.monotonic()
        if wait:
            ray.get(ref, timeout=LEDGER_TIMEOUT_S)


def _failure_record(error: BridgeBatchError) -> dict[str, Any]:
    return {
        "message": str(error),
        "key": error.key,
        "actor": error.actor,
        "remote_type": error.remote_type,
        "remote_message": error.remote_message,
        "remote_traceback": error.remote_traceback,
        "schema": getattr(error, "column", False) is not False,
        "column": getattr(error, "column", None),
        "expected": getattr(error, "expected", ""),
        "got": getattr(error, "got", ""),
    }


def _result(finished: Finished[Call], ledger: Any) -> pa.Table:
    """The result table of a finished call, or the call's failure as a BridgeBatchError."""
    from ray.exceptions import RayActorError, RayTaskError

    call = finished.meta
    try:
        table: pa.Table = ray.get(finished.pending)
        return table
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, BridgeBatchError):
            # The batch's own error (the user's code, or a result of the wrong shape):
            # retrying cannot help, so the run stops here.
            ray.get(ledger.fail.remote(_failure_record(cause)), timeout=LEDGER_TIMEOUT_S)
            raise cause.with_traceback(None) from None
        raise
    except RayActorError as exc:
        # The actor died and Ray's re-sends are used up (or it cannot restart): a
        # Spark task retry may still succeed, so this is only "trouble" for the ledger.
        error = BridgeBatchError.from_remote(
            call.key,
            actor=finished.actor,
            remote_type=type(exc).__name__,
            remote_message=_first_line(str(exc)),
        )
        try:
            ray.get(ledger.trouble.remote(_failure_record(error)), timeout=LEDGER_TIMEOUT_S)
        except Exception:  # the ledger is gone too: the error below still says what failed
            pass
        raise error from exc


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def send_all(
    plan: RunPlan,
    batches: Iterable[pa.RecordBatch],
    *,
    actors: list[ActorHandle[Any]],
    ledger: Any,
    partition: int,
    connected: bool = False,
) -> Iterator[pa.Table]:
    """Send the batches of one partition through the pool; yield each result table.

    Args:
        plan: The run.
        batches: The partition's rows (for groups: sorted so equal keys are adjacent).
        actors: Handles of the pool actors, by index.
        ledger: Handle of the run's ledger.
        partition: The partition's number (0 on the driver), part of every batch id.
        connected: This process connected to Ray for this partition (for the stats).

    Raises:
        BridgeBatchError: A call failed (the first one to fail).
    """
    # Ties go first to the actor numbered like the partition: Spark tasks running at
    # once (each maybe a single batch) spread over the pool instead of all queueing on 0.
    dispatcher: Dispatcher[Call] = Dispatcher(
        len(actors), max_in_flight=plan.max_in_flight, first=partition
    )
    reports = _Reports(ledger, connected=connected)
    method = "run_batch" if plan.mode == "batches" else "run_groups"
    run = (plan.spec.ledger_name, plan.target)  # every call names its run (see PoolActor)

    def collect(finished: Finished[Call]) -> pa.Table:
        table = _result(finished, ledger)
        call = finished.meta
        done = Done(call.batch, finished.actor, call.rows, table.num_rows, call.groups)
        reports.add(done, max(dispatcher.peak_in_flight))
        return table

    for call, actor, args in _calls(plan, batches, partition):

        def send(chosen: int, args: tuple[Any, ...] = args) -> Any:
            return getattr(actors[chosen], method).remote(*run, *args)

        for finished in dispatcher.send(actor, send, call):
            yield collect(finished)
    for finished in dispatcher.drain():
        yield collect(finished)
    reports.send(max(dispatcher.peak_in_flight, default=0), wait=True)


def check_not_failed(ledger: Any) -> None:
    """Raise at once if the run already failed (a Spark retry need not re-send anything)."""
    failure: dict[str, Any] | None = ray.get(ledger.failure.remote(), timeout=LEDGER_TIMEOUT_S)
    if failure is not None:
        msg = f"the run already failed, this task sends nothing: {failure['message']}"
        raise BridgeError(msg)
