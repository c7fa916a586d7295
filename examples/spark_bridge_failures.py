"""How the Spark bridge fails: an error in one group, and an actor's process killed.

Shown on the Spark bridge page. ``main()`` expects a connected Ray-on-Spark cluster
with an executor left free for Spark jobs, and its active SparkSession.
"""

from __future__ import annotations

import os
import signal
import tempfile

import pandas as pd
from pyspark.sql import SparkSession

from patterns import BridgeBatchError, BridgeStats, map_groups_with_actors

REQUIRES_SPARK = True
STORES = [f"store-{i}" for i in range(12)]
TOTAL = float(sum(day % 7 for day in range(30)))  # every store sells the same


def sales(spark: SparkSession) -> object:
    rows = [(store, day, float(day % 7)) for store in STORES for day in range(30)]
    return spark.createDataFrame(rows, "store string, day int, units double")


# --8<-- [start:raises]
class NeedsHistory:
    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        if key == ("store-3",):
            raise ValueError(f"{key[0]}: not enough history to fit")
        return pd.DataFrame({"store": [key[0]], "total": [group["units"].sum()]})


def one_group_raises(frame: object) -> BridgeBatchError:
    try:
        map_groups_with_actors(
            frame, "store", NeedsHistory, output_schema="store string, total double"
        )
    except BridgeBatchError as error:
        return error
    raise AssertionError("the failing group went unnoticed")


# --8<-- [end:raises]


# --8<-- [start:crash]
class CrashOnce:
    """Totals per store; the first time it meets store-5, its process dies (SIGKILL)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        if key == ("store-5",) and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no exception: gone
        return pd.DataFrame({"store": [key[0]], "total": [group["units"].sum()]})


def survive_a_crash(frame: object, folder: str) -> BridgeStats:
    stats = BridgeStats()
    totals = map_groups_with_actors(
        frame,
        "store",
        CrashOnce,
        actor_args=(os.path.join(folder, "crashed"),),
        output_schema="store string, total double",
        batch_size=1,  # one group per call, to see the re-run clearly
        stats=stats,
    ).toPandas()
    assert sorted(totals["store"]) == sorted(STORES)  # every store once
    assert (totals["total"] == TOTAL).all()  # nothing counted twice
    return stats


# --8<-- [end:crash]


def main() -> None:
    spark = SparkSession.getActiveSession()
    assert spark is not None, "this example needs the SparkSession hosting Ray"
    frame = sales(spark)

    # --8<-- [start:raises_run]
    error = one_group_raises(frame)
    print(error)  # batch for key ('store-3',) failed on actor 1: ValueError: store-3: ...
    print(error.remote_traceback.splitlines()[-1])  # the actor's own traceback is kept
    # --8<-- [end:raises_run]
    assert error.key == ("store-3",) and error.remote_type == "ValueError"
    assert error.remote_message == "store-3: not enough history to fit"

    with tempfile.TemporaryDirectory(prefix="bridge-crash-") as folder:
        # --8<-- [start:crash_run]
        stats = survive_a_crash(frame, folder)
        print(f"groups {stats.groups}, rows {stats.rows_in}, re-run {stats.batches_rerun}")
        # --8<-- [end:crash_run]
        assert os.path.exists(os.path.join(folder, "crashed"))  # it really died once
    assert stats.groups == len(STORES) and stats.rows_in == 30 * len(STORES)
    # batches_rerun is a lower bound (the process may die before its start report
    # leaves), so the marker file above, not this count, proves the crash.


if __name__ == "__main__":
    # --8<-- [start:script-launch]
    from launcher import RayOnSpark

    with RayOnSpark(reserve_workers_for_spark=1):
        main()
    # --8<-- [end:script-launch]
