"""Kill agents' processes (SIGKILL, by PID) mid-stream; check what was promised.

Promises under test:
- with a checkpoint store, an agent restores after its process is killed and keeps
  learning; the feedbacks it applied equal the acknowledged ones (none lost, none
  twice), and a linear bandit's statistics equal those of an agent fed exactly the
  acknowledged feedback;
- without a store, a restarted agent starts over;
- replicas with stores stay exact through a replica's crash during merges;
- a killed rollout worker is replaced, and training draws the curve an undisturbed
  run draws;
- a feedback that crashes the agent on every attempt (a poison estimator) fails after
  a finite number of retries, and the agent serves on with nothing acknowledged lost;
- a stuck agent (SIGSTOP) ends run_bandit, and a stuck rollout worker ends
  train_policy, with CallTimeoutError instead of a hang;
- a merge that failed is reported, even after later merges succeeded.

A tmp directory stands in for a store every node can reach: it is one here, because
every Ray node of the test cluster runs on this machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from sklearn.linear_model import SGDRegressor

from patterns import (
    ActorLostError,
    AgentReplicas,
    CallTimeoutError,
    ContextualBanditEnv,
    DirectoryStore,
    LearningAgent,
    LinUCBAgent,
    RayKVStore,
    RemoteCallError,
    run_bandit,
    train_policy,
)
from patterns.agents._state import LearningState, LinUCBState
from tests._faults import TIMEOUT, CallStream, kill_and_wait
from tests.contract_cases.agents import POISON, PoisonedSGD

pytestmark = pytest.mark.fault


class _Teacher(CallStream):
    """Sends feedback batches of 5, a window of calls in flight; it keeps, in order,
    every batch whose call was acknowledged (``acknowledged`` counts feedbacks)."""

    def __init__(self, agent: Any, env: ContextualBanditEnv, *, window: int = 4) -> None:
        super().__init__(threads=1)
        self._agent = agent
        self._env = env
        self._size = window
        self._rng = np.random.default_rng(0)
        self.batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _window(self, thread: int) -> int:
        sent = []
        for _ in range(self._size):
            contexts = self._env._draw_contexts(5)
            actions = self._rng.integers(self._env.n_actions, size=5)
            rewards = self._env._draw_rewards(self._env._expected(contexts))[np.arange(5), actions]
            ref = self._agent.receive_feedbacks_async(contexts, actions, rewards)
            sent.append((ref, (contexts, actions, rewards)))
        ray.get([ref for ref, _ in sent], timeout=TIMEOUT)
        self.batches.extend(batch for _, batch in sent)
        return 5 * len(sent)


@pytest.mark.parametrize(("store_kind", "kills"), [("directory", 2), ("ray-kv", 1)])
def test_linucb_survives_sigkill_with_exactly_the_acknowledged_feedback(
    ray_cluster: dict, tmp_path: Path, store_kind: str, kills: int
) -> None:
    store: Any = DirectoryStore(tmp_path) if store_kind == "directory" else RayKVStore()
    agent = LinUCBAgent(n_actions=4, n_features=6, store=store)
    env = ContextualBanditEnv(n_actions=4, n_features=6, seed=3)
    try:
        with _Teacher(agent, env) as teacher:
            for _ in range(kills):
                teacher.wait_for_progress(100)
                kill_and_wait(lambda: agent.pids(timeout=TIMEOUT)[0])
            teacher.wait_for_progress(100)
        assert not teacher.errors, teacher.errors
        stats = agent.stats(timeout=TIMEOUT)
        assert stats["feedbacks"] == teacher.acknowledged  # none lost, none applied twice
        assert stats["restored_version"] > 0
        # The statistics are those of an agent fed exactly the acknowledged feedback.
        one = LinUCBState(4, 6)
        for contexts, actions, rewards in teacher.batches:
            one.receive_feedbacks(contexts, actions, rewards)
        held = ray.get(agent.actor.statistics.remote(), timeout=TIMEOUT)
        np.testing.assert_allclose(held["A"], one.A, rtol=1e-10)
        np.testing.assert_allclose(held["b"], one.b, rtol=1e-9, atol=1e-9)
    finally:
        agent.close()
        if isinstance(store, RayKVStore) and agent.key:
            store.delete(agent.key)


def test_learning_agent_restores_and_keeps_learning(ray_cluster: dict, tmp_path: Path) -> None:
    agent = LearningAgent(
        SGDRegressor(), n_actions=5, epsilon=0.05, seed=0, store=DirectoryStore(tmp_path)
    )
    env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
    try:
        early = run_bandit(agent, env, rounds=500, batch_size=10)
        with _Teacher(agent, env) as teacher:
            teacher.wait_for_progress(50)
            kill_and_wait(lambda: agent.pids(timeout=TIMEOUT)[0])
            teacher.wait_for_progress(50)
        assert not teacher.errors, teacher.errors
        stats = agent.stats(timeout=TIMEOUT)
        assert stats["feedbacks"] == 500 + teacher.acknowledged
        assert stats["trained"] == stats["feedbacks"]  # retrain_every=1: nothing pending
        # It restored its models, not a fresh start: the coefficients right after a kill
        # are the ones right before it (a quiet moment, so nothing changes in between).
        before = agent.get_model(timeout=TIMEOUT)
        kill_and_wait(lambda: agent.pids(timeout=TIMEOUT)[0])
        after = agent.get_model(timeout=TIMEOUT)
        assert agent.stats(timeout=TIMEOUT)["feedbacks"] == stats["feedbacks"]
        for old, new in zip(before, after, strict=True):
            np.testing.assert_array_equal(new.coef_, old.coef_)
            np.testing.assert_array_equal(new.intercept_, old.intercept_)
        # And it keeps learning.
        late = run_bandit(agent, env, rounds=1_000, batch_size=10)
        share = late.average_reward(last=500) / late.oracle_average_reward(last=500)
        assert share > early.average_reward() / early.oracle_average_reward()
        assert share > 0.8, share
    finally:
        agent.close()


def test_without_a_store_a_restarted_agent_starts_over(ray_cluster: dict) -> None:
    options = {"max_restarts": 1, "max_task_retries": 3}
    with LinUCBAgent(n_actions=3, n_features=2, actor_options=options) as agent:
        agent.receive_feedbacks([[1.0, 0.0]] * 10, [0] * 10, [1.0] * 10, timeout=TIMEOUT)
        kill_and_wait(lambda: agent.pids(timeout=TIMEOUT)[0])
        assert agent.stats(timeout=TIMEOUT)["feedbacks"] == 0  # the model died with it


def test_replicas_stay_exact_through_a_replica_crash(ray_cluster: dict, tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    replicas = AgentReplicas(
        LinUCBAgent,
        n_replicas=3,
        sync_every=6,
        agent_kwargs={"n_actions": 4, "n_features": 5},
        store=store,
    )
    env = ContextualBanditEnv(n_actions=4, n_features=5, seed=1)
    try:
        with _Teacher(replicas, env, window=3) as teacher:
            for _ in range(2):
                teacher.wait_for_progress(60)
                kill_and_wait(lambda: replicas.pids(timeout=TIMEOUT)[1])
            teacher.wait_for_progress(60)
        assert not teacher.errors, teacher.errors
        replicas.sync(timeout=TIMEOUT)
        stats = replicas.stats(timeout=TIMEOUT)
        assert stats["feedbacks"] == teacher.acknowledged
        one = LinUCBState(4, 5)
        for contexts, actions, rewards in teacher.batches:
            one.receive_feedbacks(contexts, actions, rewards)
        for held in replicas.statistics(timeout=TIMEOUT):
            np.testing.assert_allclose(held["A"], one.A, rtol=1e-10)  # merges applied once
            np.testing.assert_allclose(held["b"], one.b, rtol=1e-9, atol=1e-9)
    finally:
        replicas.close()


class _FullDisk(DirectoryStore):
    """A real directory store whose saves fail, while a file ``FULL`` names their key.

    It stands for a disk that fills up for a while: the write of a checkpoint raises
    ``OSError`` inside the actor, then works again once space is freed.
    """

    def save(self, key: str, state: Any, version: int) -> None:
        full = self.path / "FULL"
        if full.exists() and key in full.read_text(encoding="utf-8").split():
            raise OSError(28, "No space left on device (simulated)")
        super().save(key, state, version)


def test_a_failed_merge_is_reported_even_after_later_merges(
    ray_cluster: dict, tmp_path: Path
) -> None:
    # The failure of sync 1's merge on replica 0 must reach the caller, even though
    # sync 2 starts (and succeeds) before the caller waits for anything merge-related.
    store = _FullDisk(tmp_path)
    replicas = AgentReplicas(
        LinUCBAgent,
        n_replicas=2,
        sync_every=2,
        agent_kwargs={"n_actions": 3, "n_features": 2},
        store=store,
        key="replicas",
    )
    x = [1.0, 0.0]
    try:
        replicas.receive_feedback(x, 0, 1.0, timeout=TIMEOUT)  # replica 0, saved
        (tmp_path / "FULL").write_text("replicas/replica-0-of-2", encoding="utf-8")
        replicas.receive_feedback(x, 1, 1.0, timeout=TIMEOUT)  # replica 1: sync 1 starts
        replicas.agents[0].stats(timeout=TIMEOUT)  # queued behind replica 0's merge: it ran
        (tmp_path / "FULL").unlink()  # space is back: later merges succeed
        with pytest.raises(
            RemoteCallError,
            match=r"AgentReplicas \(actor [0-9a-f]{8}\): merge \(sync 1, replica 0\) raised "
            r"OSError: \[Errno 28\] No space left on device",
        ):
            replicas.receive_feedback(x, 0, 1.0, timeout=TIMEOUT)
            replicas.receive_feedback(x, 1, 1.0, timeout=TIMEOUT)  # sync 2 starts
            replicas.sync(timeout=TIMEOUT)  # sync 3, and wait for it
        # Reported once: the facade goes on.
        replicas.receive_feedback(x, 0, 1.0, timeout=TIMEOUT)
        replicas.sync(timeout=TIMEOUT)
    finally:
        replicas.close()


def test_a_poison_feedback_fails_after_finite_retries_and_the_agent_serves_on(
    ray_cluster: dict, tmp_path: Path
) -> None:
    """An estimator whose partial_fit kills the process on one input: the feedback fails
    with the library's error after Ray's few retries, nothing acknowledged is lost or
    applied twice, and the restarted agent serves the other calls."""
    name = f"poisoned-{uuid.uuid4().hex[:8]}"
    agent = LearningAgent(
        PoisonedSGD(), n_actions=3, epsilon=0.0, seed=0, store=DirectoryStore(tmp_path), name=name
    )
    reference = LearningState(3, None, seed=0, estimator=PoisonedSGD(), epsilon=0.0)
    env = ContextualBanditEnv(n_actions=3, n_features=2, seed=0)
    rng = np.random.default_rng(0)

    def batch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        contexts = env._draw_contexts(5)
        return contexts, rng.integers(3, size=5), rng.standard_normal(5)

    try:
        acknowledged = [batch() for _ in range(4)]
        for contexts, actions, rewards in acknowledged:
            agent.receive_feedbacks(contexts, actions, rewards, timeout=TIMEOUT)
        queued = [batch() for _ in range(3)]  # in flight, ahead of the poison: applied
        refs = [agent.receive_feedbacks_async(*b) for b in queued]
        with pytest.raises(ActorLostError, match=rf"LearningAgent '{name}': receive_feedback did"):
            agent.receive_feedback([POISON, 0.0], 0, 1.0, timeout=120)
        ray.get(refs, timeout=TIMEOUT)
        acknowledged += queued
        later = batch()
        agent.receive_feedbacks(*later, timeout=TIMEOUT)  # the restarted agent serves
        acknowledged.append(later)
        stats = agent.stats(timeout=TIMEOUT)
        assert stats["feedbacks"] == 5 * len(acknowledged)  # each once, the poison never
        for contexts, actions, rewards in acknowledged:
            reference.receive_feedbacks(contexts, actions, rewards)
        for held, expected in zip(agent.get_model(timeout=TIMEOUT), reference.models, strict=True):
            np.testing.assert_array_equal(held.coef_, expected.coef_)  # the same learning
        assert agent.make_prediction([0.5, 0.5], timeout=TIMEOUT) in range(3)
    finally:
        agent.close()


def test_a_stuck_agent_ends_run_bandit_with_call_timeout_error(ray_cluster: dict) -> None:
    name = f"stuck-{uuid.uuid4().hex[:8]}"
    with LinUCBAgent(n_actions=3, n_features=2, name=name) as agent:
        (pid,) = agent.pids(timeout=TIMEOUT)
        env = ContextualBanditEnv(n_actions=3, n_features=2, seed=0)
        for bound, expected in (
            ({"timeout": 1.0}, rf"LinUCBAgent '{name}': \w+ got no reply within 1 s"),
            ({"budget_s": 3.0}, r"run_bandit spent its budget_s=3 s after \d+ of 1000000 rounds"),
        ):
            stop = threading.Timer(0.5, os.kill, (pid, signal.SIGSTOP))  # during the run
            stop.start()
            try:
                with pytest.raises(CallTimeoutError, match=expected):
                    run_bandit(agent, env, rounds=1_000_000, **bound)  # type: ignore[arg-type]
            finally:
                stop.join()
                os.kill(pid, signal.SIGCONT)
        assert agent.make_prediction([1.0, 0.0], timeout=TIMEOUT) in range(3)  # resumed


def test_killed_rollout_worker_is_replaced_and_training_goes_on(ray_cluster: dict) -> None:
    kills: list[int] = []

    def kill_worker_once(info: dict[str, Any]) -> None:
        if info["iteration"] == 2 and not kills:
            pid = info["workers"][0].pids(timeout=TIMEOUT)[0]
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)

    settings = {"n_workers": 2, "target": 1e9, "max_episodes": 40, "seed": 4}
    disturbed = train_policy(on_iteration=kill_worker_once, **settings)
    calm = train_policy(**settings)
    assert kills and disturbed.n_replaced_workers >= 1
    assert disturbed.episodes == 40
    # Episodes are seeded, so the replacement replays the lost ones: the same curve.
    np.testing.assert_array_equal(disturbed.returns, calm.returns)
    np.testing.assert_allclose(disturbed.weights, calm.weights)


def test_a_stuck_rollout_worker_ends_train_policy_with_call_timeout_error(
    ray_cluster: dict,
) -> None:
    stopped: list[int] = []
    workers: list[Any] = []

    def stop_a_worker(info: dict[str, Any]) -> None:
        if info["iteration"] == 2 and not stopped:
            workers.extend(info["workers"])
            pid = info["workers"][0].pids(timeout=TIMEOUT)[0]
            os.kill(pid, signal.SIGSTOP)  # alive, answering nothing
            stopped.append(pid)

    try:
        with pytest.raises(
            CallTimeoutError,
            match=r"RolloutWorker \(actor [0-9a-f]{8}\): rollout of iteration 2 got no episodes "
            r"within rollout_timeout_s=8 s",
        ):
            train_policy(
                n_workers=2,
                target=1e9,
                max_episodes=10_000,
                rollout_timeout_s=8,
                seed=0,
                on_iteration=stop_a_worker,
            )
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    # train_policy stopped its workers before raising, the stuck one too.
    assert len(workers) == 2 and all(worker.closed for worker in workers)
    for worker in workers:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(worker.actor.pid.remote(), timeout=TIMEOUT)
