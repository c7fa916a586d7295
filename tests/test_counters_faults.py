"""Kill counter actors' processes (SIGKILL, by PID) under load; check what was promised.

Promise under test: with a checkpoint store, every increment whose call returned is
counted exactly once, however many times the process dies. The writer threads keep
calls in flight at every kill, so Ray's re-sent calls and the actor's deduplication are
exercised. A tmp directory stands in for a store every node can reach: it is one,
here, because every Ray node of the test cluster runs on this machine.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from patterns import Counter, DirectoryStore, RayKVStore, ShardedCounter
from patterns.errors import ActorLostError, CallTimeoutError
from tests._faults import TIMEOUT, CallStream, kill_and_wait
from tests.contract_cases.counters import POISON, poison_store

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
                pids.add(counter.pids(timeout=TIMEOUT)[0])
                kill_and_wait(lambda: counter.pids(timeout=TIMEOUT)[0])
            writers.wait_for_progress(100)
        assert not writers.errors, writers.errors
        pids.add(counter.pids(timeout=TIMEOUT)[0])
        assert len(pids) == 3  # two kills, three processes
        assert counter.value(timeout=TIMEOUT) == writers.acknowledged
    finally:
        counter.close()


def test_sharded_counter_survives_a_shard_sigkill(ray_cluster: dict, tmp_path: Path) -> None:
    counter = ShardedCounter(n_shards=3, store=DirectoryStore(tmp_path))
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
        counter.close()


def test_batched_sharded_counter_survives_a_shard_sigkill(
    ray_cluster: dict, tmp_path: Path
) -> None:
    counter = ShardedCounter(n_shards=2, store=DirectoryStore(tmp_path), batch_size=25)
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
        counter.close()


def test_checkpoint_every_n_loses_at_most_n_minus_1_never_doubles(
    ray_cluster: dict, tmp_path: Path
) -> None:
    every, kills = 5, 2
    counter = Counter(store=DirectoryStore(tmp_path), checkpoint_every=every)
    try:
        with _Writers(counter.increment_async, threads=1) as writers:
            for _ in range(kills):
                writers.wait_for_progress(50)
                kill_and_wait(lambda: counter.pids(timeout=TIMEOUT)[0])
            writers.wait_for_progress(50)
        assert not writers.errors, writers.errors
        value = counter.value(timeout=TIMEOUT)
        assert writers.acknowledged - kills * (every - 1) <= value <= writers.acknowledged
    finally:
        counter.close()


def test_without_a_store_a_restart_starts_over(ray_cluster: dict) -> None:
    counter = Counter(actor_options={"max_restarts": 1, "max_task_retries": -1})
    try:
        for _ in range(10):
            counter.increment(timeout=TIMEOUT)
        kill_and_wait(lambda: counter.pids(timeout=TIMEOUT)[0])
        assert counter.value(timeout=TIMEOUT) == 0  # the state died with the process
    finally:
        counter.close()


def test_a_poison_increment_fails_and_the_counter_serves_the_next_ones(ray_cluster: dict) -> None:
    # The store's save kills the process for the snapshot the poison increment makes:
    # every attempt crashes the actor, Ray gives up after max_task_retries, and the
    # actor, restarted from its last checkpoint, serves a writer that never stopped.
    counter = Counter(store=poison_store(), name=f"poisoned-{uuid.uuid4().hex[:8]}")
    acknowledged, lost = 0, 0
    stop = threading.Event()
    unexpected: list[BaseException] = []

    def write() -> None:
        nonlocal acknowledged, lost
        while not stop.is_set():
            try:
                counter.increment(timeout=TIMEOUT)
                acknowledged += 1
            except ActorLostError:  # in flight through all the crashes: not acknowledged
                lost += 1
            except BaseException as exc:
                unexpected.append(exc)
                return

    writer = threading.Thread(target=write, daemon=True)
    try:
        for _ in range(20):
            counter.increment(timeout=TIMEOUT)
        writer.start()
        while acknowledged < 20:
            assert not unexpected, unexpected
            time.sleep(0.01)
        pids = set(counter.pids(timeout=TIMEOUT))
        with pytest.raises(ActorLostError, match=rf"Counter '{counter.name}': increment did not"):
            counter.increment(POISON, timeout=TIMEOUT)
        settled = acknowledged
        while acknowledged < settled + 20:  # the restarted actor serves the writer
            assert not unexpected, unexpected
            time.sleep(0.01)
        stop.set()
        writer.join(TIMEOUT)
        assert not writer.is_alive() and not unexpected, unexpected
        assert set(counter.pids(timeout=TIMEOUT)).isdisjoint(pids)  # it was restarted
        value = counter.value(timeout=TIMEOUT)
        assert value < POISON  # the poison increment never counted
        assert 20 + acknowledged <= value <= 20 + acknowledged + lost
    finally:
        stop.set()
        counter.close()


def _raised_within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What ``call()`` raised (None if it returned), run in a thread joined for ``seconds``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


def test_back_pressure_on_stopped_shards_ends_with_call_timeout_error(ray_cluster: dict) -> None:
    # Batched sends wait for room when 4 per shard are out; shards that are alive but
    # answer nothing (SIGSTOP) used to block the caller forever.
    counter = ShardedCounter(n_shards=1, batch_size=1, timeout=1.0)
    (pid,) = counter.pids(timeout=TIMEOUT)
    os.kill(pid, signal.SIGSTOP)
    try:
        for _ in range(4):
            counter.increment()  # sent: room for 4
        error = _raised_within(TIMEOUT, counter.increment)  # a hang fails, not blocks, the test
        assert isinstance(error, CallTimeoutError), error
        assert re.match(r"ShardedCounter \(actor [0-9a-f]{8}\): increment waited 1 s", str(error))
        with pytest.raises(CallTimeoutError, match=r"flush got no reply within 0.5 s for 5 of 5"):
            counter.flush(timeout=0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        counter.flush(timeout=TIMEOUT)  # the five sends were kept, and are applied once
        assert counter.value(timeout=TIMEOUT) == 5
    finally:
        counter.close()
