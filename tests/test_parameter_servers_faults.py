"""Kill parameter-server shards and gradient workers (SIGKILL, by PID); check what was promised.

- Exactly-once: threads stream pushes (several in flight each) while a shard's process
  is killed; afterwards ``version()`` equals the acknowledged pushes and the weights
  equal what those pushes give without a crash. The gradients are multiples of 1/8 and
  the learning rate 1/2, so every sum is exact in float64 and the comparison is ``==``.
- A push re-sent after a restart gets the answer it got the first time.
- Poison calls end: a push whose checkpoint kills every shard on every attempt fails with
  ActorLostError, the restarted shards serve, and every acknowledged push is applied once.
- Training goes on, and meets the accuracy bar, when a shard or a worker is killed in
  the middle of `train`; a worker that stops answering (SIGSTOP) is replaced, a shard
  that does ends the run with CallTimeoutError, within the timeout.
- `GradientWorker.replace` starts the new actor only once the old process is gone.

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
    ActorLostError,
    CallTimeoutError,
    DirectoryStore,
    GradientWorker,
    ParameterServer,
    RayKVStore,
    SoftmaxRegression,
    train,
)
from patterns._calls import _process_running
from patterns.parameter_servers._loop import MAX_REPLACEMENTS
from patterns.parameter_servers._state import Optimizer
from tests._digits import Digits, digits
from tests._faults import TIMEOUT, CallStream, kill_and_wait
from tests.contract_cases.parameter_servers import POISON_GRADIENT, PoisonModel, PoisonStore

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
        {"w": np.zeros(6)}, n_shards=3, learning_rate=0.5, store=_store(store_kind, tmp_path)
    )
    pids = set()
    with server:
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
    with ParameterServer(
        {"w": np.zeros(6)},
        n_shards=3,
        optimizer=optimizer,
        learning_rate=0.05,
        store=DirectoryStore(tmp_path),
    ) as server:
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


def test_a_push_resent_after_a_restart_gets_its_first_answer(
    ray_cluster: dict, tmp_path: Path
) -> None:
    import ray

    server = ParameterServer(
        {"w": np.zeros(2)}, n_shards=2, max_staleness=0, store=DirectoryStore(tmp_path)
    )
    with server:
        lead = server.actors[0]
        piece = {next(iter(ray.get(lead.pull.remote(), timeout=TIMEOUT)[1])): np.ones(1)}
        # What Ray does after a crash, done by hand: the same call, same request id.
        assert ray.get(lead.push.remote(piece, 0, None, 77, 1), timeout=TIMEOUT) is True
        assert ray.get(lead.push.remote(piece, 0, None, 77, 2), timeout=TIMEOUT) is False  # stale
        kill_and_wait(lambda: server.pids(timeout=TIMEOUT)[0])
        assert ray.get(lead.push.remote(piece, 0, None, 77, 2), timeout=TIMEOUT) is False
        assert ray.get(lead.push.remote(piece, 9, None, 77, 1), timeout=TIMEOUT) is True
        assert ray.get(lead.version.remote(), timeout=TIMEOUT) == 1  # applied once
        assert server.stats(timeout=TIMEOUT)["dropped_stale"] == 1


def test_without_a_store_a_killed_shard_starts_over(ray_cluster: dict) -> None:
    options = {"max_restarts": 1, "max_task_retries": 3}
    with ParameterServer(
        {"w": np.zeros(4)}, n_shards=2, learning_rate=0.5, actor_options=options
    ) as server:
        for _ in range(3):
            server.push({"w": np.ones(4)}, timeout=TIMEOUT)
        kill_and_wait(lambda: server.pids(timeout=TIMEOUT)[1])
        stats = server.stats(timeout=TIMEOUT)
        assert stats["versions"] == [3, 0]  # shard 1's pushes died with its process
        assert server.pull(timeout=TIMEOUT)["w"].tolist() == [-1.5, -1.5, 0.0, 0.0]


def test_a_poison_push_fails_and_every_acknowledged_push_stays_applied_once(
    ray_cluster: dict,
) -> None:
    """A store whose save kills the shard for one push: that push is a poison call.

    Every attempt applies it in memory, dies saving it, restarts from the checkpoint
    without it; after Ray's retries the push fails with ActorLostError. The pushes
    acknowledged before and after it are each applied exactly once.
    """
    import uuid

    store = PoisonStore(namespace=f"test-ps-poison-{uuid.uuid4().hex}")
    with ParameterServer({"w": np.zeros(4)}, n_shards=2, learning_rate=0.5, store=store) as server:
        for _ in range(3):
            assert server.push({"w": np.ones(4)}, timeout=TIMEOUT)
        before = server.pids(timeout=TIMEOUT)
        with pytest.raises(ActorLostError, match=r"ParameterServer .*: push did not complete"):
            server.push({"w": np.full(4, POISON_GRADIENT)}, timeout=TIMEOUT)
        assert server.push({"w": np.ones(4)}, timeout=TIMEOUT)  # the restarted shards serve
        after = server.pids(timeout=TIMEOUT)
        # The lead died on every attempt; shard 1 waits for the lead's decision, which never
        # came, so it never ran the push (and never had to save it).
        assert after[0] != before[0] and after[1] == before[1]
        assert server.version(timeout=TIMEOUT) == 4
        assert server.stats(timeout=TIMEOUT)["versions"] == [4, 4]
        assert server.pull(timeout=TIMEOUT)["w"].tolist() == [-2.0] * 4  # 4 pushes of 0.5


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
        worker.close()


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
    with ParameterServer(
        model.init_params(), n_shards=2, learning_rate=0.5, store=DirectoryStore(tmp_path)
    ) as server:
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
    """Ray restarts the worker on its partition and re-sends the step: nothing to replace."""
    with ParameterServer(model.init_params(), n_shards=2, learning_rate=0.5) as server:
        victim = workers[1].pids(timeout=TIMEOUT)[0]
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
        assert not killer.is_alive()
        assert workers[1].pids(timeout=TIMEOUT)[0] != victim  # a new process ...
        assert history.replaced_workers == [] and workers[1].replacements == 0  # ... by Ray
        assert history.updates == 200  # the lost step was computed again
        assert history.final_accuracy is not None and history.final_accuracy >= data.bar


# --- stuck actors: replaced (workers) or a CallTimeoutError (shards) -----------------------------


def test_replace_starts_the_new_actor_only_once_the_old_process_is_gone(ray_cluster: dict) -> None:
    """The bug: replace() killed and restarted at once, so the new actor ran beside the old
    process (Ray reports a killed actor dead before its process exits: about 50 ms, and
    5 s for a process that does not answer). Failed before the fix."""
    with GradientWorker(SoftmaxRegression(2, 2), np.eye(2), np.array([0, 1])) as worker:
        (old,) = worker.pids(timeout=TIMEOUT)
        os.kill(old, signal.SIGSTOP)  # a hung worker: what train replaces
        try:
            # Ray kills a process that does not answer after 5 s: longer than this bound.
            with pytest.raises(CallTimeoutError, match=rf"\(pid {old}\) still ran after 1 s"):
                worker.replace(timeout=1)
            assert worker.replacements == 0  # no new actor was started beside the old one
            worker.replace(timeout=TIMEOUT)
            assert not _process_running(old), "replace() returned while the old process ran"
            assert worker.pids(timeout=TIMEOUT) != [old] and worker.replacements == 1
        finally:
            if _process_running(old):
                os.kill(old, signal.SIGCONT)


def _stop_when(server: ParameterServer, version: int, pid: int) -> threading.Thread:
    """A thread that SIGSTOPs ``pid`` once the server has applied ``version`` pushes."""

    def run() -> None:
        deadline = time.monotonic() + TIMEOUT
        while server.version(timeout=TIMEOUT) < version:
            assert time.monotonic() < deadline, "training did not get far enough"
            time.sleep(0.02)
        os.kill(pid, signal.SIGSTOP)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_worker_that_stops_answering_is_replaced(
    ray_cluster: dict, data: Digits, model: SoftmaxRegression, mode: str
) -> None:
    """SIGSTOP a worker mid-run: after ``timeout`` it is replaced and the run completes."""
    pool = [GradientWorker(model, X, y) for X, y in data.partitions(2)]
    victim = pool[1].pids(timeout=TIMEOUT)[0]
    try:
        with ParameterServer(model.init_params(), learning_rate=0.5) as server:
            stopper = _stop_when(server, 10, victim)
            history = train(server, pool, mode=mode, steps=20, timeout=4, budget_s=TIMEOUT)
            stopper.join(timeout=TIMEOUT)
            assert not stopper.is_alive()
            assert history.replaced_workers == [1]
            assert [e.detail for e in history.events] == ["CallTimeoutError"]
            assert history.updates == (20 if mode == "sync" else 40)
            assert server.version(timeout=TIMEOUT) == history.updates
            assert not _process_running(victim)  # stopped for good before the new one ran
    finally:
        if _process_running(victim):
            os.kill(victim, signal.SIGCONT)
        for worker in pool:
            worker.close()


def test_a_shard_that_stops_answering_ends_training_with_a_call_timeout_error(
    ray_cluster: dict, data: Digits, model: SoftmaxRegression, workers: list
) -> None:
    with ParameterServer(model.init_params(), n_shards=2, learning_rate=0.5) as server:
        victim = server.pids(timeout=TIMEOUT)[1]
        stopper = _stop_when(server, 5, victim)
        started = time.monotonic()
        try:
            with pytest.raises(
                CallTimeoutError, match=r"ParameterServer .* got no reply within 3 s"
            ):
                train(server, workers, steps=1000, timeout=3)
            assert time.monotonic() - started < TIMEOUT  # bounded: no hang
        finally:
            stopper.join(timeout=TIMEOUT)
            os.kill(victim, signal.SIGCONT)


def test_a_worker_that_keeps_dying_ends_training_with_its_error(
    ray_cluster: dict, model: SoftmaxRegression
) -> None:
    """A poison model on a worker Ray may not restart: replaced, then given up on."""
    poison = PoisonModel(2, 2)
    X, y = np.eye(2), np.array([0, 1])
    params = {"W": np.zeros((2, 2)), "b": np.array([13.0, 0.0])}  # the poison input
    with (
        GradientWorker(poison, X, y, actor_options={"max_restarts": 0}) as worker,
        ParameterServer(params, learning_rate=0.5) as server,
    ):
        with pytest.raises(ActorLostError, match=r"train: worker 0 .* failed 4 times in this run"):
            train(server, [worker], steps=3, budget_s=TIMEOUT)
        assert worker.replacements == MAX_REPLACEMENTS
