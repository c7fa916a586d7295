"""Spark bridge benchmarks: per-group models against Spark's own per-group UDFs, and scale.

- **Per-group model, uniform and skewed groups.** The same model (a scikit-learn
  ``SGDRegressor`` with a fixed number of epochs, so its cost grows with the group's
  rows) fitted per group and used for a one-step forecast, six ways:
  ``applyInPandas``; a grouped-aggregate pandas UDF; ``map_groups_with_actors``
  (executor transport, each key to its actor) starting its own pool per call; the
  same with ``key_affinity=False`` (each group to the least busy actor); and both
  again on a ``BridgePool`` started before the timed rounds and kept across them
  (``bridge-pool``, ``bridge-pool-balanced``), as Spark keeps its Python workers.
  Skewed groups: a few groups have 50 x the median's rows, so 50 x its fit cost.
- **10,000 small groups end to end**: ``map_groups_with_actors`` against
  ``applyInPandas``, time per group.

The batch comparison (both transports against ``mapInPandas`` alone, with a 10 MB
model) is part of workload 5 (``test_engines_ray_in_spark.py``).

- **The bridge's fixed cost per call** (uniform groups only): ``map_groups_with_actors``
  on the same groups with a trivial ``__call__`` (the group's mean), so its time is
  what a call costs whatever the work: the pool's actors starting, Spark's shuffle,
  the result's checkpoint.

Within a test, the engines run in alternation, round after round, so a busy neighbour
slows them alike; each engine's median and its ratio to ``applyInPandas`` go to
``benchmark.extra_info``. Every round's result is checked against a reference computed
in this process. Smoke mode (``--benchmark-disable``): tiny sizes, one round.

Budget: the full run of this file and ``test_engines_ray_in_spark.py`` must stay near
20 minutes on 2 shared cores, cluster start included, so each test runs ``ROUNDS``
measured rounds (the per-group tests after one untimed warm-up round).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks import _harness

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

EPOCHS = 200  # per-row cost of a fit: about 10 ms for a 200-row group here
ROUNDS = 2  # measured rounds in the full run (the budget above)
SCHEMA = "g string, forecast double"


def _features(days: np.ndarray) -> np.ndarray:
    angle = 2 * np.pi * days / 7
    return np.column_stack([days / 100.0, np.sin(angle), np.cos(angle)])


def forecast_next(days: np.ndarray, units: np.ndarray) -> float:
    """Fit the group's model (SGD, fixed epochs) and forecast the next day."""
    from sklearn.linear_model import SGDRegressor

    order = np.argsort(days)  # the fit depends on row order: make it the same everywhere
    days, units = days[order], units[order]
    model = SGDRegressor(max_iter=EPOCHS, tol=None, random_state=0)
    model.fit(_features(days), units)
    return float(model.predict(_features(np.array([days[-1] + 1.0])))[0])


class GroupForecaster:
    """The bridge's pool class: one forecast per group."""

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        value = forecast_next(group["day"].to_numpy(float), group["units"].to_numpy(float))
        return pd.DataFrame({"g": [key[0]], "forecast": [value]})


def _group_sizes(shape: str, smoke: bool) -> list[int]:
    if smoke:
        return [20] * 6 + ([200] if shape == "skewed" else [20])
    median, groups, heavy = 200, 96, 4
    if shape == "uniform":
        return [median] * groups
    return [median] * (groups - heavy) + [50 * median] * heavy


def _table(spark: Any, sizes: list[int]) -> tuple[Any, pd.Series, pd.Series]:
    """Rows (g, day, units) for groups of these sizes, cached; reference forecasts and means."""
    groups = np.repeat([f"g{i:05d}" for i in range(len(sizes))], sizes)
    days = np.concatenate([np.arange(n, dtype=float) for n in sizes])
    units = 10 + 0.05 * days + 3 * np.sin(2 * np.pi * days / 7) + (np.arange(len(days)) % 7) / 7
    local = pd.DataFrame({"g": groups, "day": days, "units": units})
    frame = spark.createDataFrame(local).repartition(_harness.SLOTS).cache()
    assert frame.count() == len(local)
    reference = local.groupby("g").apply(
        lambda d: forecast_next(d["day"].to_numpy(), d["units"].to_numpy()), include_groups=False
    )
    return frame, reference, local.groupby("g")["units"].mean().sort_index()


