"""Kill counter actors' processes (SIGKILL, by PID) under load; check what was promised.

Promise under test: with a checkpoint store, every increment whose call returned is
counted exactly once, however many times the process dies. The writer threads keep
calls in flight at every kill, so Ray's re-sent calls and the actor's deduplication are
exercised. A tmp directory stands in for a store every node can reach: it is one,
here, because every Ray node of the test cluster runs on this machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from patterns import Counter, DirectoryStore, RayKVStore, ShardedCounter
from tests._faults import TIMEOUT, CallStream, kill_and_wait

pytestmark = pytest.mark.fault


class _Writers(CallStream):
    """Increments through ``send``, a window of ``window`` calls in flight per thread."""

    def __init__(self, send: Callable[[], object], *, threads: int = 2, window: int = 8) -> None:
        super().__init__(threads=threads)
        self._send = send
        self._size = window

    def _window(self, thread: int) -> int:
        import ray

        ray.get([self._send() for _ in range(self._size)], timeout=TIMEOUT)
        return self._size


def _store(kind: str, tmp_path: Path) -> DirectoryStore | RayKVStore:
    if kind == "directory":
        return DirectoryStore(tmp_path)
    return RayKVStore(namespace=f"test-faults-{uuid.uuid4().hex}")


@pytest.mark.parametrize("store_kind", ["directory", "ray-kv"])
def test_counter_survives_sigkill_exactly_once(
    ray_cluster: dict, tmp_path: Path, store_kind: str
) -> None:
    counter = Counter(store=_store(store_kind, tmp_path))
    pids = set()
    try:
        with _Writers(counter.increment_async) as writers:
            for _ in range(2):
                writers.wait_for_progress(100)
                pids.add(counter.pid(timeout=TIMEOUT))
                kill_and_wait(lambda: counter.pid(timeout=TIMEOUT))
            writers.wait_for_progress(100)
        assert not writers.errors, writers.errors
        pids.add(counter.pid(timeout=TIMEOUT))
        assert len(pids) == 3  # two kills, three processes
        assert counter.value(timeout=TIMEOUT) == writers.acknowledged
    finally:
        counter.kill()


def test_sharded_counter_survives_a_shard_sigkill(ray_cluster: dict, tmp_path: Path) -> None:
    counter = ShardedCounter(3, store=DirectoryStore(tmp_path))
    try:
        with _Writers(counter.increment_async) as writers:
            for _ in range(2):  # the same shard, twice
                writers.wait_for_progress(90)
                kill_and_wait(lambda: counter.pids(timeout=TIMEOUT)[1])
            writers.wait_for_progress(90)
        assert not writers.errors, writers.errors
        assert counter.value(timeout=TIMEOUT) == writers.acknowledged
        assert min(counter.shard_values(timeout=TIMEOUT)) > 0
    finally:
        counter.kill()


def test_batched_sharded_counter_survives_a_shard_sigkill(
    ray_cluster: dict, tmp_path: Path
) -> None:
    counter = ShardedCounter(2, store=DirectoryStore(tmp_path), batch_size=25)
    acknowledged = 0
    try:
        for round_ in range(3):
            for _ in range(100):
                counter.increment()
            if round_ < 2:
                kill_and_wait(lambda: counter.pids(timeout=TIMEOUT)[0])
            counter.flush(timeout=TIMEOUT)  # acknowledges every buffered increment
            acknowledged += 100
        assert counter.value(timeout=TIMEOUT) == acknowledged
    finally:
        counter.kill()


def test_checkpoint_every_n_loses_at_most_n_minus_1_never_doubles(
    ray_cluster: dict, tmp_path: Path
) -> None:
    every, kills = 5, 2
    counter = Counter(store=DirectoryStore(tmp_path), checkpoint_every=every)
    try:
        with _Writers(counter.increment_async, threads=1) as writers:
            for _ in range(kills):
                writers.wait_for_progress(50)
                kill_and_wait(lambda: counter.pid(timeout=TIMEOUT))
            writers.wait_for_progress(50)
        assert not writers.errors, writers.errors
        value = counter.value(timeout=TIMEOUT)
        assert writers.acknowledged - kills * (every - 1) <= value <= writers.acknowledged
    finally:
        counter.kill()


def test_without_a_store_a_restart_starts_over(ray_cluster: dict) -> None:
    counter = Counter(actor_options={"max_restarts": 1, "max_task_retries": -1})
    try:
        for _ in range(10):
            counter.increment(timeout=TIMEOUT)
        kill_and_wait(lambda: counter.pid(timeout=TIMEOUT))
        assert counter.value(timeout=TIMEOUT) == 0  # the state died with the process
    finally:
        counter.kill()
