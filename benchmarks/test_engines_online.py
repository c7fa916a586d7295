"""Workload 4: an online learning loop, predict -> feedback -> ``partial_fit``, K cycles.

A scikit-learn ``SGDClassifier`` over hashed sparse features chooses an action
for each context; the environment then reveals the right actions and the model
learns from them with ``partial_fit``. Every engine runs the same synchronous
loop, two calls per cycle, and differs only in where the model lives:

- serial: in this process;
- Spark UDF: shipped inside each job's closure and unpickled per call; the
  feedback job returns the updated model to the driver;
- Dask task, Ray task: scattered / put once per cycle, used by a predict task and
  a learn task; the learn task returns the updated model;
- Dask actor, Ray actor: kept in one worker's memory, never shipped.

The loop is sequential, so no engine can beat the serial loop: the ideal is the
serial time. The actions chosen over all cycles must equal the serial loop's.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks import _engines, _harness
from benchmarks._workloads import (
    OnlineAgent,
    StreamSpec,
    choose,
    from_arrays,
    learn,
    learn_copy,
    make_stream,
    new_learner,
    to_arrays,
)

pytestmark = [
    pytest.mark.slow,
    # PySpark 4 warns on every pandas conversion that it predates pandas 3; nothing to act on.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ENGINES = ("serial", "spark-udf", "dask-task", "ray-task", "dask-actor", "ray-actor")

Loop = Callable[[], list[np.ndarray]]


@dataclass(frozen=True)
class Case:
    """The stream, the starting model (pickled) and the serial loop's actions."""

    spec: StreamSpec
    stream: list[tuple[Any, np.ndarray]]
    start: bytes
    reference: list[np.ndarray]


def serial_loop(start: bytes, stream: list[tuple[Any, np.ndarray]]) -> list[np.ndarray]:
    """The loop in this process: the reference every engine must reproduce."""
    model = pickle.loads(start)
    actions = []
    for contexts, right in stream:
        actions.append(choose(model, contexts))
        learn(model, contexts, right)
    return actions


@pytest.fixture(scope="module")
def case(sizes: _harness.Sizes) -> Case:
    spec = StreamSpec(cycles=sizes.cycles)
    stream = make_stream(spec)
    start = pickle.dumps(new_learner(spec, stream[0]), protocol=5)
    return Case(spec, stream[1:], start, serial_loop(start, stream[1:]))


@contextlib.contextmanager
def _loop(
    engine: str, request: pytest.FixtureRequest, case: Case
) -> Iterator[tuple[Loop, Callable[[], None] | None]]:
    """Yield (loop, reset): ``reset`` puts a stateful engine back at the start, untimed."""
    if engine == "serial":
        yield (lambda: serial_loop(case.start, case.stream)), None
    elif engine == "spark-udf":
        yield _spark_loop(request.getfixturevalue("spark"), case), None
    elif engine == "dask-task":
        yield _dask_task_loop(request.getfixturevalue("dask_client"), case), None
    elif engine == "ray-task":
        request.getfixturevalue("ray_ready")
        yield _ray_task_loop(case), None
    elif engine == "dask-actor":
        with _dask_actor_loop(request.getfixturevalue("dask_client"), case) as pair:
            yield pair
    elif engine == "ray-actor":
        request.getfixturevalue("ray_ready")
        with _ray_actor_loop(case) as pair:
            yield pair
    else:
        raise ValueError(f"unknown engine {engine!r}")


def _spark_loop(spark: Any, case: Case) -> Loop:
    from pyspark.sql import functions as F

    features = case.spec.features
    schema = "row long, ix array<int>, val array<double>, right long"
    frames = []
    for contexts, right in case.stream:  # the contexts as they would arrive: one frame a cycle
        ix, val = to_arrays(contexts)
        rows = pd.DataFrame({"row": np.arange(len(right)), "ix": ix, "val": val, "right": right})
        frames.append(rows)

    def run() -> list[np.ndarray]:
        blob = case.start
        actions = []
        for rows in frames:
            frame = spark.createDataFrame(rows, schema)
            act = F.pandas_udf(_spark_act(blob, features), "long")
            chosen = frame.select("row", act("ix", "val").alias("a"))
            actions.append(chosen.toPandas().sort_values("row")["a"].to_numpy())
            # One partition, in row order: SGD's result depends on the order of examples.
            fit = _spark_fit(blob, features)
            updated = frame.coalesce(1).mapInPandas(fit, "model binary").collect()
            blob = bytes(updated[0]["model"])
        return actions

    return run


