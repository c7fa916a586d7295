"""Spark DataFrame <-> Ray Dataset: `to_ray_dataset` / `from_ray_dataset` against the usual routes.

Three ways to hand a Spark table to Ray Data and its result back to Spark, on the same
cached table (``id``, two doubles and a short string per row):

- **bridge**: ``to_ray_dataset`` -> ``map_batches`` -> ``from_ray_dataset``: the
  executors put Arrow blocks in Ray's object store and read them back from it;
- **parquet**: Spark writes Parquet, ``ray.data.read_parquet``, ``map_batches``,
  ``write_parquet``, ``spark.read.parquet``: storage is the interface;
- **driver**: ``ray.data.from_arrow(df.toArrow())`` -> ``map_batches`` ->
  ``spark.createDataFrame(arrow table)``: everything through the driver.

``map_batches`` adds one column with Arrow compute (cheap, so the hand-offs dominate),
and every route ends with the same Spark aggregate over the result, checked against
the exact answer. The one-way legs are timed too: Spark -> Ray (until the Dataset is
materialised) and Ray -> Spark (until a Spark action has read the result).

Sizes: 1 M and 10 M rows (``make bench``), 20,000 rows in smoke mode. The routes run in
alternation, round after round, so a busy neighbour slows them alike; the medians and
their ratios to the Parquet route go to ``benchmark.extra_info`` and, in a timed run,
to ``benchmarks/results/spark_datasets.json`` and the table the Spark bridge page
includes (``spark_datasets.md``), both written by the run that measured them.

**Larger than the object store** (timed runs only): a table of about 2.6 GB (10 M rows
of 32 doubles) handed to Ray on a cluster whose object stores hold less in all; Ray
spills blocks to disk instead of failing, and the run records how much, and checks a
sum over every row against Spark's.

RayDP is not among the routes; the results file says why (`RAYDP`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _harness

pytestmark = [
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_JSON = RESULTS / "spark_datasets.json"
RESULTS_MD = RESULTS / "spark_datasets.md"
ROUNDS = {1_000_000: 3, 10_000_000: 2}
SPILL_ROWS, SPILL_COLUMNS = 10_000_000, 32

RAYDP = (
    "RayDP 1.6.5 (the newest on PyPI) requires pyspark<=3.5.7, and this project runs "
    "PySpark 4; and it converts only DataFrames of a Spark it starts itself inside Ray "
    "(raydp.init_spark: Spark executors as Ray actors), the reverse of Ray on Spark, so "
    "it cannot take a DataFrame of the Spark cluster that hosts Ray."
)


def _sizes(smoke: bool) -> list[int]:
    return [20_000] if smoke else [1_000_000, 10_000_000]


def _table(spark: Any, rows: int) -> Any:
    frame = spark.range(rows, numPartitions=2 * _harness.SLOTS).selectExpr(
        "id",
        "cast(id AS double) * 0.5 AS x",
        "cast(id % 1000 AS double) AS y",
        "concat('k', cast(id % 100000 AS string)) AS s",
    )
    frame = frame.cache()
    assert frame.count() == rows
    return frame


def _expected(rows: int) -> tuple[int, float]:
    """count and sum(z) for z = 2 x + y = id + id % 1000, exactly."""
    full, rest = divmod(rows, 1000)
    mods = full * (999 * 1000 // 2) + rest * (rest - 1) // 2
    return rows, float(rows * (rows - 1) // 2 + mods)


def add_z(batch: Any) -> Any:
    """The Ray step: one more column, with Arrow compute."""
    import pyarrow.compute as pc

    return batch.append_column("z", pc.add(pc.multiply(batch["x"], 2.0), batch["y"]))


def _spark_answer(frame: Any) -> tuple[int, float]:
    from pyspark.sql import functions as F

    row = frame.agg(F.count("*").alias("n"), F.sum("z").alias("total")).first()
    return int(row.n), float(row.total)


def _routes(spark: Any, frame: Any, folder: str) -> dict[str, Callable[[], tuple[int, float]]]:
    import pyarrow as pa
    import ray

    from patterns import from_ray_dataset, to_ray_dataset

    def bridge() -> tuple[int, float]:
        ds = to_ray_dataset(frame).map_batches(add_z, batch_format="pyarrow")
        return _spark_answer(from_ray_dataset(ds, spark))

    def parquet() -> tuple[int, float]:
        out, back = os.path.join(folder, "to-ray"), os.path.join(folder, "to-spark")
        for path in (out, back):
            shutil.rmtree(path, ignore_errors=True)
        frame.write.parquet(out)
        ray.data.read_parquet(out).map_batches(add_z, batch_format="pyarrow").write_parquet(back)
        return _spark_answer(spark.read.parquet(back))

    def driver() -> tuple[int, float]:
        ds = ray.data.from_arrow(frame.toArrow()).map_batches(add_z, batch_format="pyarrow")
        table = pa.concat_tables(ray.get(ds.to_arrow_refs(), timeout=_harness.RAY_GET_TIMEOUT_S))
        return _spark_answer(spark.createDataFrame(table))

    return {"bridge": bridge, "parquet": parquet, "driver": driver}


def _one_way(spark: Any, frame: Any, folder: str) -> dict[str, Callable[[], Any]]:
    """Spark -> Ray (materialised Dataset) and Ray -> Spark (a Spark action over it)."""
    import pyarrow as pa
    import ray

    from patterns import from_ray_dataset, to_ray_dataset

    source = to_ray_dataset(frame).map_batches(add_z, batch_format="pyarrow").materialize()

    def spark_to_ray(route: str) -> Callable[[], Any]:
        def run() -> int:
            if route == "bridge":
                ds = to_ray_dataset(frame)
            elif route == "parquet":
                path = os.path.join(folder, "one-way-to-ray")
                shutil.rmtree(path, ignore_errors=True)
                frame.write.parquet(path)
                ds = ray.data.read_parquet(path).materialize()
            else:
                ds = ray.data.from_arrow(frame.toArrow())
            return int(ds.count())

        return run

    def ray_to_spark(route: str) -> Callable[[], Any]:
        def run() -> tuple[int, float]:
            if route == "bridge":
                return _spark_answer(from_ray_dataset(source, spark))
            if route == "parquet":
                path = os.path.join(folder, "one-way-to-spark")
                shutil.rmtree(path, ignore_errors=True)
                source.write_parquet(path)
                return _spark_answer(spark.read.parquet(path))
            refs = source.to_arrow_refs()
            table = pa.concat_tables(ray.get(refs, timeout=_harness.RAY_GET_TIMEOUT_S))
            return _spark_answer(spark.createDataFrame(table))

        return run

    routes: dict[str, Callable[[], Any]] = {}
    for route in ("bridge", "parquet", "driver"):
        routes[f"spark-to-ray/{route}"] = spark_to_ray(route)
        routes[f"ray-to-spark/{route}"] = ray_to_spark(route)
    return routes


def _alternate(
    routes: dict[str, Callable[[], Any]], check: Callable[[str, Any], None], rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in routes}
    for _ in range(rounds):
        for name, run in routes.items():
            began = time.perf_counter()
            got = run()
            times[name].append(time.perf_counter() - began)
            check(name, got)
    return times


def _record(section: str, key: str, facts: dict[str, Any]) -> None:
    """Add a measured table to the results file (timed runs only) and rewrite the page table."""
    results: dict[str, Any] = {}
    if RESULTS_JSON.is_file():
        results = json.loads(RESULTS_JSON.read_text(encoding="utf-8"))
    results.setdefault(section, {})[key] = facts
    results["raydp"] = RAYDP
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    RESULTS_MD.write_text(markdown(results), encoding="utf-8")


def markdown(results: dict[str, Any]) -> str:
    """The page's tables, from the results file."""
    lines = ["| Rows | Route | Median s | Against Parquet |", "| --- | --- | --- | --- |"]
    names = {
        "bridge": "`to_ray_dataset` -> `map_batches` -> `from_ray_dataset`",
        "parquet": "Parquet files both ways",
        "driver": "through the driver (`toArrow`, `createDataFrame`)",
    }
    for key, facts in sorted(results.get("round_trip", {}).items(), key=lambda kv: int(kv[0])):
        for route, label in names.items():
            if f"{route}_s" not in facts:
                continue
            ratio = facts[f"{route}_s"] / facts["parquet_s"]
            lines.append(f"| {int(key):,} | {label} | {facts[f'{route}_s']:.2f} | {ratio:.2f}x |")
    lines.append("")
    lines.append("| Rows | Direction | `to_ray_dataset` / `from_ray_dataset` | Parquet | Driver |")
    lines.append("| --- | --- | --- | --- | --- |")
    for key, facts in sorted(results.get("one_way", {}).items(), key=lambda kv: int(kv[0])):
        for direction, label in (
            ("spark-to-ray", "Spark to Ray"),
            ("ray-to-spark", "Ray to Spark"),
        ):
            cells = [
                f"{facts[f'{direction}/{r}_s']:.2f} s" for r in ("bridge", "parquet", "driver")
            ]
            lines.append(f"| {int(key):,} | {label} | " + " | ".join(cells) + " |")
    when = {
        f["date"]
        for section in ("round_trip", "one_way")
        for f in results.get(section, {}).values()
    }
    loads = [
        f"{f['load_before']:.1f} to {f['load_after']:.1f}"
        for section in ("round_trip", "one_way")
        for f in results.get(section, {}).values()
    ]
    lines.append("")
    lines.append(
        f"Measured {', '.join(sorted(when))} on 2 shared cores (load average {'; '.join(loads)})."
    )
    spill = results.get("spill")
    if spill:
        lines.append("")
        lines.append(
            f"Larger than the object store: {spill['rows']:,} rows of {spill['columns']} "
            f"doubles ({spill['arrow_gb']:.2f} GB as Arrow) into object stores of "
            f"{spill['store_gb']:.2f} GB in all: `to_ray_dataset` took {spill['to_ray_s']:.1f} s, "
            f"Ray spilled {spill['spilled_gb']:.2f} GB to disk, and a sum over every row "
            f"({spill['sum_s']:.1f} s, blocks restored from disk as needed) matched Spark's."
        )
    return "\n".join(lines) + "\n"


