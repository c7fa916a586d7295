"""Contract case of the Spark bridge: `BridgePool`.

The call is a whole bridge run on the pool, `map_batches_with_actors` over a tiny
DataFrame with the driver transport (a Spark job collects it, the pool scores it), so
the hang check covers a run's own waits: with the pool's actors stopped, the run must
stop with `CallTimeoutError` within its ``timeout``. The poison call is a run whose
batch kills its actor's process every time it is called (as a native crash on one
input would): Ray re-sends it to the restarted actor ``MAX_TASK_RETRIES`` times, then
the run fails with `BridgeActorLostError` (a `PatternError`), and the restarted actor
serves the next run.

Needs the Ray-on-Spark cluster (a SparkSession in this process).
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import ray.cloudpickle

from patterns import BridgePool, map_batches_with_actors
from tests.contract_cases import ContractCase

POISON = -13
"""A batch holding this value kills the actor that runs it."""

SCHEMA = "x long"


class Echo:
    """Returns its batch, unless the batch holds `POISON`: then its process dies."""

    def __call__(self, batch: Any) -> Any:
        if (batch["x"] == POISON).any():
            os._exit(1)
        return batch


# Ray workers cannot import the tests package: the class travels by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _frame(values: list[int]) -> Any:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()  # the test session's (started by the launcher)
    return spark.createDataFrame([(v,) for v in values], SCHEMA)


def _run(pool: BridgePool, values: list[int], timeout: float | None) -> list[int]:
    out = map_batches_with_actors(
        _frame(values), pool, output_schema=SCHEMA, transport="driver", progress=False,
        timeout=timeout,
    )  # fmt: skip
    return sorted(row.x for row in out.collect())


def _call(pool: BridgePool, timeout: float | None) -> list[int]:
    got = _run(pool, [1, 2, 3], timeout)
    assert got == [1, 2, 3], got
    return got


def _poison(pool: BridgePool, timeout: float | None) -> Any:
    return _run(pool, [1, POISON], timeout)


def _pool() -> BridgePool:
    return BridgePool(
        Echo,
        n_actors=2,
        name=f"contract-bridge-{uuid.uuid4().hex[:8]}",
        actor_options={"num_cpus": 0.25},
    )


CASES = [
    ContractCase(
        id="BridgePool",
        facade=BridgePool,
        make=_pool,
        call=_call,
        bad_arguments=[
            (lambda: BridgePool(Echo, n_actors=0), ValueError),
            (lambda: BridgePool(Echo, n_actors="2"), TypeError),  # type: ignore[arg-type]
            (lambda: BridgePool(lambda batch: batch), TypeError),  # type: ignore[arg-type]
            (lambda: BridgePool(Echo, actor_options={"name": "x"}), ValueError),
            (lambda: BridgePool(Echo, namespace="ns"), ValueError),
            (lambda: BridgePool(Echo, timeout=0), ValueError),
            (lambda: BridgePool(Echo, ready_timeout_s=-1), ValueError),
        ],
        poison=_poison,
        attach=lambda pool: BridgePool.attach(pool.name),
        needs_spark=True,
    ),
]
