"""Kill a pool actor (SIGKILL, by PID) in the middle of a group; check what the bridge promises.

Promise under test: the run completes, its result equals a pandas reference with every
group exactly once, and the run's counts (`BridgeStats`) count the re-run group once.
Each pool actor writes "start KEY" / "end KEY" lines to a file of its own (every process
of the test cluster runs on this machine), so the test sees which process was killed in
the middle of which group, and that another process ran that group again.

Two retry paths are exercised:

- Ray re-sends the killed actor's calls to its restarted process (the default
  ``max_task_retries=3``), for both transports;
- with ``max_task_retries=0`` the calls fail, the Spark task fails and Spark runs it
  again: the retried task re-sends groups that were already done, which must not be
  counted twice (``batches_resent``).

And the bounds: a poison group (it kills its actor on every attempt) ends the run with
`BridgeActorLostError` after ``MAX_TASK_RETRIES`` re-sends, and the pool's restarted
actors serve the next run; a stuck actor ends the run with `CallTimeoutError`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray

from patterns import (
    ActorLostError,
    BridgeActorLostError,
    BridgePool,
    BridgeStats,
    CallTimeoutError,
    PatternError,
    actor_for_key,
    map_batches_with_actors,
    map_groups_with_actors,
)
from patterns._calls import MAX_TASK_RETRIES

pytestmark = [
    pytest.mark.spark,
    pytest.mark.fault,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

TIMEOUT = 120  # seconds, for every wait
GROUPS, ROWS_PER_GROUP = 48, 25

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Journaling:
    """Counts a group's rows, slowly, and writes when it starts and ends each group."""

    def __init__(self, folder: str) -> None:
        self._journal = open(os.path.join(folder, f"{os.getpid()}.log"), "a", buffering=1)  # noqa: SIM115

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        self._journal.write(f"start {key[0]}\n")
        time.sleep(0.25)  # long enough to be killed in the middle
        self._journal.write(f"end {key[0]}\n")
        return pd.DataFrame({"g": [key[0]], "rows": [len(group)], "total": [group["v"].sum()]})


def _journals(folder: Path) -> dict[int, list[str]]:
    return {int(p.stem): p.read_text().splitlines() for p in folder.glob("*.log")}