def _report(benchmark: Any, times: dict[str, list[float]], baseline: str, **facts: Any) -> dict:
    medians = {name: statistics.median(values) for name, values in times.items()}
    info: dict[str, Any] = dict(facts)
    for name, median in medians.items():
        info[f"{name}_s"] = round(median, 3)
        if name != baseline and "/" not in name:
            info[f"{name}_over_{baseline}"] = round(median / medians[baseline], 3)
    benchmark.extra_info.update(info)
    _harness.say(f"  [{benchmark.group}] " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return info


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rows" in metafunc.fixturenames:
        sizes = _sizes(_harness.is_smoke(metafunc.config))
        metafunc.parametrize("rows", sizes, ids=lambda n: f"{n:,}-rows".replace(",", "_"))


def test_bench_round_trip(
    benchmark: Any, spark: Any, ray_ready: dict, sizes: _harness.Sizes, rows: int
) -> None:
    frame = _table(spark, rows)
    expected = _expected(rows)
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-datasets-") as folder:
            routes = _routes(spark, frame, folder)

            def check(name: str, got: Any) -> None:
                assert got == expected, (name, got, expected)

            benchmark.group = f"spark <-> ray dataset: round trip, {rows:,} rows"
            rounds = 1 if sizes.smoke else ROUNDS[rows]
            if not sizes.smoke:  # one untimed round: Python workers, imports, plans
                _alternate(routes, check, 1)
            times: dict[str, list[float]] = {}
            benchmark.pedantic(
                lambda: times.update(_alternate(routes, check, rounds)), rounds=1, iterations=1
            )
        info = _report(benchmark, times, "parquet", rows=rows, rounds=rounds)
        if not sizes.smoke:
            _record("round_trip", str(rows), {
                **info, "date": time.strftime("%Y-%m-%d %H:%M"),
                "load_before": load_before, "load_after": os.getloadavg()[0],
            })  # fmt: skip
    finally:
        frame.unpersist()


def test_bench_one_way(
    benchmark: Any, spark: Any, ray_ready: dict, sizes: _harness.Sizes, rows: int
) -> None:
    frame = _table(spark, rows)
    expected = _expected(rows)
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-datasets-") as folder:
            routes = _one_way(spark, frame, folder)

            def check(name: str, got: Any) -> None:
                want = rows if name.startswith("spark-to-ray") else expected
                assert got == want, (name, got, want)

            benchmark.group = f"spark <-> ray dataset: one way, {rows:,} rows"
            rounds = 1 if sizes.smoke else ROUNDS[rows]
            if not sizes.smoke:
                _alternate(routes, check, 1)
            times: dict[str, list[float]] = {}
            benchmark.pedantic(
                lambda: times.update(_alternate(routes, check, rounds)), rounds=1, iterations=1
            )
        info = _report(benchmark, times, "parquet", rows=rows, rounds=rounds)
        if not sizes.smoke:
            _record("one_way", str(rows), {
                **info, "date": time.strftime("%Y-%m-%d %H:%M"),
                "load_before": load_before, "load_after": os.getloadavg()[0],
            })  # fmt: skip
    finally:
        frame.unpersist()


def _store_stats() -> Any:
    from ray._private.internal_api import get_memory_info_reply
    from ray._private.state import state

    return get_memory_info_reply(state).store_stats


def test_bench_larger_than_the_object_store(
    benchmark: Any, spark: Any, ray_ready: dict, sizes: _harness.Sizes
) -> None:
    import ray

    from patterns import to_ray_dataset

    # Smoke mode: the same code on 20,000 rows (correctness only: nothing spills).
    rows = 20_000 if sizes.smoke else SPILL_ROWS
    columns = [f"id * {i + 1}.0 AS c{i}" for i in range(SPILL_COLUMNS)]
    frame = spark.range(rows, numPartitions=16).selectExpr("id", *columns)
    store_bytes = sum(
        n["Resources"].get("object_store_memory", 0) for n in ray.nodes() if n.get("Alive")
    )
    arrow_bytes = rows * (SPILL_COLUMNS + 1) * 8
    if not sizes.smoke:
        assert arrow_bytes > store_bytes, "the table must be larger than the object stores"
    spilled_before = _store_stats().spilled_bytes_total
    load_before = os.getloadavg()[0]
    benchmark.group = "spark <-> ray dataset: larger than the object store"
    timings: dict[str, float] = {}

    def measured() -> None:
        began = time.perf_counter()
        ds = to_ray_dataset(frame)
        timings["to_ray_s"] = time.perf_counter() - began
        began = time.perf_counter()
        timings["total"] = ds.sum("c0")
        timings["sum_s"] = time.perf_counter() - began
        del ds

    benchmark.pedantic(measured, rounds=1, iterations=1)
    spilled = _store_stats().spilled_bytes_total - spilled_before
    assert timings["total"] == float(rows * (rows - 1) // 2)
    if sizes.smoke:
        return
    assert spilled > 0, "nothing was spilled: the table fit in the object store"
    facts = {
        "rows": rows, "columns": SPILL_COLUMNS + 1, "arrow_gb": arrow_bytes / 1e9,
        "store_gb": store_bytes / 1e9, "spilled_gb": spilled / 1e9,
        "to_ray_s": round(timings["to_ray_s"], 1), "sum_s": round(timings["sum_s"], 1),
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }  # fmt: skip
    benchmark.extra_info.update(facts)
    _harness.say(f"  [{benchmark.group}] {facts}")
    results = json.loads(RESULTS_JSON.read_text(encoding="utf-8")) if RESULTS_JSON.is_file() else {}
    results["spill"] = facts
    results["raydp"] = RAYDP
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    RESULTS_MD.write_text(markdown(results), encoding="utf-8")
