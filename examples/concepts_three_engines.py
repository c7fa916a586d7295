"""One slow, stateless function run by three engines: Spark, Dask and Ray.

Shown on the Concepts page as side-by-side tabs. ``main()`` expects a
connected Ray cluster and an active SparkSession (Ray on Spark gives both).
"""

from __future__ import annotations

# --8<-- [start:imports]
import time

import dask
import ray
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType

# --8<-- [end:imports]

# The examples runner skips this file only on a plain local Ray without Spark.
REQUIRES_SPARK = True

INPUTS = [1, 2, 3, 4]
PAUSE_S = 0.5


# --8<-- [start:function]
def double_slowly(x: int) -> int:
    time.sleep(PAUSE_S)  # stands in for half a second of real work
    return 2 * x


# --8<-- [end:function]


def main() -> None:
    spark = SparkSession.getActiveSession()
    assert spark is not None, "this example needs an active SparkSession"

    # --8<-- [start:spark]
    # A plain row-at-a-time Python UDF, said explicitly: Spark 4 would otherwise try to
    # read an Arrow or pandas UDF type from the function's type hints.
    double_udf = F.udf(double_slowly, LongType(), useArrow=False)
    frame = spark.createDataFrame([(x,) for x in INPUTS], "x long")
    rows = frame.select(double_udf("x").alias("doubled")).collect()
    spark_result = [row.doubled for row in rows]
    # --8<-- [end:spark]

    # --8<-- [start:dask]
    lazy = [dask.delayed(double_slowly)(x) for x in INPUTS]  # nothing runs yet
    dask_result = list(dask.compute(*lazy, scheduler="threads"))
    # --8<-- [end:dask]

    # --8<-- [start:ray]
    double_remote = ray.remote(double_slowly)
    refs = [double_remote.remote(x) for x in INPUTS]  # already running
    ray_result = ray.get(refs)
    # --8<-- [end:ray]

    assert spark_result == dask_result == ray_result == [2, 4, 6, 8]


if __name__ == "__main__":
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