class Killer(threading.Thread):
    """Waits until an actor has finished a few groups and is inside the next; kills it."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder = folder
        self.killed: tuple[int, str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                for pid, lines in _journals(self.folder).items():
                    ends = sum(1 for line in lines if line.startswith("end"))
                    if ends >= 4 and lines[-1].startswith("start"):
                        time.sleep(0.1)  # inside the group's 0.25 s
                        os.kill(pid, signal.SIGKILL)
                        self.killed = (pid, lines[-1].split()[1])
                        return
                time.sleep(0.01)
            raise AssertionError("no actor got four groups done within the timeout")
        except BaseException as exc:  # reported by the test
            self.error = exc


@pytest.fixture(scope="module")
def table(ray_cluster: dict) -> Any:
    if ray_cluster["launcher"] is None:
        pytest.fail("the Spark bridge needs the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    spark = ray_cluster["launcher"].spark
    rows = [(f"g{i % GROUPS:02d}", float(i)) for i in range(GROUPS * ROWS_PER_GROUP)]
    frame = spark.createDataFrame(rows, "g string, v double").cache()
    local = pd.DataFrame(rows, columns=["g", "v"])
    yield frame, local.groupby("g")["v"].agg(["size", "sum"])
    frame.unpersist()


@pytest.mark.parametrize(
    ("transport", "retries"),
    [("executor", None), ("driver", None), ("executor", 0)],
    ids=["executor-ray-resends", "driver-ray-resends", "executor-spark-retries"],
)
def test_a_killed_actor_costs_a_rerun_not_a_wrong_count(
    table: tuple[Any, pd.DataFrame], tmp_path: Path, transport: str, retries: int | None
) -> None:
    frame, reference = table
    options: dict[str, Any] = {"num_cpus": 0.25}
    if retries is not None:
        options["max_task_retries"] = retries
    stats = BridgeStats()
    killer = Killer(tmp_path)
    killer.start()
    out = map_groups_with_actors(
        frame, "g", Journaling, actor_args=(str(tmp_path),),
        output_schema="g string, rows long, total double", transport=transport,
        batch_size=1, max_in_flight=2, actor_options=options, stats=stats,
        num_partitions=2,
    ).toPandas()  # fmt: skip
    killer.join(timeout=TIMEOUT)
    assert killer.error is None, killer.error
    assert killer.killed is not None
    killed_pid, killed_group = killer.killed

    # The result: every group once, with all its rows: nothing lost, nothing doubled.
    got = out.set_index("g").sort_index()
    assert list(got.index) == list(reference.index)
    assert (got["rows"] == reference["size"]).all()
    assert (got["total"] == reference["sum"]).all()

    # The kill hit the middle of a group, and another process ran that group again.
    journals = _journals(tmp_path)
    assert journals[killed_pid][-1] == f"start {killed_group}"
    assert any(
        f"end {killed_group}" in lines for pid, lines in journals.items() if pid != killed_pid
    )

    # The counts: each group once, although one ran twice.
    assert stats.groups == GROUPS
    assert stats.rows_in == stats.rows_out * ROWS_PER_GROUP == GROUPS * ROWS_PER_GROUP
    assert stats.batches_rerun >= 1
    if retries == 0:
        # Spark re-ran the failed task, which sent its groups again: counted once.
        assert stats.batches_resent >= 1


# --- a poison group and a stuck actor: the run ends with the library's error --------------------

POISON_GROUP = "g07"


class PoisonOnOneGroup:
    """Sums each group; the group `POISON_GROUP` kills the process, on every attempt."""

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        if key[0] == POISON_GROUP:
            os._exit(1)
        return pd.DataFrame({"g": [key[0]], "rows": [len(group)], "total": [group["v"].sum()]})


@pytest.mark.parametrize("transport", ["executor", "driver"])
def test_a_poison_group_ends_the_run_with_actor_lost_and_the_pool_serves_on(
    table: tuple[Any, pd.DataFrame], transport: str
) -> None:
    frame, reference = table
    schema = "g string, rows long, total double"
    with BridgePool(PoisonOnOneGroup, n_actors=2, actor_options={"num_cpus": 0.25}) as pool:
        pool.wait_ready()
        with pytest.raises(BridgeActorLostError) as info:
            map_groups_with_actors(
                frame, "g", pool, output_schema=schema, transport=transport, batch_size=1,
                num_partitions=2,
            )  # fmt: skip
        error = info.value
        assert isinstance(error, ActorLostError) and isinstance(error, PatternError)
        assert error.key == (POISON_GROUP,)
        assert error.actor == actor_for_key((POISON_GROUP,), 2)
        assert str(error).startswith("BridgePool (actor ")  # the pool, then the call
        assert f"run_groups of key ('{POISON_GROUP}',) lost actor {error.actor}" in str(error)
        assert f"on every attempt ({2 + MAX_TASK_RETRIES})" in str(error)
        # The restarted actors serve the next run (without the poison group).
        clean = frame.where(f"g != '{POISON_GROUP}'")
        out = map_groups_with_actors(clean, "g", pool, output_schema=schema).toPandas()
    assert sorted(out["g"]) == [g for g in reference.index if g != POISON_GROUP]


class SlowOrPoison:
    """Batch ``v == 0`` takes a while; batch ``v == 1`` kills the process after a moment."""

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if batch["v"].iloc[0] == 1:
            time.sleep(0.3)  # the slow batch is running beside this one by now
            os._exit(1)
        time.sleep(1.5)
        return batch


def test_a_call_that_died_beside_a_poison_call_runs_and_the_poison_call_is_named(
    table: tuple[Any, pd.DataFrame],
) -> None:
    """Failed before: a call sharing the actor with a poison call dies at each of its
    crashes, so Ray's re-sends of both run out together, and the run named whichever
    its sender collected first (here the innocent call, sent first). Now a lost call is
    sent once more before it is named: the innocent one runs, the poison one crashes
    its actor again and is named."""
    spark = table[0].sparkSession
    frame = spark.createDataFrame([(0,), (1,)], "v long").coalesce(1)
    with pytest.raises(BridgeActorLostError) as info:
        map_batches_with_actors(
            frame, SlowOrPoison, output_schema="v long", n_actors=1, batch_size=1,
            max_in_flight=2, transport="driver",
            # Two calls at once on the one actor: the slow one dies with the poison one.
            actor_options={"num_cpus": 0.25, "max_concurrency": 2},
        )  # fmt: skip
    error = info.value
    assert error.key == "partition 0, batch 1 (rows 1-1)", str(error)
    assert f"on every attempt ({2 + MAX_TASK_RETRIES})" in str(error)


class Stuck:
    """Answers its first call, then stops answering (a deadlock, a hung native call)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        if self.calls > 1:
            time.sleep(3600)
        return pd.DataFrame({"g": [key[0]], "rows": [len(group)], "total": [group["v"].sum()]})


def test_a_stuck_actor_ends_an_executor_run_with_call_timeout(
    table: tuple[Any, pd.DataFrame],
) -> None:
    frame, _ = table
    # No hang: the sender stops waiting after the run's timeout (3 s here; the first
    # reply may also take ready_timeout_s), and Spark's retries of the task send nothing.
    with pytest.raises(CallTimeoutError, match=r"got no reply within 3 s from actor 0"):
        map_groups_with_actors(
            frame, "g", Stuck, output_schema="g string, rows long, total double",
            batch_size=1, num_partitions=2, n_actors=1, actor_options={"num_cpus": 0.25},
            timeout=3, ready_timeout_s=60,
        )  # fmt: skip
