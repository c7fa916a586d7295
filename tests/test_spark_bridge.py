"""Spark bridge without Ray or Spark: keys, grouping, back-pressure, result checks, the ledger.

What runs on the Ray-on-Spark cluster is in test_spark_bridge_cluster.py (results,
errors, transports) and test_spark_bridge_faults.py (killed actors).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pytest

import patterns
from patterns import BridgeBatchError, BridgeSchemaError, BridgeStats, actor_for_key
from patterns._batching import FUTURE_WAITER
from patterns.spark_bridge import _check_actor_class
from patterns.spark_bridge._dispatch import Dispatcher
from patterns.spark_bridge._executor import AuthSettings
from patterns.spark_bridge._keys import GroupPacker, check_key_names, group_starts, rebatch
from patterns.spark_bridge._ledger import Done, Ledgers, LedgerState
from patterns.spark_bridge._schema import Column, Target

TIMEOUT = 10.0


# --- keys: one actor per key, the same in every process ----------------------------------


def test_actor_for_key_is_stable_across_processes() -> None:
    """Python's str hash is salted per process; the bridge's choice must not be."""
    keys = [("store-1", 7), ("Zürich", None), (3.5,), ("日本", 0)]
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]);"
        "from patterns.spark_bridge._keys import actor_for_key;"
        f"print(json.dumps([actor_for_key(k, 7) for k in {keys!r}]))"
    )
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    answers = set()
    for seed in ("1", "2"):  # differ from each other and from this process's seed
        result = subprocess.run(
            [sys.executable, "-c", code, root],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        assert result.returncode == 0, result.stderr
        answers.add(result.stdout.strip())
    assert answers == {str([actor_for_key(k, 7) for k in keys]).replace("'", '"')}


def test_actor_for_key_spreads_keys_and_treats_equal_keys_alike() -> None:
    counts = [0, 0, 0, 0]
    for i in range(4000):
        counts[actor_for_key((f"store-{i}", i % 13), 4)] += 1
    assert min(counts) > 800  # roughly even: 1000 each
    assert actor_for_key((float("nan"),), 5) == actor_for_key((float("nan"),), 5)
    assert actor_for_key((-0.0, "a"), 5) == actor_for_key((0.0, "a"), 5)
    assert actor_for_key("x", 3) == actor_for_key(("x",), 3)


@pytest.mark.parametrize(("n_actors", "error"), [(0, ValueError), ("2", TypeError)])
def test_actor_for_key_checks_n_actors(n_actors: object, error: type) -> None:
    with pytest.raises(error, match="'n_actors'"):
        actor_for_key(("a",), n_actors)  # type: ignore[arg-type]


def test_group_starts_handles_nulls_nans_and_several_columns() -> None:
    table = pa.table(
        {
            "a": [None, None, 1.0, 1.0, float("nan"), float("nan"), 2.0, 2.0],
            "b": ["x", "x", "x", "y", "é", "é", None, None],
        }
    )
    assert group_starts(table, ["a"]) == [0, 2, 4, 6]
    assert group_starts(table, ["a", "b"]) == [0, 2, 3, 4, 6]
    assert group_starts(table.slice(0, 0), ["a"]) == []
    assert group_starts(table.slice(0, 1), ["a"]) == [0]


def test_rebatch_keeps_every_row_in_order() -> None:
    parts = [pa.record_batch({"x": list(range(start, start + n))}) for start, n in
             [(0, 7), (7, 1), (8, 0), (8, 12)]]  # fmt: skip
    tables = list(rebatch(parts, 5))
    assert [t.num_rows for t in tables] == [5, 5, 5, 5]
    assert pa.concat_tables(tables).column("x").to_pylist() == list(range(20))
    assert list(rebatch([], 5)) == []


def test_packer_keeps_groups_whole_across_batches_and_sends_each_to_its_actor() -> None:
    rows = [("k" + str(i // 3), i) for i in range(30)]  # 10 groups of 3, sorted
    packer = GroupPacker(["k"], n_actors=3, batch_size=7)
    packs = []
    for start in range(0, 30, 4):  # batches of 4 rows cut groups in two
        chunk = rows[start : start + 4]
        packs += packer.add(
            pa.record_batch({"k": [k for k, _ in chunk], "v": [v for _, v in chunk]})
        )
    packs += packer.finish()
    seen = {}
    for pack in packs:
        assert pack.rows <= 7
        table = pa.concat_tables(pack.parts)
        assert sum(pack.sizes) == table.num_rows
        for key, part in zip(pack.keys, pack.parts, strict=True):
            assert key not in seen, f"group {key} sent twice"
            assert set(part.column("k").to_pylist()) == {key[0]}
            assert pack.actor == actor_for_key(key, 3)
            seen[key] = part.column("v").to_pylist()
    assert len(seen) == 10
    assert all(len(values) == 3 for values in seen.values())


def test_packer_sends_a_large_group_alone() -> None:
    packer = GroupPacker(["k"], n_actors=1, batch_size=2)
    packs = packer.add(pa.record_batch({"k": ["a"] * 5 + ["b"]}))
    packs += packer.finish()
    assert [(p.keys, p.sizes) for p in packs] == [([("a",)], [5]), ([("b",)], [1])]


# --- back-pressure: at most max_in_flight calls out per actor ----------------------------


class SlowActors:
    """Fake actors on threads that record how many calls each has at once."""

    def __init__(self, n: int, delay_s: float) -> None:
        self.pool = ThreadPoolExecutor(8)
        self.delay_s = delay_s
        self.out = [0] * n
        self.peak = [0] * n
        self.lock = threading.Lock()

    def call(self, actor: int, value: int) -> Future[int]:
        with self.lock:  # counted when sent, like a call waiting in an actor's queue
            self.out[actor] += 1
            self.peak[actor] = max(self.peak[actor], self.out[actor])

        def run() -> int:
            time.sleep(self.delay_s * (3 if actor == 0 else 1))  # actor 0 is slow
            with self.lock:
                self.out[actor] -= 1
            return value

        return self.pool.submit(run)


@pytest.mark.parametrize("max_in_flight", [1, 3])
def test_dispatcher_bounds_calls_out_per_actor(max_in_flight: int) -> None:
    actors = SlowActors(2, delay_s=0.01)
    dispatcher: Dispatcher[int] = Dispatcher(2, max_in_flight=max_in_flight, waiter=FUTURE_WAITER)
    results = []
    for value in range(40):
        actor = value % 2  # affinity: the sender may not pick the free actor
        for finished in dispatcher.send(actor, lambda a, v=value: actors.call(a, v), value):
            results.append(finished.pending.result(timeout=TIMEOUT))
    results += [f.pending.result(timeout=TIMEOUT) for f in dispatcher.drain()]
    assert sorted(results) == list(range(40))
    assert max(actors.peak) == max_in_flight  # reached, never exceeded
    assert dispatcher.peak_in_flight == [max_in_flight, max_in_flight]
    assert dispatcher.in_flight == 0


def test_dispatcher_least_loaded_avoids_the_slow_actor() -> None:
    actors = SlowActors(2, delay_s=0.02)
    dispatcher: Dispatcher[int] = Dispatcher(2, max_in_flight=2, waiter=FUTURE_WAITER)
    done = []
    for value in range(30):
        done += dispatcher.send(None, lambda a, v=value: actors.call(a, v), value)
    done += list(dispatcher.drain())
    assert sorted(f.meta for f in done) == list(range(30))
    assert dispatcher.sent[1] > dispatcher.sent[0]  # the fast actor got more


def test_dispatcher_raises_call_timeout_when_no_call_finishes_in_time() -> None:
    # An actor that never answers (a future never completed): the sender stops, naming it.
    dispatcher: Dispatcher[int] = Dispatcher(
        2, max_in_flight=1, waiter=FUTURE_WAITER, timeout=0.2, who="BridgePool 'p'",
        method="run_batch",
    )  # fmt: skip
    dispatcher.send(0, lambda a: Future(), 0)
    with pytest.raises(patterns.CallTimeoutError) as info:
        dispatcher.send(0, lambda a: Future(), 1)  # waits for room on actor 0
    assert str(info.value).startswith("BridgePool 'p': run_batch got no reply within 0.2 s")
    assert "from actor 0" in str(info.value)
    with pytest.raises(patterns.CallTimeoutError, match="from actor 0"):
        list(dispatcher.drain())


def test_dispatcher_gives_the_first_reply_the_startup_time_too() -> None:
    threads = ThreadPoolExecutor(1)
    dispatcher: Dispatcher[int] = Dispatcher(
        1, max_in_flight=1, waiter=FUTURE_WAITER, timeout=0.1, startup_s=1.0
    )
    dispatcher.send(0, lambda a: threads.submit(time.sleep, 0.4), 0)  # a slow start: fine
    done = list(dispatcher.drain())
    assert [f.meta for f in done] == [0]
    dispatcher.send(0, lambda a: threads.submit(time.sleep, 0.4), 1)  # later: past 0.1 s
    with pytest.raises(patterns.CallTimeoutError, match=r"within 0\.1 s"):
        list(dispatcher.drain())
    threads.shutdown(wait=True)


def test_the_bridge_errors_are_pattern_errors() -> None:
    from patterns.spark_bridge import BridgeActorLostError

    assert issubclass(patterns.BridgeError, patterns.PatternError)
    assert issubclass(BridgeSchemaError, BridgeBatchError)
    error = BridgeActorLostError.lost(
        ("s1",), who="BridgePool 'p'", actor=1, method="run_groups",
        cause="ActorDiedError: The actor died unexpectedly", attempts=4,
    )  # fmt: skip
    assert isinstance(error, patterns.ActorLostError) and isinstance(error, BridgeBatchError)
    assert str(error).startswith(
        "BridgePool 'p': run_groups of key ('s1',) lost actor 1 on every attempt (4)"
    )
    assert "ActorDiedError" in str(error) and error.key == ("s1",)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is BridgeActorLostError and copy.actor == 1 and str(copy) == str(error)


def test_dispatcher_senders_of_different_partitions_start_on_different_actors() -> None:
    # Spark tasks running at once, each with one batch: not all on actor 0.
    firsts = []
    for partition in range(4):
        dispatcher: Dispatcher[int] = Dispatcher(
            2, max_in_flight=2, waiter=FUTURE_WAITER, first=partition
        )
        dispatcher.send(None, lambda a: Future(), partition)
        firsts.append(dispatcher.sent.index(1))
    assert firsts == [0, 1, 0, 1]


# --- results against output_schema ----------------------------------------------------------

TARGET = Target(
    (
        Column("key", pa.string(), "string", True),
        Column("n", pa.int64(), "bigint", False),
        Column("yhat", pa.float64(), "double", True),
    )
)


def test_conform_accepts_any_column_order_and_widens_ints() -> None:
    frame = pd.DataFrame({"yhat": [1, 2], "n": [3, 4], "key": ["é", None]})
    table = TARGET.conform(frame, key=("s",), actor=0)
    assert table.schema == TARGET.arrow_schema()
    assert table.to_pylist() == [
        {"key": "é", "n": 3, "yhat": 1.0},
        {"key": None, "n": 4, "yhat": 2.0},
    ]


@pytest.mark.parametrize(
    ("frame", "column", "expected", "got"),
    [
        (pd.DataFrame({"key": ["a"], "n": [1]}), "yhat", "present (double)", "no such column"),
        (
            pd.DataFrame({"key": ["a"], "n": [1], "yhat": [0.5], "extra": [1]}),
            "extra",
            "absent",
            "a column",
        ),
        (
            pd.DataFrame({"key": ["a"], "n": [1], "yhat": ["high"]}),
            "yhat",
            "double",
            "object values like 'high' (str)",
        ),
        (pd.DataFrame({"key": ["a"], "n": [1.5], "yhat": [0.5]}), "n", "bigint", "float64"),
        (
            pd.DataFrame({"key": ["a"], "n": [None], "yhat": [0.5]}),
            "n",
            "bigint NOT NULL",
            "1 null",
        ),
        ([1, 2], None, "a pandas.DataFrame", "[1, 2] (list)"),
    ],
)
def test_conform_names_the_column_expected_and_got(
    frame: object, column: str | None, expected: str, got: str
) -> None:
    with pytest.raises(BridgeSchemaError) as info:
        TARGET.conform(frame, key=("store-9", 3), actor=1)
    error = info.value
    assert error.column == column
    assert expected in error.expected
    assert got in error.got
    assert error.key == ("store-9", 3)
    assert error.actor == 1
    assert "key ('store-9', 3)" in str(error)


def test_errors_keep_their_fields_through_pickle() -> None:
    error = BridgeSchemaError.mismatch(("k",), actor=2, column="c", expected="double", got="str")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.key, copy.actor, copy.column, copy.expected, copy.got) == (
        ("k",), 2, "c", "double", "str",
    )  # fmt: skip
    assert str(copy) == str(error)
    batch = BridgeBatchError.from_remote("partition 1, batch 0", actor=None,
                                         remote_type="KeyError", remote_message="'x'")  # fmt: skip
    assert (
        str(pickle.loads(pickle.dumps(batch)))
        == "batch for partition 1, batch 0 failed: KeyError: 'x'"
    )


# --- the ledger: each batch counted once ---------------------------------------------------


def test_ledger_counts_a_retried_batch_once() -> None:
    ledger = LedgerState(n_actors=2)
    first = [Done("p0:b0", 0, 100, 100, 0), Done("p0:b1", 1, 50, 50, 0)]
    ledger.started("p0:b0", actor=0, pid=1)
    ledger.started("p0:b1", actor=1, pid=2)
    ledger.started("p0:b1", actor=1, pid=3)  # Ray re-sent it to a restarted actor
    ledger.done(first, sender=10, connected=True, peak=2)
    ledger.done(first, sender=11, connected=True, peak=1)  # a retried Spark task sent both again
    ledger.done([Done("p1:b0", 1, 7, 7, 0)], sender=11)
    summary = ledger.summary()
    assert summary["rows_in"] == 157
    assert summary["batches"] == 3
    assert summary["batches_per_actor"] == [1, 2]
    assert summary["batches_rerun"] == 1
    assert summary["batches_resent"] == 2
    assert summary["senders"] == 2
    assert summary["connections"] == 2
    assert summary["peak_in_flight"] == 2
    stats = BridgeStats()
    stats.update(summary)
    assert (stats.rows_in, stats.batches, stats.batches_rerun) == (157, 3, 1)


def test_ledger_keeps_the_first_failure() -> None:
    ledger = LedgerState(n_actors=1)
    assert ledger.failure() is None
    ledger.trouble({"message": "actor died"})
    assert not ledger.summary()["failed"]
    ledger.fail({"message": "first"})
    ledger.fail({"message": "second"})
    assert ledger.failure() == {"message": "first"}
    assert ledger.last_trouble() == {"message": "actor died"}
    assert ledger.summary()["failed"]


def test_one_ledger_keeps_the_runs_of_a_pool_apart() -> None:
    # A BridgePool's runs share its ledger actor: each run's counts and failure are its own.
    ledgers = Ledgers(n_actors=2)
    ledgers.started("run-1", "p0:g0", actor=0, pid=1)
    ledgers.started("run-1", "p0:g0", actor=0, pid=2)  # re-run in run 1
    ledgers.done("run-1", [Done("p0:g0", 0, 10, 1, 1)], sender=5)
    ledgers.fail("run-1", {"message": "poison"})
    ledgers.done("run-2", [Done("p0:g0", 1, 4, 1, 1), Done("p0:g1", 0, 6, 1, 1)], sender=6)
    ledgers.done("run-2", [Done("p0:g0", 1, 4, 1, 1)], sender=7)  # a Spark retry: counted once
    one, two = ledgers.summary("run-1"), ledgers.summary("run-2")
    assert (one["rows_in"], one["batches_rerun"], one["failed"]) == (10, 1, True)
    assert (two["rows_in"], two["groups"], two["batches_resent"]) == (10, 2, 1)
    assert not two["failed"]
    assert two["batches_per_actor"] == [1, 1] and two["batches_rerun"] == 0
    assert ledgers.failure("run-2") is None
    assert sorted(ledgers.open_runs()) == ["run-1", "run-2"]
    assert ledgers.close("run-2")["rows_in"] == 10
    # Closed: dropped, and a straggler's report does not open it again.
    ledgers.done("run-2", [Done("p1:g0", 0, 3, 1, 1)], sender=8)
    assert ledgers.open_runs() == ["run-1"]
    assert ledgers.summary("run-2")["rows_in"] == 0


def test_runs_that_never_close_do_not_pile_up_in_a_pool_ledger() -> None:
    ledgers = Ledgers(n_actors=1)
    for i in range(Ledgers.MAX_OPEN + 5):  # drivers that died before closing their run
        ledgers.done(f"run-{i}", [Done("p0:b0", 0, 1, 1, 0)], sender=1)
    assert len(ledgers.open_runs()) == Ledgers.MAX_OPEN
    assert ledgers.open_runs()[-1] == f"run-{Ledgers.MAX_OPEN + 4}"  # the oldest went first


# --- argument checks that need no Spark -----------------------------------------------------


class _Scorer:
    def __call__(self, batch: object) -> object:
        return batch


class _PerGroup:
    def __call__(self, key: object, group: object) -> object:
        return group


class _NotCallable:
    pass


def test_actor_class_must_be_a_callable_class_of_the_right_shape() -> None:
    assert _check_actor_class(_Scorer, 1, "(self, batch)") is _Scorer
    assert _check_actor_class(_PerGroup, 2, "(self, key, group)") is _PerGroup
    with pytest.raises(TypeError, match="'actor_class' must be a class, got <function"):
        _check_actor_class(lambda b: b, 1, "(self, batch)")
    with pytest.raises(
        TypeError, match=r"must define __call__.*_NotCallable, which has no __call__"
    ):
        _check_actor_class(_NotCallable, 1, "(self, batch)")
    with pytest.raises(TypeError, match=r"__call__\(self, key, group\), got _Scorer.__call__"):
        _check_actor_class(_Scorer, 2, "(self, key, group)")


def test_key_cols_must_name_existing_columns() -> None:
    columns = ["store", "item", "sales"]
    assert check_key_names("store", columns) == ["store"]
    assert check_key_names(("store", "item"), columns) == ["store", "item"]
    with pytest.raises(
        ValueError, match=r"lacks: 'shop', 'sku' \(it has 'store', 'item', 'sales'\)"
    ):
        check_key_names(["shop", "item", "sku"], columns)
    with pytest.raises(ValueError, match="more than once: 'store'"):
        check_key_names(["store", "store"], columns)
    with pytest.raises(TypeError, match="'key_cols' must be a column name"):
        check_key_names([], columns)
    with pytest.raises(TypeError, match="must hold column names"):
        check_key_names(["store", 3], columns)


def test_map_functions_refuse_a_non_dataframe_before_anything_starts() -> None:
    with pytest.raises(TypeError, match=r"'df' must be a pyspark\.sql\.DataFrame, got"):
        patterns.map_batches_with_actors([1, 2], _Scorer, output_schema="x long")
    with pytest.raises(TypeError, match=r"'df' must be a pyspark\.sql\.DataFrame"):
        patterns.map_groups_with_actors(pd.DataFrame(), "k", _PerGroup, output_schema="x long")


def test_auth_settings_never_show_the_token() -> None:
    settings = AuthSettings("token", "s3cr3t-token")
    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" in pickle.loads(pickle.dumps(settings)).token


def test_a_bridge_pool_checks_its_arguments_before_any_actor() -> None:
    with pytest.raises(TypeError, match="'actor_class' must be a class, got <function"):
        patterns.BridgePool(lambda batch: batch)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="_NotCallable, which has no __call__"):
        patterns.BridgePool(_NotCallable)
    with pytest.raises(ValueError, match="'n_actors' must be an int >= 1, got 0"):
        patterns.BridgePool(_Scorer, n_actors=0)
    with pytest.raises(TypeError, match="'actor_args' must be a tuple or list, got 'ab'"):
        patterns.BridgePool(_Scorer, actor_args="ab")
    with pytest.raises(ValueError, match="'actor_options' may not set 'name'"):
        patterns.BridgePool(_Scorer, actor_options={"name": "mine"})
    with pytest.raises(ValueError, match="'namespace' only applies to a named BridgePool"):
        patterns.BridgePool(_Scorer, namespace="elsewhere")
    with pytest.raises(ValueError, match="'timeout' must be a finite number > 0"):
        patterns.BridgePool(_Scorer, timeout=0)


def test_a_bridge_pool_says_when_ray_is_not_connected() -> None:
    # A fresh interpreter: this one may be connected to the session's cluster.
    code = (
        "from patterns import BridgePool\n"
        "class Echo:\n"
        "    def __call__(self, batch):\n"
        "        return batch\n"
        "try:\n"
        "    BridgePool(Echo)\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert done.stdout.startswith("Ray is not connected in this process: start a cluster"), (
        done.stdout + done.stderr
    )
