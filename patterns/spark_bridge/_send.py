"""One sender's loop, shared by both transports: batches out to the pool, results back.

The driver transport runs it once over the whole collected table; the executor
transport runs it in every Spark task over that task's partition. It cuts the input
into calls (fixed-size batches, or whole groups packed per actor), sends each call to
its actor with `Dispatcher`'s back-pressure, yields each result table as it comes back,
and tells the ledger what came back. A failed call becomes a `BridgeBatchError` naming
its batch or group key; a call that crashed its actor on every attempt a
`BridgeActorLostError`; no reply within the run's ``timeout`` a `CallTimeoutError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import ray
from ray.actor import ActorHandle

from patterns._calls import DEFAULT_TIMEOUT_S
from patterns.errors import CallTimeoutError
from patterns.spark_bridge._dispatch import Dispatcher, Finished
from patterns.spark_bridge._errors import (
    BridgeActorLostError,
    BridgeBatchError,
    BridgeError,
    describe_key,
)
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
    timeout: float | None = DEFAULT_TIMEOUT_S  # longest wait for a reply (None: no bound)
    startup_s: float = 0.0  # more for the first reply, while the actors may be starting
    who: str = "BridgePool"  # how errors name the pool
    retries: int = 3  # the actors' max_task_retries: Ray's re-sends of a killed actor's call


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
    streams = plan.spec.n_actors if plan.affinity else 1
    packer = GroupPacker(plan.key_names, n_actors=streams, batch_size=plan.batch_size)
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
        ref = self._ledger.done(
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
        "lost": isinstance(error, BridgeActorLostError),
        "timeout": False,
    }


def _timeout_record(error: CallTimeoutError) -> dict[str, Any]:
    return {"message": str(error), "key": None, "actor": None, "timeout": True}


def _result(
    finished: Finished[Call],
    ledger: Any,
    plan: RunPlan,
    method: str,
    resend: Callable[[], Any] | None = None,
) -> pa.Table:
    """The result table of a finished call, or the call's failure as a BridgeBatchError.

    ``resend`` sends the call again to the same actor: a call Ray gave up on after its
    re-sends is sent once more before it is named a poison call (see below).
    """
    from ray.exceptions import RayActorError, RayTaskError

    call = finished.meta
    try:
        table: pa.Table = ray.get(finished.pending)
        return table
    except RayActorError as exc:
        if plan.retries <= 0 or resend is None:
            raise _lost(finished, ledger, plan, method, exc) from exc
        # Calls queued on an actor die with it when another call crashes it, and Ray
        # re-sends them all: a call queued behind a poison call can use up its re-sends
        # at the poison call's crashes. Once more, queued behind no crash of its own
        # making: an innocent call now runs, a poison call crashes its actor again.
        from ray.exceptions import GetTimeoutError

        # The actor restarts first: its start-up may take as long as the first reply.
        bound = None if plan.timeout is None else plan.timeout + plan.startup_s
        try:
            table = ray.get(resend(), timeout=bound)
            return table
        except RayActorError as again:
            raise _lost(finished, ledger, plan, method, again, resent=True) from again
        except GetTimeoutError:
            msg = (
                f"{plan.who}: {method} of {describe_key(call.key)} got no reply within "
                f"{bound:g} s from actor {finished.actor} when sent again after its actor "
                "was lost (raise timeout=, or None for no bound)"
            )
            raise CallTimeoutError(msg) from None
        except RayTaskError as again:
            _raise_batch_error(again, ledger)
    except RayTaskError as exc:
        _raise_batch_error(exc, ledger)


def _raise_batch_error(exc: Exception, ledger: Any) -> NoReturn:
    """Raise a failed call's error; the batch's own error is recorded first.

    The batch's own error (the user's code, or a result of the wrong shape): retrying
    cannot help, so the run stops here.
    """
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BridgeBatchError):
        ray.get(ledger.fail(_failure_record(cause)), timeout=LEDGER_TIMEOUT_S)
        raise cause.with_traceback(None) from None
    raise exc


def _lost(
    finished: Finished[Call],
    ledger: Any,
    plan: RunPlan,
    method: str,
    exc: Exception,
    *,
    resent: bool = False,
) -> BridgeActorLostError:
    """The actor died and Ray's re-sends are used up (or it cannot restart).

    After re-sends (max_task_retries > 0, and the call sent once more) the call crashed
    its actor every time: a poison batch, which stops the run (a Spark task retry would
    only crash it again). Without re-sends a single crash got here: a Spark task retry
    may still succeed, so it is only "trouble" for the ledger.
    """
    error = BridgeActorLostError.lost(
        finished.meta.key,
        who=plan.who,
        actor=finished.actor,
        method=method,
        cause=f"{type(exc).__name__}: {_first_line(str(exc))}",
        attempts=1 + max(plan.retries, 0) + int(resent),
    )
    report = ledger.fail if plan.retries > 0 else ledger.trouble
    try:
        ray.get(report(_failure_record(error)), timeout=LEDGER_TIMEOUT_S)
    except Exception:  # the ledger is gone too: the error raised still says what failed
        pass
    return error


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
        ledger: The run's ledger (a `RunLedger`).
        partition: The partition's number (0 on the driver), part of every batch id.
        connected: This process connected to Ray for this partition (for the stats).

    Raises:
        BridgeBatchError: A call failed (the first one to fail).
    """
    # Ties go first to the actor numbered like the partition: Spark tasks running at
    # once (each maybe a single batch) spread over the pool instead of all queueing on 0.
    method = "run_batch" if plan.mode == "batches" else "run_groups"
    dispatcher: Dispatcher[Call] = Dispatcher(
        len(actors), max_in_flight=plan.max_in_flight, timeout=plan.timeout,
        startup_s=plan.startup_s, who=plan.who, method=method, first=partition,
    )  # fmt: skip
    reports = _Reports(ledger, connected=connected)
    run = (plan.spec.ledger_ref, plan.target)  # every call names its run (see PoolActor)

    arguments: dict[str, tuple[Any, ...]] = {}  # of the calls in flight, by batch id

    def collect(finished: Finished[Call]) -> pa.Table:
        args = arguments.pop(finished.meta.batch)

        def resend() -> Any:
            # No re-sends of the re-send: a poison call crashes its actor once more only.
            call_again = getattr(actors[finished.actor], method).options(max_task_retries=0)
            return call_again.remote(*run, *args)

        table = _result(finished, ledger, plan, method, resend)
        call = finished.meta
        done = Done(call.batch, finished.actor, call.rows, table.num_rows, call.groups)
        reports.add(done, max(dispatcher.peak_in_flight))
        return table

    try:
        for call, actor, args in _calls(plan, batches, partition):

            def send(chosen: int, args: tuple[Any, ...] = args) -> Any:
                return getattr(actors[chosen], method).remote(*run, *args)

            arguments[call.batch] = args

            for finished in dispatcher.send(actor, send, call):
                yield collect(finished)
        for finished in dispatcher.drain():
            yield collect(finished)
    except CallTimeoutError as exc:
        # A stuck actor: the run stops (the driver raises this, and Spark's task retries
        # send nothing more to the stuck actor: see check_not_failed).
        try:
            ray.get(ledger.fail(_timeout_record(exc)), timeout=LEDGER_TIMEOUT_S)
        except Exception:  # the ledger is gone too: the error below still says what failed
            pass
        raise
    reports.send(max(dispatcher.peak_in_flight, default=0), wait=True)


def check_not_failed(ledger: Any) -> None:
    """Raise at once if the run already failed (a Spark retry need not re-send anything)."""
    failure: dict[str, Any] | None = ray.get(ledger.failure(), timeout=LEDGER_TIMEOUT_S)
    if failure is not None:
        msg = f"the run already failed, this task sends nothing: {failure['message']}"
        raise BridgeError(msg)