def _engines(
    frame: Any, *, fixed_cost: bool = False, pool: Any = None
) -> dict[str, Callable[[], pd.Series]]:
    from pyspark.sql import functions as F

    from patterns import map_groups_with_actors

    def apply_in_pandas() -> pd.Series:
        def one(group: pd.DataFrame) -> pd.DataFrame:
            value = forecast_next(group["day"].to_numpy(float), group["units"].to_numpy(float))
            return pd.DataFrame({"g": [group["g"].iloc[0]], "forecast": [value]})

        return _series(frame.groupBy("g").applyInPandas(one, SCHEMA))

    @F.pandas_udf("double")  # a grouped-aggregate pandas UDF: Series in, scalar out
    def forecast_udf(days: pd.Series, units: pd.Series) -> float:
        return forecast_next(days.to_numpy(float), units.to_numpy(float))

    def pandas_udf() -> pd.Series:
        return _series(frame.groupBy("g").agg(forecast_udf("day", "units").alias("forecast")))

    def bridge(affinity: bool) -> Callable[[], pd.Series]:
        def run() -> pd.Series:
            out = map_groups_with_actors(
                frame, "g", GroupForecaster, output_schema=SCHEMA, n_actors=_harness.SLOTS,
                key_affinity=affinity, batch_size=1_000, progress=False,
            )  # fmt: skip
            return _series(out)

        return run

    def bridge_pool(affinity: bool) -> Callable[[], pd.Series]:
        def run() -> pd.Series:
            out = map_groups_with_actors(
                frame, "g", pool, output_schema=SCHEMA, key_affinity=affinity,
                batch_size=1_000, progress=False,
            )  # fmt: skip
            return _series(out)

        return run

    engines = {
        "apply-in-pandas": apply_in_pandas,
        "pandas-udf": pandas_udf,
        "bridge": bridge(True),
        "bridge-balanced": bridge(False),
    }
    if pool is not None:
        engines["bridge-pool"] = bridge_pool(True)
        engines["bridge-pool-balanced"] = bridge_pool(False)
    if fixed_cost:

        def bridge_trivial() -> pd.Series:
            out = map_groups_with_actors(
                frame, "g", GroupMean, output_schema=SCHEMA, n_actors=_harness.SLOTS,
                batch_size=1_000, progress=False,
            )  # fmt: skip
            return _series(out)

        engines["bridge-fixed-cost"] = bridge_trivial
    return engines


def _series(out: Any) -> pd.Series:
    frame = out.toPandas()
    return frame.set_index("g")["forecast"].sort_index()


def _alternate(
    engines: dict[str, Callable[[], pd.Series]],
    reference: pd.Series,
    rounds: int,
    others: dict[str, pd.Series] | None = None,
) -> dict[str, list[float]]:
    """Run every engine once per round, in turn; check each result; seconds per engine.

    ``others`` holds the reference of an engine that computes something else.
    """
    times: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, run in engines.items():
            began = time.perf_counter()
            got = run()
            times[name].append(time.perf_counter() - began)
            expected = (others or {}).get(name, reference)
            assert list(got.index) == list(expected.index), name
            np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-9)
    return times


def _report(benchmark: Any, times: dict[str, list[float]], baseline: str, **facts: Any) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    info: dict[str, Any] = dict(facts)
    for name, median in medians.items():
        info[f"{name}_s"] = round(median, 3)
        if name != baseline:
            info[f"{name}_over_{baseline}"] = round(median / medians[baseline], 3)
    benchmark.extra_info.update(info)
    _harness.say(f"  [{benchmark.group}] " + ", ".join(f"{k}={v}" for k, v in info.items()))


