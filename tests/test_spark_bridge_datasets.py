"""Spark DataFrame <-> Ray Dataset (`to_ray_dataset`, `from_ray_dataset`, `BlockOwner`).

Unit tests of the bookkeeping (no Ray, no Spark) first, then the cluster tests on the
shared Ray-on-Spark cluster: round trips equal to a pandas reference (nulls, non-ASCII
strings, timestamps, booleans, floats), the object store back to its baseline once a
Dataset is dropped or its owner closed, and arguments refused before any job starts.
A killed Python worker (a re-run Spark task) is in test_spark_bridge_datasets_faults.py.

Cost on the shared cluster: about 12 Spark jobs of a few thousand rows, and one
`BlockOwner` of its own (one actor per Ray node, no CPU).
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

import pandas as pd
import pyarrow as pa
import pyspark.cloudpickle
import pytest
import ray

from patterns import BlockOwner, FacadeClosedError, PatternError, from_ray_dataset, to_ray_dataset
from patterns.spark_bridge._blocks import Accepted, BlockShelf
from patterns.spark_bridge._datasets import (
    ExportPlan,
    _plain_arrow_type,
    _spark_failure,
    spark_schema_of,
)
from patterns.spark_bridge._executor import AuthSettings
from tests._object_store import settled_store_bytes, store_bytes, wait_for_baseline

TIMEOUT = 120  # seconds, for every wait

# Workers cannot import `tests`: Ray and Spark send this module's classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
pyspark.cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --- the shelf's bookkeeping, without Ray ---------------------------------------------------


def _shelf() -> BlockShelf:
    return BlockShelf(put=lambda table: f"ref:{table}", describe=len)


def test_take_hands_over_the_kept_attempt_in_order_and_drops_every_other() -> None:
    shelf = _shelf()
    # Partition 0: attempt 5 died after two blocks, attempt 8 (Spark's retry) sent three.
    for number, value in enumerate(["a", "b"]):
        shelf.deliver("t", 0, 5, number, value, rows=1, sender=100)
    for number, value in reversed(list(enumerate(["x", "y", "z"]))):  # any arrival order
        shelf.deliver("t", 0, 8, number, value, rows=2, sender=101)
    shelf.deliver("t", 1, 6, 0, "p1", rows=4, sender=100)
    assert shelf.holding() == 6

    kept = shelf.take("t", [Accepted(0, 8, 3), Accepted(1, 6, 1)])

    assert [b["ref"] for b in kept[0]] == ["ref:x", "ref:y", "ref:z"]
    assert [b["metadata"] for b in kept[0]] == [1, 1, 1]
    assert [b["ref"] for b in kept[1]] == ["ref:p1"]
    record = shelf.history()[-1]
    assert record.kept == {(0, 8): 3, (1, 6): 1}
    assert record.dropped == {(0, 5): 2}
    assert record.senders[(0, 5)] == 100
    assert shelf.holding() == 0


def test_an_accepted_attempt_with_missing_blocks_is_an_error_not_a_short_dataset() -> None:
    shelf = _shelf()
    shelf.deliver("t", 0, 1, 0, "a", rows=1)
    shelf.deliver("t", 0, 1, 2, "c", rows=1)  # block 1 never came
    with pytest.raises(PatternError, match=r"partition 0 \(attempt 1\): 2 of 3 blocks"):
        shelf.take("t", [Accepted(0, 1, 3)])
    assert shelf.holding() == 0


def test_a_partition_with_no_rows_takes_no_blocks() -> None:
    shelf = _shelf()
    assert shelf.take("t", [Accepted(3, 9, 0)]) == {3: []}


def test_late_deliveries_after_take_or_drop_are_refused() -> None:
    shelf = _shelf()
    shelf.deliver("t", 0, 1, 0, "a", rows=1)
    shelf.take("t", [Accepted(0, 1, 1)])
    with pytest.raises(PatternError, match="has ended"):
        shelf.deliver("t", 0, 2, 0, "speculative copy", rows=1)
    shelf.deliver("u", 0, 1, 0, "a", rows=1)
    assert shelf.drop("u") == 1
    with pytest.raises(PatternError, match="has ended"):
        shelf.deliver("u", 0, 1, 1, "b", rows=1)
    assert shelf.holding() == 0


def test_staged_references_are_handed_out_by_range_until_unstaged() -> None:
    shelf = _shelf()
    assert shelf.stage("s", ["r0", "r1", "r2", "r3"]) == 4
    assert shelf.staged("s", 1, 3) == ["r1", "r2"]
    assert shelf.holding() == 4
    shelf.unstage("s")
    with pytest.raises(PatternError, match="no blocks are staged"):
        shelf.staged("s", 0, 1)


def test_progress_names_each_open_attempt_and_its_sender() -> None:
    shelf = _shelf()
    shelf.deliver("t", 2, 7, 0, "a", rows=1, sender=4242)
    shelf.deliver("t", 2, 7, 1, "b", rows=1, sender=4242)
    assert shelf.progress() == {("t", 2, 7): (4242, 2)}


def test_a_task_on_a_node_without_an_actor_uses_another_by_partition() -> None:
    plan = ExportPlan(
        transfer="t", shelves={"node-a": "blocks-a", "node-b": "blocks-b"}, address="x",
        auth=AuthSettings(), idle_s=1.0, block_bytes=1, max_in_flight=1, timeout_s=1.0,
    )  # fmt: skip
    assert plan.shelf_for("node-b", 0) == "blocks-b"
    assert {plan.shelf_for("node-new", p) for p in range(4)} == {"blocks-a", "blocks-b"}


def test_a_spark_failure_is_summed_up_by_the_python_error_inside() -> None:
    text = (
        "Job aborted due to stage failure: Task 0 in stage 3.0 failed 4 times\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "patterns.errors.CallTimeoutError: BlockOwner actor 'b': deliver got no reply\n"
        "\tat org.apache.spark.api.python.BasePythonRunner.read(PythonRunner.scala:1)\n"
    )
    assert _spark_failure(RuntimeError(text)) == (
        "CallTimeoutError: BlockOwner actor 'b': deliver got no reply"
    )
    assert _spark_failure(RuntimeError("plain\nmore")) == "plain"


def test_arrow_large_types_become_plain_and_tensors_are_refused() -> None:
    assert _plain_arrow_type("c", pa.large_string()) == pa.string()
    assert _plain_arrow_type("c", pa.large_list(pa.large_binary())) == pa.list_(pa.binary())
    struct = spark_schema_of(pa.schema([("s", pa.large_string()), ("t", pa.timestamp("us"))]))
    assert [f.dataType.typeName() for f in struct.fields] == ["string", "timestamp_ntz"]
    from ray.data._internal.tensor_extensions.arrow import ArrowTensorType

    with pytest.raises(TypeError, match="'ds' column 'image' has the Arrow extension type"):
        _plain_arrow_type("image", ArrowTensorType((2, 2), pa.float32()))


def test_bad_arguments_fail_before_anything_starts_without_a_cluster() -> None:
    with pytest.raises(TypeError, match=r"'df' must be a pyspark.sql.DataFrame, got \[1\]"):
        to_ray_dataset([1])
    with pytest.raises(TypeError, match=r"'ds' must be a ray\.data\.Dataset, got 'x'"):
        from_ray_dataset("x", None)


# --- on the Ray-on-Spark cluster --------------------------------------------------------------


@pytest.fixture(scope="module")
def spark(ray_cluster: dict) -> Any:
    if ray_cluster["launcher"] is None:
        pytest.fail("Spark <-> Ray Dataset needs the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    return ray_cluster["launcher"].spark


COLUMNS = ["id", "city", "seen", "ok", "value", "weight"]


@pytest.fixture(scope="module")
def awkward(spark: Any) -> tuple[Any, list[tuple]]:
    """Nulls in every column, non-ASCII strings, timestamps, booleans, floats with a NaN.

    Returns the DataFrame (3 partitions) and the pandas reference as canonical rows.
    """
    cities = ["Zürich", "東京", "São Paulo", None, "ñandú", "Ελλάδα", "Kraków 🚲"]
    start = datetime.datetime(2024, 3, 31, 0, 30, 0, 123456)
    rows = [
        (
            i,
            cities[i % len(cities)],
            None if i % 11 == 0 else start + datetime.timedelta(minutes=37 * i),
            None if i % 3 == 0 else i % 2 == 0,
            None if i % 13 == 0 else i / 7 - 100.0,
            float("nan") if i == 17 else 1.0,
        )
        for i in range(3_000)
    ]
    schema = "id long, city string, seen timestamp, ok boolean, value double, weight double"
    frame = spark.createDataFrame(rows, schema).repartition(3).cache()
    assert frame.count() == len(rows)
    # The reference keeps None apart from NaN (object columns); Spark reads the naive
    # datetimes in the session's time zone.
    reference = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
    zone = spark.conf.get("spark.sql.session.timeZone")
    yield frame, _canonical(reference.itertuples(index=False), zone)
    frame.unpersist()


def _value(value: Any, zone: str) -> Any:
    """One value, comparable across pandas, Arrow and Spark: null None, NaN a marker,
    timestamps as UTC instants, numpy scalars as Python ones."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, datetime.datetime):
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(zone)
        return stamp.tz_convert("UTC").isoformat()
    if hasattr(value, "item"):
        return _value(value.item(), zone)
    return value


