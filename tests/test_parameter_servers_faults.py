"""Kill parameter-server shards and gradient workers (SIGKILL, by PID); check what was promised.

- Exactly-once: threads stream pushes (several in flight each) while a shard's process
  is killed; afterwards ``version()`` equals the acknowledged pushes and the weights
  equal what those pushes give without a crash. The gradients are multiples of 1/8 and
  the learning rate 1/2, so every sum is exact in float64 and the comparison is ``==``.
- A push re-sent after a restart gets the answer it got the first time.
- Training goes on, and meets the accuracy bar, when a shard or a worker is killed in
  the middle of `train`.

A tmp directory stands in for a store every node can reach: it is one, here, because
every Ray node of the test cluster runs on this machine.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from patterns import (
    DirectoryStore,
    GradientWorker,
    ParameterServer,
    RayKVStore,
    SoftmaxRegression,
    train,
)
from patterns.parameter_servers._state import Optimizer
from tests._digits import Digits, digits
from tests._faults import TIMEOUT, CallStream, kill_and_wait

pytestmark = pytest.mark.fault


class _Pushers(CallStream):
    """Pushes gradients of known values, a window of pushes in flight per thread."""

    def __init__(self, server: ParameterServer, *, threads: int = 2, window: int = 6) -> None:
        super().__init__(threads=threads)
        self._server = server
        self._size = window
        self._sent = [0] * threads
        self.acknowledged_sum = 0.0  # of the gradient values of acknowledged pushes

    def _window(self, thread: int) -> int:
        import ray

        k = self._sent[thread]
        values = [((k + j + thread) % 5 + 1) / 8 for j in range(self._size)]
        self._sent[thread] += self._size
        refs = [self._server.push_async({"w": np.full(6, v)}) for v in values]
        applied = ray.get(refs, timeout=TIMEOUT)
        assert all(applied)
        with self.lock:
            self.acknowledged_sum += sum(values)
        return len(values)


def _store(kind: str, tmp_path: Path) -> DirectoryStore | RayKVStore:
    if kind == "directory":
        return DirectoryStore(tmp_path)
    return RayKVStore(namespace=f"test-ps-faults-{uuid.uuid4().hex}")


@pytest.mark.parametrize(
    ("store_kind", "shard"), [("directory", 0), ("ray-kv", 2)], ids=["directory-lead", "kv-other"]
)
def test_pushes_are_exactly_once_through_shard_sigkills(
    ray_cluster: dict, tmp_path: Path, store_kind: str, shard: int
) -> None:
    server = ParameterServer(
        {"w": np.zeros(6)}, shards=3, learning_rate=0.5, store=_store(store_kind, tmp_path)
    )
    pids = set()
    try:
        server.pids(timeout=TIMEOUT)  # every shard is up before the clock runs
        with _Pushers(server) as pushers:
            for _ in range(2):
                pushers.wait_for_progress(60)
                pids.add(kill_and_wait(lambda: server.pids(timeout=TIMEOUT)[shard]))
            pushers.wait_for_progress(60)
        assert not pushers.errors, pushers.errors
        pids.add(server.pids(timeout=TIMEOUT)[shard])
        assert len(pids) == 3  # two kills, three processes
        stats = server.stats(timeout=TIMEOUT)
        assert server.version(timeout=TIMEOUT) == pushers.acknowledged
        assert stats["versions"] == [pushers.acknowledged] * 3
        assert stats["restored_versions"][shard] > 0  # it came back from its checkpoint
        expected = np.full(6, -0.5 * pushers.acknowledged_sum)
        assert np.array_equal(server.pull(timeout=TIMEOUT)["w"], expected)
    finally:
        server.kill()


class _OrderedPushers(CallStream):
    """One push at a time, each gradient recorded in order once acknowledged.

    Momentum and Adam depend on the order of the steps, and Ray may re-send calls
    that were in flight at a crash in another order; one call in flight keeps the
    order known, so the weights can be replayed exactly in this process.
    """

    def __init__(self, server: ParameterServer) -> None:
        super().__init__(threads=1)
        self._server = server
        self.values: list[float] = []

    def _window(self, thread: int) -> int:
        k = len(self.values)
        value = ((k % 7) - 3) / 8  # signs and sizes change: the moments matter
        assert self._server.push({"w": np.full(6, value)}, timeout=TIMEOUT)
        self.values.append(value)
        return 1


@pytest.mark.parametrize("optimizer", ["adam"])
def test_optimizer_state_survives_a_shard_sigkill(
    ray_cluster: dict, tmp_path: Path, optimizer: str
) -> None:
    """The moments are checkpointed with the weights: the run equals an uninterrupted one."""
    server = ParameterServer(
        {"w": np.zeros(6)},
        shards=3,
        optimizer=optimizer,
        learning_rate=0.05,
        store=DirectoryStore(tmp_path),
    )
    try:
        server.pids(timeout=TIMEOUT)
        with _OrderedPushers(server) as pushers:
            pushers.wait_for_progress(20)
            killed = kill_and_wait(lambda: server.pids(timeout=TIMEOUT)[1])
            pushers.wait_for_progress(20)
        assert not pushers.errors, pushers.errors
        assert killed != server.pids(timeout=TIMEOUT)[1]
        assert server.version(timeout=TIMEOUT) == pushers.acknowledged == len(pushers.values)
        assert server.stats(timeout=TIMEOUT)["restored_versions"][1] > 0
        # The same steps in this process, without a crash (the shards' pieces step
        # bit for bit like the whole array; tests/test_parameter_servers.py checks it).
        expected = np.zeros(6)
        local = Optimizer(optimizer, 0.05)
        state = local.init_state(expected)
        for t, value in enumerate(pushers.values, start=1):
            local.step(expected, np.full(6, value), state, t)
        assert np.array_equal(server.pull(timeout=TIMEOUT)["w"], expected)
    finally:
        server.kill()


def test_a_push_resent_after_a_restart_gets_its_first_answer(
    ray_cluster: dict, tmp_path: Path
) -> None:
    import ray

    server = ParameterServer(
        {"w": np.zeros(2)}, shards=2, max_staleness=0, store=DirectoryStore(tmp_path)
    )
    lead = server.actors[0]
    piece = {next(iter(ray.get(lead.pull.remote(), timeout=TIMEOUT)[1])): np.ones(1)}
    try:
        # What Ray does after a crash, done by hand: the same call, same request id.
        assert ray.get(lead.push.remote(piece, 0, None, 77, 1), timeout=TIMEOUT) is True
        assert ray.get(lead.push.remote(piece, 0, None, 77, 2), timeout=TIMEOUT) is False  # stale
        kill_and_wait(lambda: server.pids(timeout=TIMEOUT)[0])
        assert ray.get(lead.push.remote(piece, 0, None, 77, 2), timeout=TIMEOUT) is False
        assert ray.get(lead.push.remote(piece, 9, None, 77, 1), timeout=TIMEOUT) is True
        assert ray.get(lead.version.remote(), timeout=TIMEOUT) == 1  # applied once
        assert server.stats(timeout=TIMEOUT)["dropped_stale"] == 1
    finally:
        server.kill()


def test_without_a_store_a_killed_shard_starts_over(ray_cluster: dict) -> None:
    options = {"max_restarts": 1, "max_task_retries": -1}
    server = ParameterServer({"w": np.zeros(4)}, shards=2, learning_rate=0.5, actor_options=options)
    try:
        for _ in range(3):
            server.push({"w": np.ones(4)}, timeout=TIMEOUT)
        kill_and_wait(lambda: server.pids(timeout=TIMEOUT)[1])
        stats = server.stats(timeout=TIMEOUT)
        assert stats["versions"] == [3, 0]  # shard 1's pushes died with its process
        assert server.pull(timeout=TIMEOUT)["w"].tolist() == [-1.5, -1.5, 0.0, 0.0]
    finally:
        server.kill()


# --- training through failures -----------------------------------------------------------------


@pytest.fixture(scope="module")
def data() -> Digits:
    return digits()


@pytest.fixture(scope="module")
def model(data: Digits) -> SoftmaxRegression:
    return SoftmaxRegression(data.X_train.shape[1], 10, seed=0)


@pytest.fixture(scope="module")
def workers(ray_cluster: dict, data: Digits, model: SoftmaxRegression) -> Iterator[list]:
    pool = [GradientWorker(model, X, y) for X, y in data.partitions(2)]
    yield pool
    for worker in pool:
        worker.kill()


def _kill_when(server: ParameterServer, version: int, pid: int) -> threading.Thread:
    """A thread that SIGKILLs ``pid`` once the server has applied ``version`` pushes."""

    def run() -> None:
        deadline = time.monotonic() + TIMEOUT
        while server.version(timeout=TIMEOUT) < version:
            assert time.monotonic() < deadline, "training did not get far enough"
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_training_survives_a_shard_sigkill(
    ray_cluster: dict, tmp_path: Path, data: Digits, model: SoftmaxRegression, workers: list
) -> None:
    server = ParameterServer(
        model.init_params(), shards=2, learning_rate=0.5, store=DirectoryStore(tmp_path)
    )
    try:
        victim = server.pids(timeout=TIMEOUT)[1]
        killer = _kill_when(server, 40, victim)
        history = train(
            server,
            workers,
            mode="sync",
            steps=150,
            eval_data=(data.X_test, data.y_test),
            timeout=TIMEOUT,
        )
        killer.join(timeout=TIMEOUT)
        assert not killer.is_alive()
        assert server.pids(timeout=TIMEOUT)[1] != victim  # it was killed and came back
        assert server.version(timeout=TIMEOUT) == history.updates == 150
        assert history.final_accuracy is not None and history.final_accuracy >= data.bar
        # No push lost or applied twice: the weights are those of the same 150 sync steps
        # computed in this process (equal up to rounding, which a lost or doubled step
        # of size 0.5 * gradient exceeds by far).
        reference = _local_sync(model, data, steps=150, learning_rate=0.5, workers=2)
        weights = server.pull(timeout=TIMEOUT)
        for name, expected in reference.items():
            assert np.allclose(weights[name], expected, rtol=0, atol=1e-9), name
    finally:
        server.kill()


def _local_sync(
    model: SoftmaxRegression, data: Digits, *, steps: int, learning_rate: float, workers: int
) -> dict[str, np.ndarray]:
    """What `train(mode="sync")` computes, in one process: the mean of the partitions' gradients."""
    params = model.init_params()
    parts = data.partitions(workers)
    for _ in range(steps):
        grads = [model.loss_and_gradients(params, X, y)[1] for X, y in parts]
        for name in params:
            params[name] -= learning_rate * (sum(g[name] for g in grads) / workers)
    return params


def test_training_survives_a_worker_sigkill(
    ray_cluster: dict, data: Digits, model: SoftmaxRegression, workers: list
) -> None:
    server = ParameterServer(model.init_params(), shards=2, learning_rate=0.5)
    try:
        victim = workers[1].pid(timeout=TIMEOUT)
        killer = _kill_when(server, 40, victim)
        history = train(
            server,
            workers,
            mode="async",
            steps=100,
            eval_data=(data.X_test, data.y_test),
            timeout=TIMEOUT,
        )
        killer.join(timeout=TIMEOUT)
        assert history.replaced_workers == [1]
        assert history.events[0].kind == "worker_replaced" and history.events[0].update >= 40
        assert workers[1].pid(timeout=TIMEOUT) != victim
        assert history.updates == 200  # the lost step was computed again
        assert history.final_accuracy is not None and history.final_accuracy >= data.bar
    finally:
        server.kill()