@pytest.mark.parametrize("shape", ["uniform", "skewed"])
def test_bench_per_group_model(
    benchmark: Any, spark: Any, ray_ready: dict, sizes: _harness.Sizes, shape: str
) -> None:
    from patterns import BridgePool

    group_sizes = _group_sizes(shape, sizes.smoke)
    frame, reference, means = _table(spark, group_sizes)
    others = {"bridge-fixed-cost": means}
    # Started before the timing, as Spark's Python workers are (the full run only:
    # tests/test_spark_bridge_cluster.py checks BridgePool itself). Its actors hold
    # no CPU in Ray's books, so that the engines starting a pool per call can still
    # place theirs; they all run on the same cores anyway.
    pool = None
    if not sizes.smoke:
        pool = BridgePool(GroupForecaster, n_actors=_harness.SLOTS, actor_options={"num_cpus": 0})
    try:
        if pool is not None:
            pool.wait_ready()
        engines = _engines(frame, fixed_cost=shape == "uniform" and not sizes.smoke, pool=pool)
        if sizes.smoke:  # correctness only: each engine's code once, over both shapes
            keep = {"uniform": ("apply-in-pandas", "pandas-udf", "bridge"),
                    "skewed": ("bridge-balanced",)}[shape]  # fmt: skip
            engines = {name: run for name, run in engines.items() if name in keep}
        benchmark.group = f"spark bridge: per-group model, {shape} groups"
        rounds = 1 if sizes.smoke else ROUNDS
        if not sizes.smoke:  # one untimed round: Python workers, imports, JIT of the plans
            _alternate(engines, reference, 1, others)
        times: dict[str, list[float]] = {}

        def measured() -> None:
            times.update(_alternate(engines, reference, rounds, others))

        benchmark.pedantic(measured, rounds=1, iterations=1)
        skew = max(group_sizes) / statistics.median(group_sizes)
        if "apply-in-pandas" not in times:
            return
        _report(
            benchmark, times, "apply-in-pandas", groups=len(group_sizes),
            rows=sum(group_sizes), largest_over_median=skew, rounds=rounds,
        )  # fmt: skip
    finally:
        if pool is not None:
            pool.close()
        frame.unpersist()


class GroupMean:
    """Tiny per-group work: the cost per group is the bridge's own."""

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"g": [key[0]], "forecast": [float(group["units"].mean())]})


def test_bench_many_small_groups(
    benchmark: Any, spark: Any, ray_ready: dict, sizes: _harness.Sizes
) -> None:
    from patterns import BridgeStats, map_groups_with_actors

    groups = 200 if sizes.smoke else 10_000
    rows_per_group = 5
    spark_frame = spark.range(groups * rows_per_group, numPartitions=_harness.SLOTS).selectExpr(
        f"concat('g', lpad(cast(id % {groups} AS string), 5, '0')) AS g",
        "cast(id AS double) AS units",
    )
    frame = spark_frame.cache()
    assert frame.count() == groups * rows_per_group
    local = frame.toPandas()
    reference = local.groupby("g")["units"].mean().sort_index()
    stats = BridgeStats()

    def apply_in_pandas() -> pd.Series:
        def one(group: pd.DataFrame) -> pd.DataFrame:
            return pd.DataFrame({"g": [group["g"].iloc[0]], "forecast": [group["units"].mean()]})

        return _series(frame.groupBy("g").applyInPandas(one, SCHEMA))

    def bridge() -> pd.Series:
        out = map_groups_with_actors(
            frame, "g", GroupMean, output_schema=SCHEMA, n_actors=_harness.SLOTS,
            progress=False, stats=stats,
        )  # fmt: skip
        return _series(out)

    engines = {"apply-in-pandas": apply_in_pandas, "bridge": bridge}
    try:
        benchmark.group = "spark bridge: 10,000 small groups end to end"
        rounds = 1 if sizes.smoke else ROUNDS
        times: dict[str, list[float]] = {}

        def measured() -> None:
            times.update(_alternate(engines, reference, rounds))

        benchmark.pedantic(measured, rounds=1, iterations=1)
        per_group_ms = {
            f"{name}_ms_per_group": round(statistics.median(v) / groups * 1000, 3)
            for name, v in times.items()
        }
        _report(
            benchmark, times, "apply-in-pandas", groups=groups, calls=stats.batches,
            **per_group_ms,
        )  # fmt: skip
        assert stats.groups == groups
    finally:
        frame.unpersist()


