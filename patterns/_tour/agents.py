"""The tour's online-learning step: a bandit race, and a learning agent surviving SIGKILL."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from typing import Any


def _race(rounds: int) -> None:
    from patterns import ContextualBanditEnv, LinUCBAgent, RandomAgent, run_bandit

    regret = {}
    for name, agent in (
        ("LinUCB", LinUCBAgent(n_actions=5, n_features=10)),
        ("random", RandomAgent(n_actions=5, seed=0)),
    ):
        with agent:
            env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)  # same luck for both
            history = run_bandit(agent, env, rounds=rounds, batch_size=10, budget_s=300)
            regret[name] = history.cumulative_regret
    print(
        f"bandit race, {rounds} rounds, 5 actions: cumulative regret LinUCB "
        f"{regret['LinUCB']:.1f}, random {regret['random']:.1f}"
    )
    assert regret["LinUCB"] < regret["random"] / 3


def _wait_for_new_pid(agent: Any, old: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            (pid,) = agent.pids(timeout=timeout)
            if pid != old:
                return int(pid)
        except Exception:  # the call raced with the crash; Ray retries the next one
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the agent was not restarted within {timeout} s")


def _survive(rounds: int) -> None:
    import numpy as np
    from sklearn.linear_model import SGDRegressor

    from patterns import ContextualBanditEnv, DirectoryStore, LearningAgent

    with (
        tempfile.TemporaryDirectory(prefix="demo-agent-") as path,
        LearningAgent(SGDRegressor(), n_actions=5, seed=0, store=DirectoryStore(path)) as agent,
    ):
        env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
        for _ in range(rounds // 10):
            contexts = np.array([env.context() for _ in range(10)])
            actions = agent.make_predictions(contexts)
            rewards = [env.reward(x, a) for x, a in zip(contexts, actions, strict=True)]
            agent.receive_feedbacks(contexts, actions, rewards)
        (pid,) = agent.pids()
        os.kill(pid, signal.SIGKILL)
        print(f"learning agent: {rounds} feedbacks acknowledged, SIGKILL pid {pid}")
        new_pid = _wait_for_new_pid(agent, pid)
        stats = agent.stats()
        version = stats["restored_version"]
        print(
            f"learning agent after SIGKILL: pid {new_pid}, {stats['feedbacks']} feedbacks "
            f"applied of {rounds} acknowledged, restored checkpoint v{version}"
        )
        assert stats["feedbacks"] == rounds and stats["restored_version"] > 0


def step(spark: Any, *, quick: bool) -> None:
    """A short bandit race, then a learning agent that survives a SIGKILL."""
    _race(500 if quick else 3_000)
    print("Ray logs the kill below as a worker that 'died unexpectedly': that is our SIGKILL")
    _survive(100 if quick else 500)