def _canonical(rows: Any, zone: str) -> list[tuple]:
    return sorted(tuple(_value(v, zone) for v in row) for row in rows)


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_to_ray_dataset_equals_the_pandas_reference(spark: Any, awkward: Any) -> None:
    frame, reference = awkward
    ds = to_ray_dataset(frame)

    assert ds.count() == len(reference)
    schema = ds.schema().base_schema
    assert schema.names == COLUMNS
    assert [str(t) for t in schema.types[:2]] == ["int64", "string"]
    assert pa.types.is_timestamp(schema.field("seen").type)
    assert [str(t) for t in schema.types[3:]] == ["bool", "double", "double"]
    zone = spark.conf.get("spark.sql.session.timeZone")
    got = _canonical((tuple(row[c] for c in COLUMNS) for row in ds.iter_rows()), zone)
    assert got == reference
    assert sum(1 for row in got if row[1] is None) > 0  # nulls stayed nulls
    assert sum(1 for row in got if row[5] == "NaN") == 1  # and the NaN a NaN


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_a_round_trip_gives_back_the_same_table_and_schema(spark: Any, awkward: Any) -> None:
    frame, reference = awkward
    back = from_ray_dataset(to_ray_dataset(frame), spark)

    assert back.schema == frame.schema  # types and nullability carried both ways
    zone = spark.conf.get("spark.sql.session.timeZone")
    assert _canonical(back.collect(), zone) == reference
    # Materialised in Spark: its plan reads checkpointed rows, not Ray.
    plan = back._jdf.queryExecution().optimizedPlan().toString()
    assert "LogicalRDD" in plan and "MapInArrow" not in plan


