"""Workload 5: Ray inside Spark, a DataFrame whose batches are scored by a Ray actor pool.

The seeds report about 2x from moving a model's work out of a Spark UDF into Ray.
Here one k-nearest-neighbours model (10 MB; smoke mode 1 MB) scores a cached
DataFrame of 8 partitions of 25,000 rows (smoke: 2 of 200), large enough that the
model's work outweighs the engines' per-job costs, two ways:

- ``spark-pandas-udf``: a pandas UDF reading the model from a broadcast;
- ``spark-to-ray-actor-pool``: ``mapInPandas`` forwards each Arrow batch to one
  of two named Ray actors that loaded the model once, and yields their scores.
  Each Spark Python worker connects to the Ray cluster once and stays connected.
- ``spark-load-per-partition``: ``mapInPandas`` alone, loading the model from its
  file at the start of every partition (no Ray).
- ``spark-bridge-executor`` / ``spark-bridge-driver``: ``patterns.map_batches_with_actors``
  with a pool of two actors that each load the model once per call (the pool lives
  for one call, so every round pays its start), batches sent from Spark's Python
  workers or from the driver.

The serial baseline scores the batches in this process. The ideal is half the
serial time (2 slots). Scores must equal the serial reference.

Budget: every engine here makes one cold call (also the warm-up) and ``ROUNDS``
measured ones, not the suite's usual 5: a bridge call starts its pool and loads the
model each time (10-40 s per call on 2 shared cores), and this file's full run has
to fit, with the Spark bridge benchmarks, in about 20 minutes.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks import _engines, _harness
from benchmarks._workloads import (
    ModelServer,
    make_batches,
    make_sklearn_model,
    pickled_mb,
    predict,
)

pytestmark = [
    pytest.mark.slow,
    # PySpark 4 warns on every pandas conversion that it predates pandas 3; nothing to act on.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ENGINES = (
    "serial",
    "spark-pandas-udf",
    "spark-to-ray-actor-pool",
    "spark-load-per-partition",
    "spark-bridge-executor",
    "spark-bridge-driver",
)
NAMESPACE = "rap-bench"
ROUNDS = 2  # measured rounds per engine in the full run (the budget above)


@pytest.fixture(scope="module")
def bridge_batches(sizes: _harness.Sizes) -> list[np.ndarray]:
    """Larger batches than workload 3's, so that the model's work dominates."""
    return make_batches(sizes.batches, sizes.bridge_rows, seed=17)


@pytest.fixture(scope="module")
def bridge_frame(spark: Any, bridge_batches: list[np.ndarray]) -> Iterator[Any]:
    """The batches as a cached Spark DataFrame, one partition per batch."""
    with _engines.spark_batches(spark, bridge_batches) as frame:
        yield frame


@pytest.fixture(scope="module")
def bridge_model(
    sizes: _harness.Sizes, model_dir: str, bridge_batches: list[np.ndarray]
) -> tuple[Any, str, np.ndarray]:
    """The model, where it is saved, and its serial scores."""
    model = make_sklearn_model(sizes.bridge_mb)
    path = _engines.write_model(model, model_dir, f"bridge-{sizes.bridge_mb:g}")
    return model, path, np.concatenate([predict(model, b) for b in bridge_batches])


def _forwarder(address: str, names: list[str]) -> Callable[[Iterator[pd.DataFrame]], Any]:
    """The ``mapInPandas`` function: runs in Spark's Python workers, scores on Ray actors."""
    columns = _engines.COLUMNS
    timeout = _harness.RAY_GET_TIMEOUT_S

    def forward(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import ray
        from pyspark import TaskContext

        if not ray.is_initialized():  # once per Spark Python worker, which Spark reuses
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        actors = [ray.get_actor(name, namespace=NAMESPACE) for name in names]
        first = TaskContext.get().partitionId()
        pending = []
        for i, pdf in enumerate(frames):  # send every batch before waiting for any
            actor = actors[(first + i) % len(actors)]
            pending.append((pdf["row"].to_numpy(), actor.predict.remote(pdf[columns].to_numpy())))
        for rows, ref in pending:
            yield pd.DataFrame({"row": rows, "score": ray.get(ref, timeout=timeout)})

    return forward


def _disconnect_spark_workers(spark: Any) -> None:
    """Best effort: ask Spark's Python workers to leave the Ray cluster."""

    def leave(_: Any) -> list[bool]:
        import ray

        was = ray.is_initialized()
        if was:
            ray.shutdown()
        return [was]

    with contextlib.suppress(Exception):
        slots = 4 * _harness.SLOTS
        spark.sparkContext.parallelize(range(slots), slots).mapPartitions(leave).collect()


@contextlib.contextmanager
def _ray_in_spark(
    spark: Any, frame: Any, address: str, path: str
) -> Iterator[Callable[[], np.ndarray]]:
    prefix = f"scorer-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i}" for i in range(_harness.SLOTS)]
    actors: list[Any] = []
    import ray

    try:
        for name in names:
            actors.append(
                ray.remote(ModelServer)
                .options(name=name, namespace=NAMESPACE, num_cpus=1, max_restarts=0)
                .remote(path)
            )
        ray.get([a.ready.remote() for a in actors], timeout=_harness.RAY_GET_TIMEOUT_S)
        forward = _forwarder(address, names)
        yield (
            lambda: (
                frame.mapInPandas(forward, "row long, score double")
                .toPandas()
                .sort_values("row")["score"]
                .to_numpy()
            )
        )
    finally:
        _disconnect_spark_workers(spark)
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)


