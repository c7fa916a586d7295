"""Spark bridge on the Ray-on-Spark cluster: results, key affinity, errors, progress, connections.

Every result is checked against a pure-pandas reference computed in this process. The
acceptance tables: 100,000 rows in 200 groups, and a table with nulls and non-ASCII
keys; both transports. Killed actors are in test_spark_bridge_faults.py.
"""

from __future__ import annotations

import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import ray

from patterns import (
    BridgeBatchError,
    BridgeError,
    BridgeSchemaError,
    BridgeStats,
    FacadeClosedError,
    actor_for_key,
    map_batches_with_actors,
    map_groups_with_actors,
)

pytestmark = [
    pytest.mark.spark,
    pytest.mark.timeout(600),
    # PySpark 4 warns on every pandas conversion that it predates pandas 3; nothing to act on.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

TRANSPORTS = ["executor", "driver"]
ROWS, STORES, ITEMS = 100_000, 20, 10  # 200 groups of 500 rows
# The pool's actors take a fraction of a CPU each, so other tests' actors never block them.
OPTIONS = {"num_cpus": 0.25}

# Workers cannot import `tests`: send this module's classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def spark(ray_cluster: dict) -> Any:
    if ray_cluster["launcher"] is None:
        pytest.fail("the Spark bridge needs the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    return ray_cluster["launcher"].spark


@pytest.fixture(scope="module")
def sales(spark: Any) -> tuple[Any, pd.DataFrame]:
    """100,000 rows, 200 (store, item) groups, cached in Spark and copied to pandas."""
    from pyspark.sql import functions as F

    frame = (
        spark.range(ROWS, numPartitions=4)
        .select(
            "id",
            F.concat(F.lit("store-"), (F.col("id") % STORES).cast("string")).alias("store"),
            ((F.col("id") / STORES).cast("long") % ITEMS).alias("item"),
            ((F.col("id") * 7919 % 1000) / 10.0).alias("units"),
        )
        .cache()
    )
    local = frame.toPandas()
    assert len(local) == ROWS and local.groupby(["store", "item"]).ngroups == STORES * ITEMS
    yield frame, local
    frame.unpersist()


@pytest.fixture(scope="module")
def awkward(spark: Any) -> tuple[Any, pd.DataFrame]:
    """Nulls in both key columns (a string and an int) and in the values; non-ASCII keys."""
    cities = ["Zürich", "東京", "São Paulo", None, "ñandú", "Ελλάδα", "Kraków"]
    rows = [
        (
            i,
            cities[i % len(cities)],
            None if i % 11 == 0 else i % 3,
            None if i % 13 == 0 else float(i % 17) / 4,
        )
        for i in range(3_000)
    ]
    frame = spark.createDataFrame(rows, "id long, city string, tier int, value double").cache()
    local = pd.DataFrame(rows, columns=["id", "city", "tier", "value"])
    yield frame, local
    frame.unpersist()


# --- the classes the pool runs --------------------------------------------------------------


class Scale:
    """Per-row work on a batch (and the pid, to see which actor did it)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {"id": batch["id"], "scaled": batch["units"] * self.factor, "pid": os.getpid()}
        )


def summarize(key: tuple, group: pd.DataFrame) -> pd.DataFrame:
    """The per-group reference work: sizes, sums, a fitted slope."""
    group = group.sort_values("id")
    values = group["units"].to_numpy()
    slope = float(np.polyfit(np.arange(len(values)), values, 1)[0]) if len(values) > 1 else 0.0
    return pd.DataFrame(
        {
            "store": [key[0]],
            "item": [key[1]],
            "rows": [len(group)],
            "total": [float(values.sum())],
            "slope": [slope],
        }
    )


class Summarize:
    """`summarize` in an actor, plus a per-actor token to check key affinity."""

    def __init__(self) -> None:
        self.token = f"{os.getpid()}-{time.monotonic_ns()}"
        self.keys_seen: set[tuple] = set()

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        assert key not in self.keys_seen, f"{key} came twice to this actor"
        self.keys_seen.add(key)
        return summarize(key, group).assign(actor=self.token)


SUMMARY = "store string, item long, rows long, total double, slope double, actor string"


class CityStats:
    """Per-group work on the awkward table: the key comes back as the actor got it."""

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "city": [key[0]],
                "tier": [key[1]],
                "rows": [len(group)],
                "nulls": [int(group["value"].isna().sum())],
                "total": [float(group["value"].sum(skipna=True))],
            }
        )


# --- results equal a pandas reference ---------------------------------------------------------


IDLE_S = 5.0


def _alive_drivers() -> set[int]:
    return {job["DriverPid"] for job in ray._private.state.jobs() if not job["IsDead"]}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_batches_equal_a_pandas_reference(
    sales: tuple[Any, pd.DataFrame], transport: str, capsys: pytest.CaptureFixture[str]
) -> None:
    frame, local = sales
    drivers = _alive_drivers()
    stats = BridgeStats()
    out = map_batches_with_actors(
        frame,
        Scale,
        actor_args=(2.5,),
        output_schema="id long, scaled double, pid long",
        batch_size=7_000,
        transport=transport,
        actor_options=OPTIONS,
        stats=stats,
        progress=False,
        # Long enough that a Python worker keeps its connection between two of its
        # tasks even on a saturated machine (with 1 s, a gap between tasks under a
        # load average of 20 made one worker reconnect), short enough to wait for.
        executor_idle_s=IDLE_S,
    ).toPandas()
    assert "[spark-bridge" not in capsys.readouterr().err  # progress=False: silent
    expected = pd.DataFrame({"id": local["id"], "scaled": local["units"] * 2.5})
    got = out.sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[["id", "scaled"]], expected, check_dtype=False)
    assert stats.rows_in == stats.rows_out == ROWS
    assert stats.batches == sum(stats.batches_per_actor) >= math.ceil(ROWS / 7_000)
    assert all(n > 0 for n in stats.batches_per_actor)  # both actors worked
    assert out["pid"].nunique() == 2
    assert stats.peak_in_flight <= 2  # the senders' own count; checked from the actors below
    assert stats.transport == transport
    if transport == "executor":
        # Spark reused its Python worker(s) for the 4 tasks: each connected to Ray once...
        assert 1 <= stats.connections == stats.senders <= 2
        # ... and left the cluster after executor_idle_s without bridge work.
        deadline = time.monotonic() + IDLE_S + 60
        while _alive_drivers() != drivers:
            assert time.monotonic() < deadline, f"still connected: {_alive_drivers() - drivers}"
            time.sleep(0.5)
    else:
        assert stats.connections == 0 and stats.senders == 1  # the driver sent everything


class NameLengths:
    """Per-row work on the awkward table: nulls and non-ASCII strings through a batch."""

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": batch["id"],
                "city": batch["city"],
                "letters": batch["city"].str.len(),
                "doubled": batch["value"] * 2,
            }
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_batches_with_nulls_and_non_ascii_strings(
    awkward: tuple[Any, pd.DataFrame], transport: str
) -> None:
    frame, local = awkward
    out = map_batches_with_actors(
        frame, NameLengths, output_schema="id long, city string, letters int, doubled double",
        batch_size=700, transport=transport, actor_options=OPTIONS, progress=False,
    ).toPandas()  # fmt: skip
    expected = NameLengths()(local)
    got = out.sort_values("id").reset_index(drop=True)
    assert got["city"].isna().sum() == expected["city"].isna().sum() > 0
    assert got["doubled"].isna().sum() == expected["doubled"].isna().sum() > 0
    assert set(got["city"].dropna()) == {"Zürich", "東京", "São Paulo", "ñandú", "Ελλάδα", "Kraków"}
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


class Overlaps:
    """Counts, in the actor, the calls that are inside ``__call__`` at the same time.

    The pool actor runs calls in threads (``max_concurrency`` > 1), so every call that
    a sender has out to it is inside at once. Each call waits there until the sender
    could have filled its window (``max_in_flight`` calls, or all that are left), then
    a little longer, giving a call beyond the window the chance to come in too. The
    most calls ever inside at once is what the bound must hold, counted without the
    sender's help.
    """

    def __init__(self, max_in_flight: int, total: int) -> None:
        self.window, self.total = max_in_flight, total
        self.inside = self.finished = self.peak = 0
        self.changed = threading.Condition()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        with self.changed:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
            self.changed.notify_all()
            full = min(self.window, self.total - self.finished)
            self.changed.wait_for(lambda: self.inside >= full, timeout=60)
            self.changed.wait_for(lambda: self.inside > self.window, timeout=0.5)
            self.inside -= 1
            self.finished += 1
            self.changed.notify_all()
            return pd.DataFrame({"id": batch["id"], "peak": self.peak})


def test_an_actor_never_has_more_than_max_in_flight_calls_from_a_sender(spark: Any) -> None:
    batches, max_in_flight = 4, 2
    out = map_batches_with_actors(
        spark.range(batches * 10, numPartitions=1),  # one Spark task: one sender
        Overlaps, actor_args=(max_in_flight, batches), output_schema="id long, peak long",
        n_actors=1, batch_size=10, max_in_flight=max_in_flight, progress=False,
        actor_options={**OPTIONS, "max_concurrency": 8},
    ).toPandas()  # fmt: skip
    assert sorted(out["id"]) == list(range(batches * 10))
    # Sent without the bound (the dispatcher made to never wait), 3 calls came in at once.
    assert out["peak"].max() == max_in_flight


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_groups_equal_a_pandas_reference_and_keep_key_affinity(
    sales: tuple[Any, pd.DataFrame], transport: str
) -> None:
    frame, local = sales
    stats = BridgeStats()
    out = map_groups_with_actors(
        frame,
        ["store", "item"],
        Summarize,
        output_schema=SUMMARY,
        n_actors=3,
        transport=transport,
        batch_size=2_000,  # packs 4 groups of 500 rows per call
        actor_options=OPTIONS,
        stats=stats,
    ).toPandas()
    expected = pd.concat([summarize(key, group) for key, group in local.groupby(["store", "item"])])
    merged = out.merge(expected, on=["store", "item"], suffixes=("", "_ref"), validate="1:1")
    assert len(out) == len(merged) == STORES * ITEMS
    assert (merged["rows"] == merged["rows_ref"]).all()  # every group whole, once
    np.testing.assert_allclose(merged["total"], merged["total_ref"], rtol=1e-12)
    np.testing.assert_allclose(merged["slope"], merged["slope_ref"], rtol=1e-9, atol=1e-12)
    # Key affinity: one actor per key, and the actor actor_for_key names.
    by_index: dict[int, set[str]] = {}
    for row in out.itertuples():
        by_index.setdefault(actor_for_key((row.store, row.item), 3), set()).add(row.actor)
    assert all(len(tokens) == 1 for tokens in by_index.values()), by_index
    assert len(set.union(*by_index.values())) == len(by_index) == 3
    assert stats.groups == STORES * ITEMS and stats.rows_in == ROWS
    assert stats.batches < stats.groups  # small groups were packed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_groups_with_nulls_and_non_ascii_keys(
    awkward: tuple[Any, pd.DataFrame], transport: str
) -> None:
    frame, local = awkward
    out = map_groups_with_actors(
        frame,
        ["city", "tier"],
        CityStats,
        output_schema="city string, tier int, rows long, nulls long, total double",
        transport=transport,
        batch_size=100,
        actor_options=OPTIONS,
    ).toPandas()
    grouped = local.groupby(["city", "tier"], dropna=False)["value"]
    expected = pd.DataFrame(
        {
            "rows": grouped.size(),
            "nulls": grouped.apply(lambda v: int(v.isna().sum())),
            "total": grouped.sum(),
        }
    ).reset_index()

    def keyed(frame: pd.DataFrame) -> dict[tuple, tuple]:
        def plain(v: object) -> object:
            return None if pd.isna(v) else (int(v) if isinstance(v, float) else v)

        return {
            (plain(r.city), plain(r.tier)): (int(r.rows), int(r.nulls), round(float(r.total), 9))
            for r in frame.itertuples()
        }

    assert len(out) == len(expected) == 28  # 7 cities (one null) x (3 tiers + null)
    assert keyed(out) == keyed(expected)
    assert (None, None) in keyed(out) and ("東京", 2) in keyed(out)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_empty_dataframe_gives_an_empty_result_with_the_schema(spark: Any, transport: str) -> None:
    empty = spark.range(0).selectExpr("id", "cast(id as string) AS key")
    stats = BridgeStats()
    out = map_groups_with_actors(
        empty, "key", CityStats, output_schema="city string, tier int, rows long",
        transport=transport, actor_options=OPTIONS, stats=stats,
    )  # fmt: skip
    assert out.count() == 0
    assert out.schema.simpleString() == "struct<city:string,tier:int,rows:bigint>"
    assert stats.batches == stats.groups == 0
    out = map_batches_with_actors(
        empty, Scale, actor_args=(2.0,), output_schema="id long, scaled double, pid long",
        transport=transport, actor_options=OPTIONS, stats=stats,
    )  # fmt: skip
    assert out.count() == 0
    assert out.schema.simpleString() == "struct<id:bigint,scaled:double,pid:bigint>"
    assert stats.batches == stats.rows_in == 0


# --- failures at the first bad batch ---------------------------------------------------------


class FailsOn:
    """Raises for one key; everything else is fine."""

    def __init__(self, bad: tuple) -> None:
        self.bad = bad

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        if key == self.bad:
            raise ZeroDivisionError(f"no history to forecast {key}")
        return summarize(key, group).assign(actor="x")


class WrongType:
    """Returns a string column where the schema says double, for one store."""

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        result = summarize(key, group).assign(actor="x")
        if key[0] == "store-7":
            result["slope"] = "steep"
        return result


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_failing_group_is_reported_with_its_key_and_the_remote_error(
    sales: tuple[Any, pd.DataFrame], transport: str
) -> None:
    frame, _ = sales
    bad = ("store-3", 4)
    with pytest.raises(BridgeBatchError) as info:
        map_groups_with_actors(
            frame, ["store", "item"], FailsOn, actor_args=(bad,), output_schema=SUMMARY,
            transport=transport, actor_options=OPTIONS, batch_size=1,
        )  # fmt: skip
    error = info.value
    assert error.key == bad
    assert error.actor == actor_for_key(bad, 2)
    assert error.remote_type == "ZeroDivisionError"
    assert error.remote_message == "no history to forecast ('store-3', 4)"
    assert "ZeroDivisionError" in error.remote_traceback
    assert str(error) == (
        "batch for key ('store-3', 4) failed on actor "
        f"{error.actor}: ZeroDivisionError: no history to forecast ('store-3', 4)"
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_result_off_schema_names_column_expected_got_and_key(
    sales: tuple[Any, pd.DataFrame], transport: str
) -> None:
    # The check runs in the actor (unit-tested in test_spark_bridge.py); the executor
    # transport carries the error back through Spark and the ledger, the driver one directly.
    frame, _ = sales
    with pytest.raises(BridgeSchemaError) as info:
        map_groups_with_actors(
            frame, ["store", "item"], WrongType, output_schema=SUMMARY, actor_options=OPTIONS,
            transport=transport,
        )  # fmt: skip
    error = info.value
    assert error.column == "slope"
    assert error.expected == "double"
    assert error.got == "object values like 'steep' (str)"
    assert error.key[0] == "store-7"
    assert "does not match output_schema: column 'slope' must be double" in str(error)


class FailsOnId:
    """Raises for the batch that holds one id."""

    def __init__(self, bad: int) -> None:
        self.bad = bad

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if (batch["id"] == self.bad).any():
            raise KeyError(f"no price for id {self.bad}")
        return batch[["id"]]


def test_a_failing_batch_is_reported_with_its_place_and_the_remote_error(spark: Any) -> None:
    # Partition 1 of spark.range(200, numPartitions=2) holds ids 100-199; id 160 is its
    # 61st row, so in its second batch of 50 (rows 50-99).
    with pytest.raises(BridgeBatchError) as info:
        map_batches_with_actors(
            spark.range(200, numPartitions=2), FailsOnId, actor_args=(160,),
            output_schema="id long", batch_size=50, actor_options=OPTIONS, progress=False,
        )  # fmt: skip
    error = info.value
    assert error.key == "partition 1, batch 1 (rows 50-99)"
    assert error.remote_type == "KeyError"
    assert "no price for id 160" in error.remote_message
    assert "KeyError" in error.remote_traceback
    assert str(error).startswith("batch for partition 1, batch 1 (rows 50-99) failed on actor ")
    assert str(error).endswith(f": KeyError: {error.remote_message}")


class BrokenInit:
    def __init__(self) -> None:
        raise FileNotFoundError("model.pkl is missing")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch


def test_an_actor_that_cannot_start_is_reported(spark: Any) -> None:
    # The Spark job starts while the actors do: it is stopped and the cause named.
    with pytest.raises(BridgeError) as info:
        map_batches_with_actors(
            spark.range(100), BrokenInit, output_schema="id long", actor_options=OPTIONS
        )
    message = str(info.value)
    assert "BrokenInit(...) failed in a pool actor's __init__" in message
    assert "model.pkl is missing" in message


# --- argument errors: before any Spark job or actor ---------------------------------------------


def _bridge_actors() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == "spark-bridge"]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda df: map_groups_with_actors(df, ["store", "sku", "day"], Summarize,
                                              output_schema=SUMMARY),
            ValueError,
            "'key_cols' names column(s) the DataFrame lacks: 'sku', 'day'",
        ),
        (
            lambda df: map_batches_with_actors(df, FailsOn.__call__, output_schema="x long"),
            TypeError,
            "'actor_class' must be a class",
        ),
        (
            lambda df: map_batches_with_actors(df, BridgeStats, output_schema="x long"),
            TypeError,
            "'actor_class' must define __call__(self, batch), got BridgeStats, which has no",
        ),
        (
            lambda df: map_batches_with_actors(df, Scale, output_schema="x long", n_actors=0),
            ValueError,
            "'n_actors' must be an int >= 1, got 0",
        ),
        (
            lambda df: map_batches_with_actors(df, Scale, output_schema="x long", batch_size=0),
            ValueError,
            "'batch_size' must be an int >= 1, got 0",
        ),
        (
            lambda df: map_groups_with_actors(df, "store", Summarize, output_schema=SUMMARY,
                                              transport="pigeon"),
            ValueError,
            "'transport' must be one of 'executor', 'driver', got 'pigeon'",
        ),
        (
            lambda df: map_batches_with_actors(df, Scale, output_schema="x lon g"),
            ValueError,
            "'output_schema' is not a valid Spark DDL schema: 'x lon g'",
        ),
        (
            lambda df: map_batches_with_actors(df, Scale, output_schema="x long",
                                               max_in_flight=0),
            ValueError,
            "'max_in_flight' must be an int >= 1, got 0",
        ),
        (
            lambda df: map_batches_with_actors(df, Scale, output_schema="x long",
                                               actor_options={"name": "mine"}),
            ValueError,
            "'actor_options' may not set 'name'",
        ),
    ],
    ids=["key-cols", "not-a-class", "no-call", "pool-size", "batch-size", "transport",
         "schema", "in-flight", "actor-name"],
)  # fmt: skip
def test_bad_arguments_fail_before_any_job_or_actor(
    spark: Any, sales: tuple[Any, pd.DataFrame], call: Callable[[Any], Any], error: type,
    message: str,
) -> None:  # fmt: skip
    frame, _ = sales
    group = "bridge-bad-arguments"
    spark.sparkContext.setJobGroup(group, "argument checks")
    try:
        with pytest.raises(error) as info:
            call(frame)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert message in str(info.value)
    assert spark.sparkContext.statusTracker().getJobIdsForGroup(group) == []
    assert _bridge_actors() == []


# --- progress ---------------------------------------------------------------------------------


class Slow:
    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        time.sleep(0.15)
        return batch[["id"]]


def test_progress_lines_go_to_stderr(spark: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # The default (progress=None): lines for a run that outlasts progress_interval_s. This
    # one sleeps 16 x 0.15 s in its actors alone, so it lasts longer than 0.5 s.
    out = map_batches_with_actors(
        spark.range(4_000, numPartitions=2), Slow, output_schema="id long", batch_size=250,
        progress_interval_s=0.5, actor_options=OPTIONS, max_in_flight=1,
    )  # fmt: skip
    captured = capsys.readouterr()
    assert out.count() == 4_000
    lines = [line for line in captured.err.splitlines() if line.startswith("[spark-bridge")]
    assert "[spark-bridge" not in captured.out
    assert len(lines) >= 2, captured.err
    assert all("map_batches_with_actors (executor)" in line for line in lines)
    assert "4,000 rows in 16 batches; per actor [" in lines[-1], lines[-1]
    assert lines[-1].endswith("; done"), lines[-1]


class Echo:
    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return batch[["id"]].assign(label=[f"n{i}" for i in batch["id"]])


def test_a_short_run_is_quiet_by_default_and_shown_with_progress_true(
    spark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Short next to progress_interval_s (10 minutes), whatever the machine's load. The
    # schema is a StructType, the other form output_schema takes.
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("label", StringType())])
    frame = spark.range(20)
    quiet = map_batches_with_actors(
        frame, Echo, output_schema=schema, transport="driver", progress_interval_s=600,
        actor_options=OPTIONS,
    )  # fmt: skip
    assert "[spark-bridge" not in capsys.readouterr().err
    assert quiet.schema == schema
    assert sorted((r.id, r.label) for r in quiet.collect()) == [(i, f"n{i}") for i in range(20)]
    shown = map_batches_with_actors(
        frame, Echo, output_schema=schema, transport="driver", progress=True,
        progress_interval_s=600, actor_options=OPTIONS,
    )  # fmt: skip
    lines = [line for line in capsys.readouterr().err.splitlines() if "[spark-bridge" in line]
    assert shown.count() == 20
    assert len(lines) == 1, lines  # only the final line: the run ended before the first
    assert re.search(
        r"\(driver\): 20/20 rows in 1 batches; per actor \[[01] [01]\]; done$", lines[0]
    )


# --- a pool shared by several calls -----------------------------------------------------------


class CountsCalls:
    """Remembers, per key, how many calls have seen it: state that lives in the actor."""

    def __init__(self) -> None:
        self.seen: dict[tuple, int] = {}

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        self.seen[key] = self.seen.get(key, 0) + 1
        return pd.DataFrame(
            {"k": [key[0]], "rows": [len(group)], "seen": [self.seen[key]], "pid": [os.getpid()]}
        )


class _NamesSeen(threading.Thread):
    """Every named actor of the bridge's namespace seen while it runs (polled every 20 ms)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.seen.update(_bridge_actors())

    def __enter__(self) -> _NamesSeen:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.join(timeout=10)


def test_a_bridge_pool_keeps_its_actors_and_their_state_between_calls(spark: Any) -> None:
    from patterns import BridgePool

    frame = spark.range(60, numPartitions=2).selectExpr("id", "concat('k', id % 6) AS k")
    schema = "k string, rows long, seen long, pid long"
    with BridgePool(CountsCalls, n_actors=2, actor_options=OPTIONS, name="keeps") as pool:
        pool.wait_ready()
        stats = [BridgeStats(), BridgeStats()]
        with _NamesSeen() as names:
            first = map_groups_with_actors(
                frame, "k", pool, output_schema=schema, stats=stats[0]
            ).toPandas()
            second = map_groups_with_actors(
                frame, "k", pool, output_schema=schema, transport="driver", n_actors=2,
                stats=stats[1],
            ).toPandas()  # fmt: skip
        # The pool's ledger served both calls: no call started a ledger of its own, and
        # each call's entry was closed when it returned.
        pool_actors = ["keeps/actor-0", "keeps/actor-1", "keeps/ledger"]
        assert sorted(names.seen) == pool_actors
        assert sorted(_bridge_actors()) == pool_actors
        ledger = ray.get_actor("keeps/ledger", namespace="spark-bridge")
        assert ray.get(ledger.open_runs.remote(), timeout=60) == []
        assert [(s.groups, s.rows_in) for s in stats] == [(6, 60), (6, 60)]  # each its own
        with pytest.raises(ValueError, match="'actor_args', 'actor_kwargs' and 'actor_options'"):
            map_groups_with_actors(frame, "k", pool, output_schema=schema, actor_args=(1,))
        with pytest.raises(ValueError, match=r"'n_actors' must be the BridgePool's \(2\)"):
            map_groups_with_actors(frame, "k", pool, output_schema=schema, n_actors=3)
    assert (first["rows"] == 10).all() and (second["rows"] == 10).all()
    assert (first["seen"] == 1).all()
    # The same actors, the same key on the same actor: each one saw its keys once before.
    assert (second["seen"] == 2).all()
    assert set(second["pid"]) == set(first["pid"]) and len(set(first["pid"])) == 2
    assert pool.closed and _bridge_actors() == []
    with pytest.raises(FacadeClosedError, match="map_groups_with_actors called after close"):
        map_groups_with_actors(frame, "k", pool, output_schema=schema)


def test_a_bridge_pool_whose_ledger_died_starts_a_new_one(spark: Any) -> None:
    from patterns import BridgePool

    frame = spark.range(60, numPartitions=2).selectExpr("id", "concat('k', id % 6) AS k")
    schema = "k string, rows long, seen long, pid long"
    with BridgePool(CountsCalls, n_actors=2, actor_options=OPTIONS, name="relearns") as pool:
        pool.wait_ready()
        ray.kill(ray.get_actor("relearns/ledger", namespace="spark-bridge"), no_restart=True)
        stats = BridgeStats()
        out = map_groups_with_actors(frame, "k", pool, output_schema=schema, stats=stats)
        assert sorted(out.toPandas()["rows"]) == [10] * 6
        assert (stats.groups, stats.rows_in) == (6, 60)
        assert "relearns/ledger" in _bridge_actors()
    assert _bridge_actors() == []  # close stopped the new ledger too


# --- input that Spark's partitioning already groups by key -----------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_groups_of_input_already_partitioned_by_key(
    sales: tuple[Any, pd.DataFrame], transport: str
) -> None:
    from patterns.spark_bridge._run import _exchanges, by_key, grouped_by

    frame, local = sales
    # Hash-partitioned by a part of the keys: every (store, item) group is already whole
    # in one partition (3 partitions for 3 actors... and for 2).
    parted = frame.repartition(3, "store")
    assert grouped_by(parted, ["store", "item"]) and grouped_by(parted, ["store"])
    assert not grouped_by(frame, ["store", "item"])  # round-robin: Spark would shuffle
    assert not grouped_by(frame.repartition(3, "store", "item"), ["store"])
    # The bridge shuffles only the input that needs it.
    settings = _groups_settings(n_actors=2, keys=("store", "item"))
    assert _exchanges(by_key(parted, settings)) == _exchanges(parted)
    assert _exchanges(by_key(frame, settings)) == _exchanges(frame) + 1
    stats = BridgeStats()
    out = map_groups_with_actors(
        parted, ["store", "item"], Summarize, output_schema=SUMMARY, n_actors=2,
        transport=transport, batch_size=2_000, actor_options=OPTIONS, stats=stats,
    ).toPandas()  # fmt: skip
    expected = pd.concat([summarize(key, group) for key, group in local.groupby(["store", "item"])])
    merged = out.merge(expected, on=["store", "item"], suffixes=("", "_ref"), validate="1:1")
    assert len(out) == len(merged) == STORES * ITEMS
    assert (merged["rows"] == merged["rows_ref"]).all()  # every group whole, once
    np.testing.assert_allclose(merged["total"], merged["total_ref"], rtol=1e-12)
    by_index: dict[int, set[str]] = {}
    for row in out.itertuples():
        by_index.setdefault(actor_for_key((row.store, row.item), 2), set()).add(row.actor)
    assert all(len(tokens) == 1 for tokens in by_index.values()), by_index
    assert stats.groups == STORES * ITEMS and stats.rows_in == ROWS


def _groups_settings(*, n_actors: int, keys: tuple[str, ...]) -> Any:
    """The settings of a groups run, as `by_key` reads them."""
    from patterns.spark_bridge._run import RunSettings
    from patterns.spark_bridge._schema import parse_output_schema

    struct, target = parse_output_schema(SUMMARY)
    return RunSettings(
        label="map_groups_with_actors", mode="groups", key_names=keys, factory=Summarize,
        args=(), kwargs={}, struct=struct, target=target, n_actors=n_actors, batch_size=100,
        max_in_flight=2, transport="executor", actor_options={}, progress=False,
        progress_interval_s=5.0, ray_address=None, executor_idle_s=10.0, ready_timeout_s=60.0,
        num_partitions=None,
    )  # fmt: skip
