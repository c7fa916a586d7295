"""Surviving a crash: a learning agent with a checkpoint store keeps what it learnt.

Run it with ``python examples/agents_crash.py``.
"""

from __future__ import annotations

import time
import uuid

import numpy as np
import ray
from sklearn.linear_model import SGDRegressor

from patterns import (
    Agent,
    ContextualBanditEnv,
    LearningAgent,
    LinUCBAgent,
    PatternError,
    RayKVStore,
    run_bandit,
)

TIMEOUT = 120


def crash_and_wait(agent: Agent, timeout: float = TIMEOUT) -> None:
    """Kill the actor's process the hard way and wait until Ray has restarted it."""
    (old_pid,) = agent.pids(timeout=timeout)
    agent.kill()  # the crash simulation: the process dies as in a crash; Ray may restart it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if agent.pids(timeout=timeout) != [old_pid]:
                return
        except PatternError:
            pass  # the call raced with the crash; ask again
        time.sleep(0.1)
    raise TimeoutError(f"the actor was not restarted within {timeout} s")


def feed(agent: LearningAgent, env: ContextualBanditEnv, rounds: int) -> float:
    """Play ``rounds`` rounds in batches of 10; return the mean reward."""
    rewards = []
    for _ in range(rounds // 10):
        contexts = np.array([env.context() for _ in range(10)])
        actions = agent.make_predictions(contexts)
        drawn = [env.reward(x, a) for x, a in zip(contexts, actions, strict=True)]
        agent.receive_feedbacks(contexts, actions, drawn)
        rewards += drawn
    return float(np.mean(rewards))


def survive() -> None:
    # --8<-- [start:survive]
    store = RayKVStore(namespace="agents-tutorial")  # any node of the cluster reaches it
    key = f"recommender-{uuid.uuid4().hex}"
    agent = LearningAgent(SGDRegressor(), n_actions=5, epsilon=0.05, seed=0, store=store, key=key)
    env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)

    early = feed(agent, env, 500)  # every acknowledged feedback is in the store
    x = env.context()
    in_flight = [agent.receive_feedback_async(x, a, env.reward(x, a)) for a in range(5)]
    crash_and_wait(agent)  # the models die with the process ...
    ray.get(in_flight, timeout=TIMEOUT)  # ... Ray re-sent these; none applied twice

    stats = agent.stats()
    assert stats["feedbacks"] == 505  # everything acknowledged, exactly once
    assert stats["restored_version"] > 0  # the new process restored the checkpoint
    late = feed(agent, env, 300)  # and it goes on from what it knew
    print(f"mean reward before the crash {early:.2f}, after {late:.2f}")
    # --8<-- [end:survive]
    assert late > early
    agent.close()  # stops the actor; its checkpoints stay in the store
    store.delete(key)


def failure() -> None:
    # --8<-- [start:failure]
    options = {"max_restarts": 1, "max_task_retries": 3}  # restartable, but no store
    with LinUCBAgent(n_actions=5, n_features=10, actor_options=options) as agent:
        env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
        run_bandit(agent, env, rounds=100, batch_size=10)
        crash_and_wait(agent)
        assert agent.stats()["feedbacks"] == 0  # a new process, a new model: it starts over
    # --8<-- [end:failure]


def main() -> None:
    survive()
    failure()


if __name__ == "__main__":
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
