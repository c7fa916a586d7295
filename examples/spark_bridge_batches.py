"""Score a Spark DataFrame with a model that each Ray actor loads once, by both transports.

Shown on the Spark bridge page. ``main()`` expects a connected Ray-on-Spark cluster
with an executor left free for Spark jobs, and its active SparkSession.
"""

from __future__ import annotations

import os
import pickle
import tempfile

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from patterns import BridgePool, BridgeStats, map_batches_with_actors

REQUIRES_SPARK = True
FEATURES = ["f0", "f1", "f2"]
ROWS = 20_000


def train_and_save(folder: str) -> str:
    """A small scikit-learn classifier, pickled where every actor can read it."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((2_000, len(FEATURES)))
    model = LogisticRegression().fit(x, (x.sum(axis=1) > 1.5).astype(int))
    path = os.path.join(folder, "model.pkl")
    with open(path, "wb") as handle:
        pickle.dump(model, handle)
    return path


# --8<-- [start:scorer]
class Scorer:
    """Loads the model in ``__init__``: once per actor, not once per batch or partition."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as handle:
            self.model = pickle.load(handle)
        self.batches = 0

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        self.batches += 1
        scores = self.model.predict_proba(batch[FEATURES].to_numpy())[:, 1]
        return pd.DataFrame({"id": batch["id"], "score": scores})


# --8<-- [end:scorer]


def main() -> None:
    spark = SparkSession.getActiveSession()
    assert spark is not None, "this example needs the SparkSession hosting Ray"
    rows = spark.range(ROWS, numPartitions=4).select(
        "id",
        *[((F.col("id") * (7 + 4 * i)) % 1000 / 1000).alias(f) for i, f in enumerate(FEATURES)],
    )

    with tempfile.TemporaryDirectory(prefix="bridge-model-") as folder:
        path = train_and_save(folder)
        # --8<-- [start:transports]
        results = {}
        for transport in ("executor", "driver"):
            stats = BridgeStats()
            scored = map_batches_with_actors(
                rows,
                Scorer,
                actor_args=(path,),
                output_schema="id long, score double",
                n_actors=2,
                batch_size=2_500,
                transport=transport,
                stats=stats,
            )
            results[transport] = scored.orderBy("id").toPandas()
            print(f"{transport}: {stats.batches} batches, per actor {stats.batches_per_actor}")
        # --8<-- [end:transports]
        assert stats.rows_in == ROWS and sum(stats.batches_per_actor) == stats.batches == 8

        # --8<-- [start:pool]
        with BridgePool(Scorer, actor_args=(path,), n_actors=2) as pool:
            pool.wait_ready()  # each actor has loaded the model: once for every call below
            for parity in (0, 1):
                part = rows.where(F.col("id") % 2 == parity)
                scored = map_batches_with_actors(
                    part, pool, output_schema="id long, score double", transport="driver"
                )
                results[f"pool, ids % 2 == {parity}"] = scored.orderBy("id").toPandas()
        # --8<-- [end:pool]

        local = rows.orderBy("id").toPandas()
        with open(path, "rb") as handle:
            expected = pickle.load(handle).predict_proba(local[FEATURES].to_numpy())[:, 1]
    for name, frame in results.items():
        rows_of = local["id"] % 2 == int(name[-1]) if name.startswith("pool") else local["id"] >= 0
        assert frame["id"].tolist() == local["id"][rows_of].tolist(), name
        np.testing.assert_allclose(frame["score"], expected[rows_of.to_numpy()], rtol=1e-12)


if __name__ == "__main__":
    # --8<-- [start:script-launch]
    from launcher import RayOnSpark

    with RayOnSpark(reserve_workers_for_spark=1):
        main()
    # --8<-- [end:script-launch]
