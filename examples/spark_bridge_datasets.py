"""A Spark table to a Ray Dataset, a model on an actor pool, back to Spark and to Parquet.

Shown on the Spark bridge page. The Spark executors send the table's Arrow batches
into Ray's object store (`to_ray_dataset`); Ray Data scores them on a pool of two
actors that each load the model once; Spark's executors read the scores back from the
object store (`from_ray_dataset`), and Spark writes Parquet. The Delta variant writes
and reads a Delta table with Ray Data's own Delta support (the ``deltalake`` package,
no Spark jars). ``main()`` expects a connected Ray-on-Spark cluster with an executor
left free for Spark jobs, and its active SparkSession.
"""

from __future__ import annotations

import os
import pickle
import tempfile

import numpy as np
import pandas as pd
import ray
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from patterns import BlockOwner, from_ray_dataset, to_ray_dataset

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
    """Ray Data builds one per actor of the pool: the model is loaded once per actor."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as handle:
            self.model = pickle.load(handle)
        self.actor = os.getpid()

    def __call__(self, batch: pd.DataFrame) -> dict[str, np.ndarray]:
        scores = self.model.predict_proba(batch[FEATURES].to_numpy())[:, 1]
        return {
            "id": batch["id"].to_numpy(),
            "score": scores,
            "actor": np.full(len(batch), self.actor),
        }


# --8<-- [end:scorer]


def main() -> None:
    spark = SparkSession.getActiveSession()
    assert spark is not None, "this example needs the SparkSession hosting Ray"
    spark.range(ROWS, numPartitions=4).select(
        "id",
        *[((F.col("id") * (7 + 4 * i)) % 1000 / 1000).alias(f) for i, f in enumerate(FEATURES)],
    ).createOrReplaceTempView("readings")

    with tempfile.TemporaryDirectory(prefix="bridge-datasets-") as folder:
        path = train_and_save(folder)
        # --8<-- [start:flow]
        readings = to_ray_dataset(spark.table("readings"))  # executors -> object store
        scored = readings.map_batches(
            Scorer,
            fn_constructor_args=(path,),
            batch_format="pandas",
            batch_size=2_500,
            compute=ray.data.ActorPoolStrategy(size=2),  # a pool of two actors
            num_cpus=0.5,
        ).materialize()
        scores = from_ray_dataset(scored, spark)  # object store -> executors
        scores.drop("actor").write.parquet(os.path.join(folder, "scores"))
        # --8<-- [end:flow]
        print(f"{readings.count():,} rows in {readings.num_blocks()} blocks, scored by "
              f"{scores.select('actor').distinct().count()} actors")  # fmt: skip
        saved = spark.read.parquet(os.path.join(folder, "scores")).orderBy("id").toPandas()
        actors = scores.select("actor").distinct().count()

        # --8<-- [start:delta]
        table = os.path.join(folder, "scores-delta")
        scored.drop_columns(["actor"]).write_delta(table)  # Ray Data's Delta writer
        from_delta = from_ray_dataset(ray.data.read_delta(table), spark)
        # --8<-- [end:delta]
        delta = from_delta.orderBy("id").toPandas()

        # --8<-- [start:owner]
        with BlockOwner() as owner:  # one actor per Ray node; they own the blocks of ds
            ds = to_ray_dataset(spark.table("readings"), owner=owner)
            total = ds.sum("id")
        # Here every block of ds is freed, even if a reference to it escaped.
        # --8<-- [end:owner]
        assert total == ROWS * (ROWS - 1) // 2

        local = spark.table("readings").orderBy("id").toPandas()
        with open(path, "rb") as handle:
            expected = pickle.load(handle).predict_proba(local[FEATURES].to_numpy())[:, 1]
    assert 1 <= actors <= 2, f"{actors} actors scored: the pool has two"
    for name, frame in {"parquet": saved, "delta": delta}.items():
        assert frame.columns.tolist() == ["id", "score"], name
        assert frame["id"].tolist() == local["id"].tolist(), name
        np.testing.assert_allclose(frame["score"], expected, rtol=1e-12, err_msg=name)


if __name__ == "__main__":
    from launcher import RayOnSpark

    with RayOnSpark(reserve_workers_for_spark=1):
        main()
