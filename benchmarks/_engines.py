"""How each engine runs a workload, written with the engines' own APIs.

Each runner is a context manager: it does the one-off setup (a Spark DataFrame,
a broadcast, a scattered model, an actor pool) outside the timed region, yields
a function of no arguments that runs the workload once and returns its result,
and releases everything it started on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks import _harness
from benchmarks._workloads import FEATURES, ModelServer, Runner, load_model, predict, save_model

SPARK = pytest.mark.spark


def params(*engines: str) -> list[Any]:
    """Engine ids as pytest params; the Spark ones carry the ``spark`` marker."""
    return [pytest.param(e, marks=SPARK) if e.startswith("spark") else e for e in engines]


# --- stateless workloads (1 and 2): map a function over integer inputs -----------------------

STATELESS = (
    "serial",
    "spark-udf",
    "spark-arrow-udf",
    "spark-pandas-udf",
    "spark-mapinpandas",
    "dask-delayed",
    "ray-task",
    "ray-actor-pool",
)


@contextlib.contextmanager
def map_runner(
    engine: str, request: pytest.FixtureRequest, fn: Callable[[int], int], values: list[int]
) -> Iterator[Callable[[], list[int]]]:
    """Yield a callable that applies ``fn`` to every value on ``engine``, in order.

    Args:
        engine: One of :data:`STATELESS`.
        request: The test's request, to start only the engine fixture it needs.
        fn: A function of one int (shipped to the workers by value).
        values: The inputs.
    """
    if engine == "serial":
        yield lambda: [fn(v) for v in values]
    elif engine.startswith("spark"):
        yield from _spark_map(engine, request.getfixturevalue("spark"), fn, values)
    elif engine == "dask-delayed":
        yield from _dask_map(request.getfixturevalue("dask_client"), fn, values)
    elif engine == "ray-task":
        request.getfixturevalue("ray_ready")
        yield from _ray_task_map(fn, values)
    elif engine == "ray-actor-pool":
        request.getfixturevalue("ray_ready")
        yield from _ray_pool_map(fn, values)
    else:
        raise ValueError(f"unknown engine {engine!r}")


def _spark_map(
    engine: str, spark: Any, fn: Callable[[int], int], values: list[int]
) -> Iterator[Callable[[], list[int]]]:
    from pyspark.sql import functions as F

    # One partition per slot, Spark's usual layout: each task walks its rows in turn.
    rdd = spark.sparkContext.parallelize([(v,) for v in values], numSlices=_harness.SLOTS)
    frame = spark.createDataFrame(rdd, "x long").cache()
    frame.count()
    try:
        if engine in ("spark-udf", "spark-arrow-udf"):
            # Explicit: Spark 4 makes plain UDFs Arrow-optimised by default
            # (spark.sql.execution.pythonUDF.arrow.enabled); both kinds are measured.
            udf = F.udf(fn, "long", useArrow=engine == "spark-arrow-udf")
            yield lambda: [row[0] for row in frame.select(udf("x")).collect()]
        elif engine == "spark-pandas-udf":

            def apply_series(xs: pd.Series) -> pd.Series:
                return pd.Series([fn(int(x)) for x in xs], dtype="int64")

            vectorised = F.pandas_udf(apply_series, "long")
            yield lambda: [row[0] for row in frame.select(vectorised("x")).collect()]
        elif engine == "spark-mapinpandas":

            def apply_frames(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
                for pdf in frames:
                    yield pd.DataFrame({"y": [fn(int(x)) for x in pdf["x"]]}, dtype="int64")

            yield lambda: [row[0] for row in frame.mapInPandas(apply_frames, "y long").collect()]
        else:
            raise ValueError(f"unknown Spark engine {engine!r}")
    finally:
        frame.unpersist()


def _dask_map(
    client: Any, fn: Callable[[int], int], values: list[int]
) -> Iterator[Callable[[], list[int]]]:
    import dask

    def run() -> list[int]:
        lazy = [dask.delayed(fn)(v) for v in values]
        return list(client.compute(lazy, sync=True))

    yield run


def _ray_task_map(fn: Callable[[int], int], values: list[int]) -> Iterator[Callable[[], list[int]]]:
    import ray

    def apply(x: int) -> int:
        return fn(x)

    remote_fn = ray.remote(apply)  # one CPU per task: one task per worker node at a time
    yield lambda: ray.get([remote_fn.remote(v) for v in values], timeout=_harness.RAY_GET_TIMEOUT_S)


def _ray_pool_map(fn: Callable[[int], int], values: list[int]) -> Iterator[Callable[[], list[int]]]:
    from ray.util import ActorPool

    with _harness.ray_actors(Runner, fn) as actors:
        pool = ActorPool(actors)
        yield lambda: list(pool.map(lambda actor, v: actor.run.remote(v), values))


# --- inference (workloads 3 and 5): a model applied to batches ------------------------------

COLUMNS = ["key", *[f"f{i}" for i in range(FEATURES)]]


@contextlib.contextmanager
def spark_batches(spark: Any, batches: list[np.ndarray]) -> Iterator[Any]:
    """The batches as a cached Spark DataFrame, one partition per batch, with a row id."""
    rows = []
    for batch in batches:
        start = len(rows)
        rows += [(start + i, *map(float, r)) for i, r in enumerate(batch.tolist())]
    schema = "row long, " + ", ".join(f"{c} double" for c in COLUMNS)
    rdd = spark.sparkContext.parallelize(rows, numSlices=len(batches))
    frame = spark.createDataFrame(rdd, schema).cache()
    frame.count()
    try:
        yield frame
    finally:
        frame.unpersist()


def _scores(pdf: Any) -> np.ndarray:
    return pdf.sort_values("row")["score"].to_numpy()


@contextlib.contextmanager
def spark_broadcast_scorer(spark: Any, frame: Any, model: Any) -> Iterator[Callable[[], Any]]:
    """Pandas UDF reading the model from a Spark broadcast (unpickled once per Python worker)."""
    from pyspark.sql import functions as F

    shared = spark.sparkContext.broadcast(model)

    def score(rows: pd.DataFrame) -> pd.Series:
        return pd.Series(predict(shared.value, rows[COLUMNS].to_numpy()))

    udf = F.pandas_udf(score, "double")
    try:
        yield lambda: _scores(
            frame.select("row", udf(F.struct(*COLUMNS)).alias("score")).toPandas()
        )
    finally:
        shared.destroy()


@contextlib.contextmanager
def spark_per_partition_scorer(frame: Any, path: str) -> Iterator[Callable[[], Any]]:
    """``mapInPandas`` loading the model from a file at the start of every partition."""

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = load_model(path)
        for pdf in frames:
            scores = predict(model, pdf[COLUMNS].to_numpy())
            yield pd.DataFrame({"row": pdf["row"], "score": scores})

    yield lambda: _scores(frame.mapInPandas(score, "row long, score double").toPandas())


@contextlib.contextmanager
def dask_scatter_scorer(
    client: Any, model: Any, batches: list[np.ndarray]
) -> Iterator[Callable[[], Any]]:
    """Model scattered to every Dask worker once; one task per batch takes its future."""
    model_future = client.scatter(model, broadcast=True, hash=False)
    batch_futures = client.scatter(batches, hash=False)
    try:

        def run() -> np.ndarray:
            tasks = [client.submit(predict, model_future, b, pure=False) for b in batch_futures]
            return np.concatenate(client.gather(tasks))

        yield run
    finally:
        client.cancel([model_future, *batch_futures])


@contextlib.contextmanager
def ray_task_scorer(model: Any, batches: list[np.ndarray]) -> Iterator[Callable[[], Any]]:
    """Model put in Ray's object store once; one task per batch takes its reference."""
    import ray

    model_ref = ray.put(model)
    batch_refs = [ray.put(b) for b in batches]
    remote_predict = ray.remote(predict)
    yield lambda: np.concatenate(
        ray.get(
            [remote_predict.remote(model_ref, b) for b in batch_refs],
            timeout=_harness.RAY_GET_TIMEOUT_S,
        )
    )


@contextlib.contextmanager
def ray_pool_scorer(path: str, batches: list[np.ndarray]) -> Iterator[Callable[[], Any]]:
    """An ActorPool of model servers, each loading the model once; batches go round the pool."""
    import ray
    from ray.util import ActorPool

    batch_refs = [ray.put(b) for b in batches]
    with _harness.ray_actors(ModelServer, path) as actors:
        pool = ActorPool(actors)
        yield lambda: np.concatenate(
            list(pool.map(lambda actor, b: actor.predict.remote(b), batch_refs))
        )


def write_model(model: Any, directory: str, name: str) -> str:
    """Save ``model`` under ``directory`` (where executors and actors on this host read it)."""
    import os

    path = os.path.join(directory, f"{name}.pkl")
    save_model(model, path)
    return path
