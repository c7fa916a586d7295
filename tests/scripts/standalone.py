"""Subprocess for tests/test_launcher_standalone.py: Ray on a standalone Spark.

argv[1] is the master URL of a Spark standalone cluster already running on
127.0.0.1. Plans from the live session, launches (one worker kept for Spark
jobs), checks, runs a Spark bridge over the standalone executors, shuts down,
and prints JSON lines.
"""

import json
import sys

import pandas as pd
import ray
from pyspark.sql import SparkSession

from launcher import ClusterSpec, RayOnSpark, count_alive_workers
from patterns import BridgeStats, map_groups_with_actors


@ray.remote
def double(x):
    return 2 * x


class _GroupSum:
    """Spark bridge work: one row per group."""

    def __call__(self, key, group):
        return pd.DataFrame({"k": [key[0]], "n": [len(group)], "s": [int(group["id"].sum())]})


def _bridge(frame):
    stats = BridgeStats()
    out = map_groups_with_actors(
        frame, "k", _GroupSum, output_schema="k long, n long, s long",
        actor_options={"num_cpus": 0.5}, stats=stats,
    ).collect()  # fmt: skip
    expected = {k: (100, sum(range(k, 1000, 10))) for k in range(10)}
    return {r.k: (r.n, r.s) for r in out} == expected, stats.connections


def main(master):
    spark = (
        SparkSession.builder.master(master)
        .appName("launcher-standalone-test")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.executor.memory", "1g")
        .config("spark.executor.cores", "1")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    try:
        spec = ClusterSpec.from_spark(spark)
        frame = spark.range(1000).selectExpr("id", "id % 10 AS k")
        try:  # before the launch: the bridge refuses to start without Ray
            _bridge(frame)
            refused = False
        except RuntimeError as error:
            refused = "Ray is not connected" in str(error)
        print(json.dumps({"bridge_refused_without_ray": refused}), flush=True)
        # One worker stays with Spark: the bridge's tasks run there, next to Ray's nodes.
        with RayOnSpark(spark=spark, reserve_workers_for_spark=1, progress=True) as cluster:
            result = ray.get([double.remote(i) for i in range(8)], timeout=120)
            bridge_ok, connections = _bridge(frame)
            print(
                json.dumps(
                    {
                        "spec_workers": spec.workers,
                        "spec_cores": spec.cores_per_worker,
                        "planned_workers": cluster.plan.ray_workers,
                        "alive_workers": count_alive_workers(),
                        "result": result,
                        "start_s": cluster.timings["start_s"],
                        "bridge_ok": bridge_ok,
                        "bridge_connections": connections,
                    }
                ),
                flush=True,
            )
        # A session we did not start must survive the launcher's shutdown.
        print(json.dumps({"spark_still_usable": spark.range(10).count() == 10}), flush=True)
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1])
