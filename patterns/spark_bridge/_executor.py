"""The executor transport's side in Spark: Python workers that connect to Ray and call the pool.

Spark runs `run_partition` in its Python workers (``mapInArrow``), one call per
partition. A Python worker serves many tasks in turn, so it connects to the Ray
cluster once (the first task it runs for a bridge), keeps the connection while tasks
keep coming, and leaves the cluster after ``idle_s`` seconds without bridge work, so
no connection outlives its use for long. The driver's Ray auth settings travel in the
run plan: an executor whose environment has no token (a Spark cluster the launcher did
not start) still gets in.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray
from ray.actor import ActorHandle

from patterns.spark_bridge import _connection
from patterns.spark_bridge._errors import BridgeError
from patterns.spark_bridge._ledger import RunLedger
from patterns.spark_bridge._pool import PoolSpec
from patterns.spark_bridge._send import RunPlan, check_not_failed, send_all

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["AuthSettings", "ExecutorPlan", "driver_auth", "lease", "run_partition"]


@dataclass(frozen=True)
class AuthSettings:
    """How to authenticate to the Ray cluster: the driver's mode and token.

    ``mode`` None leaves the executor's own environment alone. The token is kept out
    of ``repr`` so it never lands in a log.
    """

    mode: str | None = None
    token: str | None = field(default=None, repr=False)

    def apply(self) -> None:
        """Set this process's Ray auth environment, and make Ray re-read it."""
        if self.mode is None:
            return
        os.environ["RAY_AUTH_MODE"] = self.mode
        if self.token is not None:
            os.environ["RAY_AUTH_TOKEN"] = self.token
            os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        try:  # Ray caches the mode and the token per process
            from ray._raylet import (  # type: ignore[attr-defined]
                AuthenticationTokenLoader,
                Config,
            )

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        except Exception:  # a Ray without these hooks caches nothing to reset
            pass


def driver_auth() -> AuthSettings:
    """The auth settings this (driver) process connected with."""
    mode = os.environ.get("RAY_AUTH_MODE")
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled

        token_auth = bool(is_token_auth_enabled())
    except Exception:  # an older Ray: trust the environment
        token_auth = mode == "token"
    if not token_auth:
        return AuthSettings(mode)
    token = os.environ.get("RAY_AUTH_TOKEN")
    if token is None:
        try:
            from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

            token = AuthenticationTokenLoader.instance().get_raw_token(ignore_auth_mode=True)
        except Exception:
            path = os.environ.get("RAY_AUTH_TOKEN_PATH")
            if path and os.path.exists(path):
                with open(path) as handle:
                    token = handle.read().strip()
    return AuthSettings("token", token or None)


@dataclass(frozen=True)
class ExecutorPlan:
    """Everything a Spark task needs: the run, where Ray is, how to log in."""

    run: RunPlan
    address: str
    auth: AuthSettings
    idle_s: float
    ready_timeout_s: float


@contextlib.contextmanager
def lease(address: str, auth: AuthSettings, idle_s: float) -> Iterator[bool]:
    """Use this process's Ray connection for one task; yields True if it connected now."""
    connected_now = _connection.CONNECTION.acquire(address, auth.apply, idle_s)
    try:
        yield connected_now
    finally:
        _connection.CONNECTION.release()


def _handles(spec: PoolSpec) -> tuple[list[ActorHandle[Any]], RunLedger]:
    cached = _connection.CONNECTION.handles.get(spec.run)
    if cached is None:
        actors = [
            ray.get_actor(spec.actor_name(i), namespace=spec.namespace)
            for i in range(spec.n_actors)
        ]
        ledger = RunLedger(ray.get_actor(spec.ledger_name, namespace=spec.namespace), spec.run)
        _connection.CONNECTION.handles.clear()  # one run at a time: keep only this run's handles
        cached = _connection.CONNECTION.handles[spec.run] = (actors, ledger)
    return cached


def _wait_for_pool(actors: list[ActorHandle[Any]], timeout: float) -> None:
    from ray.exceptions import ActorUnavailableError

    deadline = time.monotonic() + timeout
    for actor in actors:
        while True:
            try:
                ray.get(actor.ready.remote(), timeout=max(0.1, deadline - time.monotonic()))
                break
            except ActorUnavailableError:  # restarting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def run_partition(
    plan: ExecutorPlan, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: send this partition through the pool, yield the results."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    with lease(plan.address, plan.auth, plan.idle_s) as connected_now:
        try:
            actors, ledger = _handles(plan.run.spec)
        except ValueError as exc:
            msg = f"the bridge's actor pool {plan.run.spec.run} is gone (the run ended?): {exc}"
            raise BridgeError(msg) from None
        check_not_failed(ledger)
        if context is not None and context.attemptNumber() > 0:
            # A retry, maybe after an actor died: wait until the pool is back rather
            # than fail again while it restarts.
            _wait_for_pool(actors, plan.ready_timeout_s)
        for table in send_all(
            plan.run,
            batches,
            actors=actors,
            ledger=ledger,
            partition=partition,
            connected=connected_now,
        ):
            yield from table.to_batches()
