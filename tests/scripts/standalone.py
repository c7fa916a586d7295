"""Subprocess for tests/test_launcher_standalone.py: Ray on a standalone Spark.

argv[1] is the master URL of a Spark standalone cluster already running on
127.0.0.1. Plans from the live session, launches, checks, shuts down, and
prints one JSON line.
"""

import json
import sys

import ray
from pyspark.sql import SparkSession

from launcher import ClusterSpec, RayOnSpark, count_alive_workers


@ray.remote
def double(x):
    return 2 * x


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
        with RayOnSpark(spark=spark, progress=True) as cluster:
            result = ray.get([double.remote(i) for i in range(8)], timeout=120)
            print(
                json.dumps(
                    {
                        "spec_workers": spec.workers,
                        "spec_cores": spec.cores_per_worker,
                        "planned_workers": cluster.plan.ray_workers,
                        "alive_workers": count_alive_workers(),
                        "result": result,
                        "start_s": cluster.timings["start_s"],
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