class _BridgeScorer:
    """The Spark bridge's pool class: the model loaded in ``__init__``, batches scored."""

    def __init__(self, path: str, columns: list[str]) -> None:
        self.server = ModelServer(path)
        self.columns = columns

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        scores = self.server.predict(batch[self.columns].to_numpy())
        return pd.DataFrame({"row": batch["row"], "score": scores})


def _bridge(frame: Any, path: str, rows: int, transport: str) -> Callable[[], np.ndarray]:
    from patterns import map_batches_with_actors

    def run() -> np.ndarray:
        scored = map_batches_with_actors(
            frame, _BridgeScorer, actor_args=(path, _engines.COLUMNS),
            output_schema="row long, score double",
            n_actors=_harness.SLOTS, batch_size=rows, transport=transport, progress=False,
        )  # fmt: skip
        return scored.toPandas().sort_values("row")["score"].to_numpy()

    return run


@contextlib.contextmanager
def _scorer(
    engine: str,
    request: pytest.FixtureRequest,
    bridge_model: tuple[Any, str, np.ndarray],
    batches: list[np.ndarray],
) -> Iterator[Callable[[], np.ndarray]]:
    model, path, _ = bridge_model
    if engine == "serial":
        yield lambda: np.concatenate([predict(model, b) for b in batches])
        return
    spark, frame = request.getfixturevalue("spark"), request.getfixturevalue("bridge_frame")
    if engine == "spark-pandas-udf":
        with _engines.spark_broadcast_scorer(spark, frame, model) as run:
            yield run
    elif engine == "spark-to-ray-actor-pool":
        address = request.getfixturevalue("ray_ready")["address"]
        with _ray_in_spark(spark, frame, address, path) as run:
            yield run
    elif engine == "spark-load-per-partition":
        with _engines.spark_per_partition_scorer(frame, path) as run:
            yield run
    elif engine in ("spark-bridge-executor", "spark-bridge-driver"):
        request.getfixturevalue("ray_ready")
        rows = len(batches[0])
        yield _bridge(frame, path, rows, engine.removeprefix("spark-bridge-"))
    else:
        raise ValueError(f"unknown engine {engine!r}")


@pytest.mark.parametrize("engine", _engines.params(*ENGINES))
def test_ray_in_spark(
    benchmark: Any,
    request: pytest.FixtureRequest,
    sizes: _harness.Sizes,
    bridge_model: tuple[Any, str, np.ndarray],
    bridge_batches: list[np.ndarray],
    engine: str,
) -> None:
    model, _, reference = bridge_model
    _harness.label(
        benchmark,
        "ray-in-spark",
        f"sklearn model, {sizes.bridge_mb:g} MB, {sizes.batches} x {sizes.bridge_rows:,} rows",
        engine,
        ideal_from_serial=_harness.SLOTS,
        model_mb=round(pickled_mb(model), 2),
        batches=sizes.batches,
        rows_per_batch=sizes.bridge_rows,
    )
    began = time.perf_counter()
    with _scorer(engine, request, bridge_model, bridge_batches) as run:
        if not sizes.smoke:  # the cold call doubles as the warm-up round
            np.testing.assert_array_equal(run(), reference)
            benchmark.extra_info["first_call_s"] = round(time.perf_counter() - began, 4)
        rounds = min(sizes.rounds, ROUNDS)
        scores = _harness.measure(benchmark, run, rounds=rounds, warmup_rounds=0)
    np.testing.assert_array_equal(scores, reference)