def _spark_act(model_bytes: bytes, features: int) -> Callable[[pd.Series, pd.Series], pd.Series]:
    """The predict UDF of one cycle: the model travels in its closure."""

    def act(ix: pd.Series, val: pd.Series) -> pd.Series:
        model = pickle.loads(model_bytes)  # re-loaded on every call
        return pd.Series(choose(model, from_arrays(ix, val, features)))

    return act


def _spark_fit(
    model_bytes: bytes, features: int
) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The feedback job of one cycle: learn, then send the updated model back."""

    def fit(parts: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = pickle.loads(model_bytes)
        for part in parts:
            learn(model, from_arrays(part["ix"], part["val"], features), part["right"])
        yield pd.DataFrame({"model": [pickle.dumps(model, protocol=5)]})

    return fit


def _dask_task_loop(client: Any, case: Case) -> Loop:
    timeout = _harness.RAY_GET_TIMEOUT_S

    def run() -> list[np.ndarray]:
        model = pickle.loads(case.start)
        actions = []
        for contexts, right in case.stream:
            shipped = client.scatter(model, hash=False)  # the model travels every cycle
            actions.append(client.submit(choose, shipped, contexts, pure=False).result(timeout))
            model = client.submit(learn_copy, shipped, contexts, right, pure=False).result(timeout)
            client.cancel(shipped)
        return actions

    return run


def _ray_task_loop(case: Case) -> Loop:
    import ray

    remote_choose, remote_learn = ray.remote(choose), ray.remote(learn_copy)
    timeout = _harness.RAY_GET_TIMEOUT_S

    def run() -> list[np.ndarray]:
        model = pickle.loads(case.start)
        actions = []
        for contexts, right in case.stream:
            shipped = ray.put(model)  # the model travels every cycle
            actions.append(ray.get(remote_choose.remote(shipped, contexts), timeout=timeout))
            model = ray.get(remote_learn.remote(shipped, contexts, right), timeout=timeout)
        return actions

    return run


@contextlib.contextmanager
def _dask_actor_loop(client: Any, case: Case) -> Iterator[tuple[Loop, Callable[[], None]]]:
    timeout = _harness.RAY_GET_TIMEOUT_S
    future = client.submit(OnlineAgent, case.start, actor=True)
    try:
        agent = future.result(timeout)

        def run() -> list[np.ndarray]:
            actions = []
            for contexts, right in case.stream:
                actions.append(agent.act(contexts).result(timeout))
                agent.feedback(contexts, right).result(timeout)
            return actions

        def reset() -> None:
            agent.reset(case.start).result(timeout)

        yield run, reset
    finally:
        client.cancel(future)


@contextlib.contextmanager
def _ray_actor_loop(case: Case) -> Iterator[tuple[Loop, Callable[[], None]]]:
    import ray

    timeout = _harness.RAY_GET_TIMEOUT_S
    with _harness.ray_actors(OnlineAgent, case.start, count=1) as (agent,):

        def run() -> list[np.ndarray]:
            actions = []
            for contexts, right in case.stream:
                actions.append(ray.get(agent.act.remote(contexts), timeout=timeout))
                ray.get(agent.feedback.remote(contexts, right), timeout=timeout)
            return actions

        def reset() -> None:
            ray.get(agent.reset.remote(case.start), timeout=timeout)

        yield run, reset


@pytest.mark.parametrize("engine", _engines.params(*ENGINES))
def test_online_learning(
    benchmark: Any,
    request: pytest.FixtureRequest,
    sizes: _harness.Sizes,
    case: Case,
    engine: str,
) -> None:
    spec = case.spec
    _harness.label(
        benchmark,
        "online-learning",
        f"{spec.cycles} cycles, SGDClassifier {spec.classes}x{spec.features:,}",
        engine,
        ideal_from_serial=1,
        model_mb=round(len(case.start) / 2**20, 2),
        cycles=spec.cycles,
        rows_per_cycle=spec.rows,
    )
    with _loop(engine, request, case) as (run, reset):
        actions = _harness.measure(
            benchmark, run, rounds=min(sizes.rounds, 3), warmup_rounds=1, setup=reset
        )
    assert len(actions) == len(case.reference)
    for cycle, (got, want) in enumerate(zip(actions, case.reference, strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"cycle {cycle}")
