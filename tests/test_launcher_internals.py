"""The pieces of Ray on Spark the fast start takes over: pinned, and checked here.

No Spark, no cluster: these read Ray's code and run the port-range allocator in
processes of their own. When Ray changes a piece the take-over relies on, the
first test fails (and the launcher falls back to Ray's own, slower waits).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher import _internals

LOCK_PATH = "/tmp/ray_on_spark_worker_startup_barrier_lock.lock"
ALLOC_PATH = "/tmp/ray_on_spark_worker_port_allocation.txt"


def test_the_installed_ray_still_has_every_piece_the_fast_start_replaces() -> None:
    assert _internals.fast_start_problems() == []


def test_the_check_reads_rays_own_pieces_while_a_fast_start_is_installed() -> None:
    """A second launch in the same process (a cluster already fast-started) keeps the fast
    start: the check reads Ray's file, not the module attribute the take-over replaced."""
    fast = _internals.FastStart(head_timeout_s=30.0)
    fast.begin_setup()
    try:
        from ray.util.spark import cluster_init

        assert cluster_init._preallocate_ray_worker_port_range.__name__ == (
            "allocate_worker_port_range"
        )
        assert _internals.fast_start_problems() == []
    finally:
        fast.undo()


def test_a_changed_piece_is_reported_and_disables_the_fast_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        _internals.FAST_START_RELIES_ON,
        "_setup_ray_cluster",
        ("time.sleep(_RAY_HEAD_STARTUP_TIMEOUT_RENAMED)",),
    )
    monkeypatch.setattr(_internals, "FAST_START_RAY_VERSIONS", ("1.0.",))
    problems = _internals.fast_start_problems()
    assert any("_setup_ray_cluster no longer has" in p for p in problems)
    assert any("is not among the versions" in p for p in problems)


def test_fast_start_swaps_rays_waits_and_undo_puts_them_back() -> None:
    from ray.util.spark import cluster_init

    before = {
        "head": cluster_init._RAY_HEAD_STARTUP_TIMEOUT,
        "poll": cluster_init._RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL,
        "start": cluster_init.AutoscalingCluster.start,
        "alloc": cluster_init._preallocate_ray_worker_port_range,
    }
    fast = _internals.FastStart(head_timeout_s=60)
    fast.begin_setup()
    try:
        assert cluster_init._RAY_HEAD_STARTUP_TIMEOUT == 0
        assert cluster_init._RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL < 1
        assert cluster_init.AutoscalingCluster.start is not before["start"]
        fast.end_setup()
        # Setup waits are Ray's again; the allocator stays for the autoscaler's nodes.
        assert before["head"] == cluster_init._RAY_HEAD_STARTUP_TIMEOUT
        assert cluster_init.AutoscalingCluster.start is before["start"]
        assert cluster_init._preallocate_ray_worker_port_range is not before["alloc"]
    finally:
        fast.undo()
    assert cluster_init._preallocate_ray_worker_port_range is before["alloc"]
    assert before["poll"] == cluster_init._RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL


_RUN_ALLOCATOR = """
import pickle, sys, time
sys.modules["launcher"] = None  # an executor without this package
allocate = pickle.loads(sys.stdin.buffer.read())
begin, end = allocate()
print(begin, end, flush=True)
time.sleep(float(sys.argv[1]))
"""


def _lock_is_free() -> bool:
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def test_allocator_ships_by_value_and_keeps_rays_port_range_file() -> None:
    """Spark's cloudpickle ships it by value; it takes a fresh 1000-port slot like Ray's."""
    from pyspark import cloudpickle

    allocate = _internals._make_port_range_allocator(poll_s=0.05, max_hold_s=0.5)
    payload = cloudpickle.dumps(allocate)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RUN_ALLOCATOR, "5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=False,
        )
        for _ in range(2)
    ]
    try:
        ranges = []
        for proc in procs:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(payload)
            proc.stdin.close()
        for proc in procs:
            assert proc.stdout is not None
            begin, end = (int(x) for x in proc.stdout.readline().split())
            ranges.append((begin, end))
        table = dict(
            (int(pid), int(slot))
            for pid, slot in (line.split() for line in Path(ALLOC_PATH).read_text().splitlines())
        )
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)
    (b1, e1), (b2, e2) = ranges
    assert e1 - b1 == e2 - b2 == 1000 and (b1 - 20000) % 1000 == 0
    assert b1 != b2, "two live nodes on one host got the same worker port range"
    assert {table[p.pid] for p in procs} == {(b1 - 20000) // 1000, (b2 - 20000) // 1000}


def test_allocator_releases_the_host_lock_without_a_raylet_after_its_bound() -> None:
    """No node came up (no raylet child): the lock is held at most ``max_hold_s``."""
    from pyspark import cloudpickle

    allocate = _internals._make_port_range_allocator(poll_s=0.05, max_hold_s=1.0)
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_ALLOCATOR, "30"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(cloudpickle.dumps(allocate))
        proc.stdin.close()
        proc.stdout.readline()
        deadline = time.monotonic() + 30
        while not _lock_is_free():
            assert time.monotonic() < deadline, "the allocator never released the host lock"
            time.sleep(0.1)
        assert proc.poll() is None  # released by the bound, not by the process exiting
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_allocator_pickles_without_this_package() -> None:
    from pyspark import cloudpickle

    payload = cloudpickle.dumps(_internals._make_port_range_allocator(0.1, 1.0))
    code = "import pickle,sys; sys.modules['launcher']=None; pickle.loads(sys.stdin.buffer.read())"
    done = subprocess.run(
        [sys.executable, "-c", code], input=payload, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
