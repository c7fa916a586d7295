"""Workload 3: stateful inference, a model of S MB applied to batches.

Two models of 1, 10 and 100 MB (smoke mode: 1 MB): an embedding table (one
numpy array) and a fitted k-nearest-neighbours classifier (scikit-learn). The
batches already live where each engine keeps data (a cached DataFrame, scattered
Dask futures, Ray object refs); each round scores all of them with the model
already deployed the engine's usual way:

- Spark: a pandas UDF reading a broadcast, or ``mapInPandas`` loading the model
  from a file at the start of every partition;
- Dask: the model scattered to every worker, passed to each task as a future;
- Ray tasks: the model put once in the object store, passed by reference;
- Ray actor pool: the model loaded once by each actor.

The one-off cost (deploying the model, then the first call) is recorded as
``first_call_s``. Each engine's scores must equal the serial reference.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from benchmarks import _engines, _harness
from benchmarks._workloads import make_model, pickled_mb, predict

pytestmark = [
    pytest.mark.slow,
    # PySpark 4 warns on every pandas conversion that it predates pandas 3; nothing to act on.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ENGINES = (
    "serial",
    "spark-broadcast",
    "spark-load-per-partition",
    "dask-scatter",
    "ray-task",
    "ray-actor-pool",
)


@dataclass
class Deployed:
    """A model, where it is saved, its pickled size and its serial predictions."""

    kind: str
    size_mb: float
    model: Any
    path: str
    mb: float
    reference: np.ndarray


class _OneModel:
    """Builds models on demand and keeps only the last (100 MB ones add up)."""

    def __init__(self, directory: str, batches: list[np.ndarray]) -> None:
        self.directory = directory
        self.batches = batches
        self.current: Deployed | None = None

    def get(self, kind: str, size_mb: float) -> Deployed:
        current = self.current
        if current is None or (current.kind, current.size_mb) != (kind, size_mb):
            self.current = None  # let the previous model go before building the next
            model = make_model(kind, size_mb)
            path = _engines.write_model(model, self.directory, f"{kind}-{size_mb:g}")
            reference = np.concatenate([predict(model, b) for b in self.batches])
            current = Deployed(kind, size_mb, model, path, pickled_mb(model), reference)
            self.current = current
        return current


@pytest.fixture(scope="module")
def models(model_dir: str, inference_batches: list[np.ndarray]) -> _OneModel:
    return _OneModel(model_dir, inference_batches)


@contextlib.contextmanager
def _scorer(
    engine: str, request: pytest.FixtureRequest, model: Deployed, batches: list[np.ndarray]
) -> Iterator[Callable[[], np.ndarray]]:
    if engine == "serial":
        yield lambda: np.concatenate([predict(model.model, b) for b in batches])
    elif engine == "spark-broadcast":
        spark, frame = request.getfixturevalue("spark"), request.getfixturevalue("inference_frame")
        with _engines.spark_broadcast_scorer(spark, frame, model.model) as run:
            yield run
    elif engine == "spark-load-per-partition":
        frame = request.getfixturevalue("inference_frame")
        with _engines.spark_per_partition_scorer(frame, model.path) as run:
            yield run
    elif engine == "dask-scatter":
        client = request.getfixturevalue("dask_client")
        with _engines.dask_scatter_scorer(client, model.model, batches) as run:
            yield run
    elif engine == "ray-task":
        request.getfixturevalue("ray_ready")
        with _engines.ray_task_scorer(model.model, batches) as run:
            yield run
    elif engine == "ray-actor-pool":
        request.getfixturevalue("ray_ready")
        with _engines.ray_pool_scorer(model.path, batches) as run:
            yield run
    else:
        raise ValueError(f"unknown engine {engine!r}")


def check(scores: np.ndarray, reference: np.ndarray) -> None:
    """Scores equal the serial ones (float sums may differ in the last bit only)."""
    assert scores.shape == reference.shape
    np.testing.assert_allclose(scores, reference, rtol=1e-12, atol=0)


@pytest.mark.parametrize("engine", _engines.params(*ENGINES))
@pytest.mark.parametrize("kind", ["numpy", "sklearn"])
def test_inference(
    benchmark: Any,
    request: pytest.FixtureRequest,
    sizes: _harness.Sizes,
    models: _OneModel,
    inference_batches: list[np.ndarray],
    kind: str,
    size_mb: float,
    engine: str,
) -> None:
    model = models.get(kind, size_mb)
    _harness.label(
        benchmark,
        "inference",
        f"{kind} model, {size_mb:g} MB",
        engine,
        ideal_from_serial=_harness.SLOTS,
        model_mb=round(model.mb, 2),
        batches=sizes.batches,
        rows_per_batch=sizes.batch_rows,
    )
    began = time.perf_counter()
    with _scorer(engine, request, model, inference_batches) as run:
        if not sizes.smoke:  # the cold call doubles as the warm-up round
            check(run(), model.reference)
            benchmark.extra_info["first_call_s"] = round(time.perf_counter() - began, 4)
        scores = _harness.measure(benchmark, run, rounds=sizes.rounds, warmup_rounds=0)
    check(scores, model.reference)