# --- the workload actors exist for: a model expensive to load ----------------------------------

LOAD_S = 1.0
"""What loading the model costs (a sleep: reading weights from storage takes time, not CPU)."""


class _LoadedModel:
    """A model whose load takes `LOAD_S`; scoring a group is cheap (its mean, scaled)."""

    def __init__(self) -> None:
        time.sleep(LOAD_S)
        self.scale = 1.0

    def score(self, units: pd.Series) -> float:
        return float(units.mean()) * self.scale


class ScoresWithLoadedModel:
    """The bridge's pool class: the model is loaded once, in ``__init__``."""

    def __init__(self) -> None:
        self.model = _LoadedModel()

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"g": [key[0]], "forecast": [self.model.score(group["units"])]})


def test_bench_expensive_model(
    benchmark: Any, spark: Any, ray_ready: dict, sizes: _harness.Sizes
) -> None:
    """A model that costs `LOAD_S` to load, cheap per group: where actors should win.

    ``applyInPandas`` loads it per group (the plain way), or once per Spark task (a cache
    in the function's closure, which Spark unpickles once per task); the bridge loads it
    once per actor: on a `BridgePool` before the timed rounds, or per call with a pool of
    its own (its actors load in parallel while Spark starts the job).
    """
    from patterns import BridgePool, map_groups_with_actors

    groups = 6 if sizes.smoke else 24
    spark_frame = spark.range(groups * 50, numPartitions=_harness.SLOTS).selectExpr(
        f"concat('g', lpad(cast(id % {groups} AS string), 5, '0')) AS g",
        "cast(id AS double) AS units",
    )
    frame = spark_frame.cache()
    assert frame.count() == groups * 50
    reference = frame.toPandas().groupby("g")["units"].mean().sort_index()

    def apply_per_group() -> pd.Series:
        def one(group: pd.DataFrame) -> pd.DataFrame:
            model = _LoadedModel()
            return pd.DataFrame(
                {"g": [group["g"].iloc[0]], "forecast": [model.score(group["units"])]}
            )

        return _series(frame.groupBy("g").applyInPandas(one, SCHEMA))

    def apply_per_task() -> pd.Series:
        loaded: list[_LoadedModel] = []  # one per task: Spark unpickles the function per task

        def one(group: pd.DataFrame) -> pd.DataFrame:
            if not loaded:
                loaded.append(_LoadedModel())
            value = loaded[0].score(group["units"])
            return pd.DataFrame({"g": [group["g"].iloc[0]], "forecast": [value]})

        return _series(frame.groupBy("g").applyInPandas(one, SCHEMA))

    def bridge_own_pool() -> pd.Series:
        out = map_groups_with_actors(
            frame, "g", ScoresWithLoadedModel, output_schema=SCHEMA, n_actors=_harness.SLOTS,
            progress=False,
        )  # fmt: skip
        return _series(out)

    pool = BridgePool(ScoresWithLoadedModel, n_actors=_harness.SLOTS, actor_options={"num_cpus": 0})

    def bridge_pool() -> pd.Series:
        return _series(
            map_groups_with_actors(frame, "g", pool, output_schema=SCHEMA, progress=False)
        )

    engines = {
        "apply-in-pandas": apply_per_group,
        "apply-in-pandas-per-task": apply_per_task,
        "bridge": bridge_own_pool,
        "bridge-pool": bridge_pool,
    }
    try:
        pool.wait_ready()
        benchmark.group = "spark bridge: a model that costs 1 s to load"
        rounds = 1 if sizes.smoke else ROUNDS
        if not sizes.smoke:
            _alternate(engines, reference, 1)
        times: dict[str, list[float]] = {}

        def measured() -> None:
            times.update(_alternate(engines, reference, rounds))

        benchmark.pedantic(measured, rounds=1, iterations=1)
        partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
        _report(
            benchmark, times, "apply-in-pandas", groups=groups, load_s=LOAD_S,
            shuffle_partitions=partitions, rounds=rounds,
        )  # fmt: skip
    finally:
        pool.close()
        frame.unpersist()