def _jobs_so_far(spark: Any) -> int:
    """Spark jobs this application has run (every status, every job group)."""
    return int(spark.sparkContext._jsc.sc().statusStore().jobsList(None).size())


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_from_ray_dataset_infers_or_casts_to_the_schema_given(spark: Any) -> None:
    ds = ray.data.range(1_000, override_num_blocks=4).map_batches(
        lambda b: {"id": b["id"], "name": [f"n°{i}" for i in b["id"]], "half": b["id"] / 2}
    )
    inferred = from_ray_dataset(ds, spark)
    assert [(f.name, f.dataType.typeName()) for f in inferred.schema.fields] == [
        ("id", "long"), ("name", "string"), ("half", "double"),
    ]  # fmt: skip
    rows = inferred.orderBy("id").collect()
    assert [r.id for r in rows] == list(range(1_000))
    assert rows[7].name == "n°7" and rows[7].half == 3.5

    given = from_ray_dataset(ds, spark, schema="half float, id int", num_partitions=2)
    assert given.rdd.getNumPartitions() == 2
    assert [(f.name, f.dataType.typeName()) for f in given.schema.fields] == [
        ("half", "float"), ("id", "integer"),
    ]  # fmt: skip
    assert sorted(r.id for r in given.collect()) == list(range(1_000))


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_empty_tables_keep_their_schema_both_ways(spark: Any) -> None:
    empty = spark.createDataFrame([], "id long, city string")
    ds = to_ray_dataset(empty)
    assert ds.count() == 0
    assert ds.schema().names == ["id", "city"]
    back = from_ray_dataset(ds, spark)
    assert back.count() == 0 and back.columns == ["id", "city"]

    nothing = ray.data.range(10).map_batches(lambda b: {"id": b["id"][b["id"] < 0]})
    assert from_ray_dataset(nothing, spark, schema="id long").count() == 0


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_a_dropped_dataset_leaves_the_object_store_at_its_baseline(spark: Any) -> None:
    frame = spark.range(200_000, numPartitions=2).selectExpr("id", "cast(id AS string) AS s")
    to_ray_dataset(spark.range(10)).count()  # the default owner's actors are up
    baseline = settled_store_bytes()

    ds = to_ray_dataset(frame, block_bytes=256 * 1024)
    assert ds.num_blocks() >= 4
    assert store_bytes() > baseline + 2_000_000
    doubled = ds.map_batches(lambda b: {"id": b["id"] * 2}).materialize()
    assert doubled.sum("id") == 2 * sum(range(200_000))

    del ds, doubled
    wait_for_baseline(baseline, after="the Datasets were dropped")


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_closing_the_owner_frees_blocks_whose_references_escaped(spark: Any) -> None:
    owner = BlockOwner(timeout=TIMEOUT)
    try:
        baseline = settled_store_bytes()
        ds = to_ray_dataset(spark.range(100_000, numPartitions=2), owner=owner)
        # Serialized by Ray's pickler outside a Ray call: Ray pins the blocks.
        escaped = ray.cloudpickle.dumps(ds.to_arrow_refs())
        del ds
        assert settled_store_bytes() > baseline, "a pickled reference keeps its blocks"
    finally:
        owner.close(timeout=TIMEOUT)
    wait_for_baseline(baseline, after="the owner was closed")
    assert len(escaped) > 0
    with pytest.raises(FacadeClosedError, match="is closed"):
        to_ray_dataset(spark.range(1), owner=owner)


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s, df: to_ray_dataset(df, block_bytes=0), ValueError, "'block_bytes' must be"),
        (lambda s, df: to_ray_dataset(df, owner="mine"), TypeError, "'owner' must be a Block"),
        (lambda s, df: to_ray_dataset(df, timeout=0), ValueError, "'timeout' must be"),
        (lambda s, df: from_ray_dataset(ray.data.range(3), "spark"), TypeError, "'spark' must"),
        (
            lambda s, df: from_ray_dataset(ray.data.range(3), s, schema="id lnog"),
            ValueError,
            "'schema' is not a valid Spark DDL schema",
        ),
        (
            lambda s, df: from_ray_dataset(ray.data.range(3), s, schema="nope long"),
            ValueError,
            "'schema' names columns the Dataset does not have: 'nope'",
        ),
        (
            lambda s, df: from_ray_dataset(ray.data.range(3), s, schema=5),
            TypeError,
            "'schema' must be None, a DDL string or a StructType, got 5",
        ),
        (
            lambda s, df: from_ray_dataset(ray.data.range(3), s, num_partitions=0),
            ValueError,
            "'num_partitions' must be an int >= 1",
        ),
    ],
    ids=["block-bytes", "owner", "timeout", "spark", "ddl", "missing-column", "schema-type",
         "partitions"],
)  # fmt: skip
def test_bad_arguments_fail_before_any_spark_job(
    spark: Any, call: Any, error: type, match: str
) -> None:
    df = spark.range(3)
    jobs_before = _jobs_so_far(spark)
    with pytest.raises(error, match=match):
        call(spark, df)
    time.sleep(0.5)  # Spark's status store hears of jobs asynchronously
    assert _jobs_so_far(spark) == jobs_before


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_a_value_that_does_not_fit_the_schema_names_its_column(spark: Any) -> None:
    ds = ray.data.from_items([{"id": 1, "code": "7"}, {"id": 2, "code": "x7"}])
    with pytest.raises(PatternError, match=r"column 'code'.*do not convert to int64"):
        from_ray_dataset(ds, spark, schema="id long, code long")


@pytest.mark.spark
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_the_default_owner_replaces_an_actor_that_died_between_transfers(spark: Any) -> None:
    """A crashed owner actor (SIGKILL, a node's memory monitor) owns nothing any more: the
    next transfer starts a new one instead of failing on the dead one for ever."""
    import os
    import signal

    from patterns._calls import wait_until_dead
    from patterns.spark_bridge._owner import default_owner

    assert to_ray_dataset(spark.range(10)).count() == 10  # the default owner is up
    owner = default_owner(timeout=TIMEOUT)
    victim = next(iter(owner._shelves.values()))
    pid, _node = ray.get(victim.ping.remote(), timeout=TIMEOUT)
    os.kill(pid, signal.SIGKILL)
    assert wait_until_dead([victim], timeout=TIMEOUT) == []

    ds = to_ray_dataset(spark.range(1_000, numPartitions=3))
    assert ds.count() == 1_000 and ds.sum("id") == sum(range(1_000))
    assert default_owner(timeout=TIMEOUT) is owner  # the same owner, its actor replaced
    assert victim not in owner._shelves.values()
