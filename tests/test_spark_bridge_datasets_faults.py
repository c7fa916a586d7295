"""Kill the Spark Python worker that is sending a partition to Ray; check `to_ray_dataset`.

Promise under test: the Dataset has every row exactly once, the killed attempt's blocks
(some already owned by the `BlockOwner`) are dropped, not added to the Dataset, and once
the Dataset is dropped the object store is back to where it was.

The DataFrame is slowed down upstream (a ``mapInArrow`` step that sleeps per batch of
200 rows) and every Arrow batch becomes a block (``block_bytes=1``), so the transfer of
a partition takes seconds and its blocks arrive one by one. A thread watches the
owner's actors and SIGKILLs the Spark Python worker (by the PID it delivered with) once
it has delivered three blocks of a partition: Spark sees the task fail and runs it
again. Cost: one Spark job of 8,000 rows with a retried task, about 15 s.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pyspark.cloudpickle
import pytest
import ray

from patterns import BlockOwner, to_ray_dataset
from tests._object_store import settled_store_bytes, wait_for_baseline

pytestmark = [
    pytest.mark.spark,
    pytest.mark.fault,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

TIMEOUT = 120  # seconds, for every wait
ROWS, BATCH_ROWS = 8_000, 200

# Workers cannot import `tests`: Ray and Spark send this module's classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
pyspark.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Slow:
    """A pass-through ``mapInArrow`` step that takes its time over each batch."""

    def __call__(self, batches: Any) -> Any:
        for batch in batches:
            # Slow enough that the kill lands mid-partition even when a progress call
            # takes a second or two on a loaded machine (at 0.1 s the 20 blocks of a
            # partition were all sent before the kill arrived once, at load 17).
            time.sleep(0.25)
            yield batch


class Killer(threading.Thread):
    """Watches the owner's open transfers; SIGKILLs the sender of the first with 3 blocks."""

    def __init__(self, owner: BlockOwner) -> None:
        super().__init__(daemon=True)
        self.owner = owner
        self.killed: tuple[int, int, int] | None = None  # (partition, attempt, pid)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                for (_, partition, attempt), (pid, blocks) in self.owner._progress().items():
                    if blocks >= 3 and pid > 0:
                        os.kill(pid, signal.SIGKILL)
                        self.killed = (partition, attempt, pid)
                        return
                time.sleep(0.05)
            raise AssertionError("no Spark task delivered three blocks within the timeout")
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture
def small_batches(ray_cluster: dict) -> Any:
    if ray_cluster["launcher"] is None:
        pytest.fail("Spark <-> Ray Dataset needs the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    spark = ray_cluster["launcher"].spark
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    saved = spark.conf.get(key)
    spark.conf.set(key, str(BATCH_ROWS))
    try:
        yield spark
    finally:
        spark.conf.set(key, saved)


def test_a_killed_python_worker_mid_transfer_costs_a_retry_not_a_wrong_dataset(
    small_batches: Any,
) -> None:
    spark = small_batches
    source = spark.range(ROWS, numPartitions=2).selectExpr("id", "cast(id AS string) AS s")
    slow = source.mapInArrow(Slow(), source.schema)
    with BlockOwner(timeout=TIMEOUT) as owner:
        baseline = settled_store_bytes()
        killer = Killer(owner)
        killer.start()
        ds = to_ray_dataset(slow, owner=owner, block_bytes=1)
        killer.join(timeout=TIMEOUT)
        assert killer.error is None, killer.error
        assert killer.killed is not None
        partition, attempt, pid = killer.killed

        # Every row once: the killed attempt's rows are not in the Dataset.
        ids = sorted(row["id"] for row in ds.iter_rows())
        assert ids == list(range(ROWS))
        assert ds.count() == ROWS

        # The killed attempt had delivered blocks; they were dropped, a retry was kept.
        [record] = [r for r in owner._history() if r.kept]
        assert record.senders[(partition, attempt)] == pid
        assert record.dropped[(partition, attempt)] >= 3
        kept = [a for (p, a) in record.kept if p == partition]
        assert kept and kept[0] != attempt
        assert owner.holding() == 0

        # Dropping the Dataset frees every block, the retried partition's included.
        del ds
        wait_for_baseline(baseline, after="the Dataset was dropped")
