"""Demo step: a small forecast per (store, item), from a Spark DataFrame to Ray actors and back."""

from __future__ import annotations

from typing import Any

TITLE = "Spark bridge: a forecast per (store, item)"
STORES, ITEMS, DAYS, HORIZON = 3, 2, 28, 7


class _TrendForecaster:
    """One straight-line fit per group, extended ``horizon`` days ahead."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon

    def __call__(self, key: tuple[Any, ...], history: Any) -> Any:
        import numpy as np
        import pandas as pd

        history = history.sort_values("day")
        slope, intercept = np.polyfit(history["day"], history["units"], 1)
        future = np.arange(DAYS, DAYS + self.horizon)
        return pd.DataFrame(
            {"store": key[0], "item": key[1], "day": future, "forecast": intercept + slope * future}
        )


def step(spark: Any, *, quick: bool) -> None:
    """Forecast 7 days for each (store, item) of a generated sales table; print and check."""
    from pyspark.sql import functions as F

    from patterns import BridgeStats, map_groups_with_actors

    # Units grow by (item + 1) per day from a base of 10 per store: an exact line.
    sales = spark.range(STORES * ITEMS * DAYS).select(
        F.concat(F.lit("store-"), (F.col("id") % STORES).cast("string")).alias("store"),
        ((F.col("id") / STORES).cast("int") % ITEMS).alias("item"),
        (F.col("id") / (STORES * ITEMS)).cast("int").alias("day"),
    )
    sales = sales.withColumn("units", 10 + (F.col("item") + 1) * F.col("day"))
    stats = BridgeStats()
    forecasts = map_groups_with_actors(
        sales,
        ["store", "item"],
        _TrendForecaster,
        actor_args=(HORIZON,),
        output_schema="store string, item int, day long, forecast double",
        n_actors=2,
        actor_options={"num_cpus": 0.5},
        stats=stats,
    )
    rows = forecasts.orderBy("store", "item", "day").collect()
    print(
        f"{stats.rows_in} sales rows in {stats.groups} groups went to {stats.n_actors} actors "
        f"(calls per actor: {stats.batches_per_actor}) and came back as "
        f"{len(rows)} forecast rows in a Spark DataFrame"
    )
    first = rows[0]
    print(f"e.g. {first.store}, item {first.item}, day {first.day}: {first.forecast:.1f} units")
    assert stats.groups == STORES * ITEMS and len(rows) == STORES * ITEMS * HORIZON
    assert abs(first.forecast - (10 + (first.item + 1) * first.day)) < 1e-6
    print("the same key always goes to the same actor, so an actor may keep state per key")
