"""Reinforcement learning: rollout workers play CartPole, a learner updates the policy.

Run it with ``python examples/agents_rollouts.py``; the tutorial page
``tutorials/patterns/agents.md`` shows its sections.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import numpy as np

from patterns import PolicyHistory, RolloutWorker, train_policy


def one_worker() -> None:
    # --8<-- [start:worker]
    with RolloutWorker("CartPole-v1") as worker:  # gymnasium is imported in the actor only
        size, n_actions = worker.spaces()  # (4, 2)
        weights = np.zeros((n_actions, size + 1))  # a linear softmax policy: 10 numbers
        [episode] = worker.rollout(weights, seeds=[0])
    print(f"a uniformly random policy kept the pole up {len(episode['actions'])} steps")
    # --8<-- [end:worker]
    assert episode["observations"].shape == (len(episode["actions"]), size + 1)


def train() -> PolicyHistory:
    # --8<-- [start:train]
    history = train_policy(
        n_workers=2,  # rollout workers, spread over the nodes
        target=195.0,  # mean return over the last 100 episodes
        max_episodes=1_500,  # the budget in episodes...
        budget_s=600,  # ...and in wall time (the loop stops at whichever comes first)
        rollout_timeout_s=120,  # a stuck worker ends the run (CallTimeoutError), no hang
        episodes_per_iteration=10,  # one update (and one ray.put of the weights) per 10
        learning_rate=0.1,
        seed=0,
    )
    print(
        f"solved after {history.solved_episode} episodes, {history.iterations} updates, "
        f"{history.solved_seconds:.1f} s"
    )
    # --8<-- [end:train]
    assert history.solved and history.stopped_by == "target"
    return history


def replace() -> None:
    # --8<-- [start:replace]
    killed: list[int] = []

    def kill_a_worker(info: dict[str, Any]) -> None:  # called after every update
        if info["iteration"] == 2:
            (pid,) = info["workers"][0].pids()
            os.kill(pid, signal.SIGKILL)  # the process dies, like a lost executor
            killed.append(pid)

    history = train_policy(n_workers=2, max_episodes=30, seed=1, on_iteration=kill_a_worker)
    print(f"killed {killed}, replaced {history.n_replaced_workers}, played {history.episodes}")
    # --8<-- [end:replace]
    assert history.n_replaced_workers == 1 and history.episodes == 30


def main() -> None:
    one_worker()
    train()
    replace()


if __name__ == "__main__":
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
