"""A forecast per (store, item): Spark holds the sales, Ray actors fit one model per group.

Shown on the Spark bridge page. ``main()`` expects a connected Ray-on-Spark cluster
with an executor left free for Spark jobs, and its active SparkSession. Run the file
to start such a cluster on this machine.
"""

from __future__ import annotations

import tempfile

# --8<-- [start:imports]
import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from patterns import BridgeStats, map_groups_with_actors

# --8<-- [end:imports]

REQUIRES_SPARK = True
STORES, ITEMS, DAYS, HORIZON = 4, 5, 84, 7  # 20 series of 12 weeks; forecast 1 week


# --8<-- [start:sales]
def sales_table(spark: SparkSession) -> object:
    """Daily units sold per (store, item): a trend, a weekly cycle and some noise."""
    return (
        spark.range(STORES * ITEMS * DAYS)
        .select(
            "id",
            F.concat(F.lit("store-"), (F.col("id") % STORES).cast("string")).alias("store"),
            ((F.col("id") / STORES).cast("int") % ITEMS).alias("item"),
            (F.col("id") / (STORES * ITEMS)).cast("int").alias("day"),
        )
        .withColumn(
            "units",
            F.round(
                10 + F.col("item") * 2 + F.col("day") * 0.05 * (F.col("item") + 1)
                + 3 * F.sin(F.col("day") * 2 * np.pi / 7)
                + (F.col("id") * 7919 % 101) / 50 - 1,  # noise, the same on every run
                2,
            ),
        )
        .drop("id")
    )  # fmt: skip


# --8<-- [end:sales]


# --8<-- [start:forecaster]
def weekly_features(days: np.ndarray) -> np.ndarray:
    """Trend and a weekly cycle: what the model sees of a day."""
    angle = 2 * np.pi * days / 7
    return np.column_stack([days, np.sin(angle), np.cos(angle)])


class Forecaster:
    """Fits a ridge regression to one (store, item) history and forecasts the next days.

    One instance lives in each pool actor and serves every group sent to it; a key
    always goes to the same actor, so ``fitted`` counts that actor's series.
    """

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon
        self.fitted = 0

    def __call__(self, key: tuple, history: pd.DataFrame) -> pd.DataFrame:
        from sklearn.linear_model import Ridge

        store, item = key
        history = history.sort_values("day")
        model = Ridge(alpha=1.0).fit(weekly_features(history["day"].to_numpy()), history["units"])
        self.fitted += 1
        future = np.arange(history["day"].max() + 1, history["day"].max() + 1 + self.horizon)
        return pd.DataFrame(
            {
                "store": store,
                "item": item,
                "day": future.astype("int32"),
                "forecast": model.predict(weekly_features(future)),
            }
        )


# --8<-- [end:forecaster]


def main() -> None:
    spark = SparkSession.getActiveSession()
    assert spark is not None, "this example needs the SparkSession hosting Ray"

    # --8<-- [start:run]
    sales = sales_table(spark)
    stats = BridgeStats()
    forecasts = map_groups_with_actors(
        sales,
        ["store", "item"],
        Forecaster,
        actor_kwargs={"horizon": HORIZON},
        output_schema="store string, item int, day int, forecast double",
        n_actors=2,
        stats=stats,
    )
    # --8<-- [end:run]
    assert stats.groups == STORES * ITEMS and stats.rows_in == STORES * ITEMS * DAYS
    assert forecasts.count() == STORES * ITEMS * HORIZON

    # --8<-- [start:parquet]
    with tempfile.TemporaryDirectory(prefix="forecasts-") as folder:
        path = f"{folder}/forecasts.parquet"
        forecasts.write.mode("overwrite").partitionBy("store").parquet(path)
        table = spark.read.parquet(path)
        print(table.groupBy("store").count().orderBy("store").collect())
        back = table.toPandas()
    # --8<-- [end:parquet]
    assert len(back) == STORES * ITEMS * HORIZON
    assert sorted(back["store"].unique()) == [f"store-{s}" for s in range(STORES)]

    # The same forecasts computed here, one group at a time: they must agree.
    local = sales.toPandas()
    forecaster = Forecaster(HORIZON)
    expected = pd.concat(
        [forecaster(key, group) for key, group in local.groupby(["store", "item"])]
    )
    merged = back.merge(expected, on=["store", "item", "day"], suffixes=("", "_local"))
    assert len(merged) == len(expected)
    np.testing.assert_allclose(merged["forecast"], merged["forecast_local"], rtol=1e-9)
    print(f"{stats.groups} forecasts of {HORIZON} days, {stats.batches} calls to the pool")


if __name__ == "__main__":
    # --8<-- [start:script-launch]
    from launcher import RayOnSpark

    # Keep one Spark executor free for Spark's own jobs (and the bridge's tasks).
    with RayOnSpark(reserve_workers_for_spark=1):
        main()
    # --8<-- [end:script-launch]
