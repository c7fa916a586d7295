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

from patterns import BridgeStats, map_groups_with_actors

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
