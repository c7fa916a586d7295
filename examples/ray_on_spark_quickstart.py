"""Start Ray on Spark, look at the cluster, and use Spark and Ray side by side.

Shown on the Ray on Spark page. ``main()`` expects a connected Ray-on-Spark
cluster that left at least one Spark executor free for Spark jobs, and the
active SparkSession that hosts it. Run the file to start such a cluster on
this machine.
"""

from __future__ import annotations

# --8<-- [start:imports]
import ray
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from launcher import count_alive_workers

# --8<-- [end:imports]

# The examples runner skips this file only on a plain local Ray without Spark.
REQUIRES_SPARK = True


# --8<-- [start:actor]
@ray.remote
class KeyTotals:
    """Running totals per key, kept between batches (what a UDF cannot do)."""

    def __init__(self) -> None:
        self.totals: dict[int, int] = {}

    def add(self, key: int, amount: int) -> None:
        self.totals[key] = self.totals.get(key, 0) + amount

    def snapshot(self) -> dict[int, int]:
        return dict(self.totals)


# --8<-- [end:actor]


def main() -> None:
    spark = SparkSession.getActiveSession()
    assert spark is not None, "this example needs the SparkSession hosting Ray"

    # --8<-- [start:nodes]
    nodes = [node for node in ray.nodes() if node["Alive"]]
    # Ray marks its head node with this resource; every other node is a worker.
    head = [n for n in nodes if "node:__internal_head__" in n["Resources"]]
    workers = [n for n in nodes if n not in head]

    assert len(head) == 1
    assert head[0]["Resources"].get("CPU", 0) == 0  # the head only coordinates
    assert len(workers) == count_alive_workers() >= 1  # one per long Spark task
    worker_cpus = sum(n["Resources"]["CPU"] for n in workers)
    assert ray.cluster_resources()["CPU"] == worker_cpus

    print("GCS (head) at", ray.get_runtime_context().gcs_address)
    for n in workers:
        print("worker", n["NodeManagerAddress"], "CPUs", n["Resources"]["CPU"])
    # --8<-- [end:nodes]

    # --8<-- [start:side_by_side]
    totals = KeyTotals.remote()  # lives on a Ray worker node...
    for batch in range(3):  # ...while Spark runs one job per batch elsewhere
        counts = (
            spark.range(batch * 1_000, (batch + 1) * 1_000)
            .groupBy((F.col("id") % 3).alias("key"))
            .count()
            .collect()
        )
        ray.get([totals.add.remote(row["key"], row["count"]) for row in counts])

    assert ray.get(totals.snapshot.remote()) == {0: 1_000, 1: 1_000, 2: 1_000}
    ray.kill(totals)
    # --8<-- [end:side_by_side]


if __name__ == "__main__":
    # --8<-- [start:script-launch]
    from launcher import RayOnSpark

    # Keep one Spark executor free: Ray's nodes hold the others while they run.
    with RayOnSpark(reserve_workers_for_spark=1) as cluster:
        print("Ray is up at", cluster.address)
        main()
    # The cluster, its Spark jobs and the embedded Spark are all stopped here.
    # --8<-- [end:script-launch]
