"""Contextual bandits: a simulator with known rewards, and a race between agents.

Run it with ``python examples/agents_bandits.py``; the tutorial page
``tutorials/patterns/agents.md`` shows its sections.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import SGDRegressor

from patterns import (
    BanditHistory,
    ContextualBanditEnv,
    LearningAgent,
    LinUCBAgent,
    RandomAgent,
    ThompsonSamplingAgent,
    run_bandit,
)


def environment() -> None:
    # --8<-- [start:env]
    env = ContextualBanditEnv(n_actions=5, n_features=10, noise=0.1, seed=0)
    x = env.context()  # 10 features, standard normal
    print(np.round(env.expected_rewards(x), 2))  # what each action earns on average here
    print(env.best_action(x), round(env.reward(x, 2), 2))  # the oracle's pick; one draw
    # --8<-- [end:env]
    assert env.best_action(x) == int(np.argmax(env.expected_rewards(x)))


def race() -> dict[str, BanditHistory]:
    # --8<-- [start:race]
    agents = {
        "LinUCB": LinUCBAgent(n_actions=5, n_features=10, alpha=1.0),
        "Thompson": ThompsonSamplingAgent(n_actions=5, n_features=10, seed=0),
        "LearningAgent (SGD, epsilon 0.1)": LearningAgent(SGDRegressor(), n_actions=5, seed=0),
        "Random": RandomAgent(n_actions=5, seed=0),
    }
    histories = {}
    for name, agent in agents.items():
        with agent:  # close() stops the actor when the block ends
            env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)  # the same luck
            histories[name] = run_bandit(agent, env, rounds=1_500, batch_size=20, budget_s=600)
    for name, history in histories.items():
        print(f"{name:34} cumulative regret {history.cumulative_regret:8.1f}")
    # --8<-- [end:race]
    regret = {name: h.cumulative_regret for name, h in histories.items()}
    learner = regret["LearningAgent (SGD, epsilon 0.1)"]
    assert regret["LinUCB"] < learner and regret["Thompson"] < learner
    assert max(regret["LinUCB"], regret["Thompson"], learner) < regret["Random"] / 3
    return histories


def main() -> None:
    environment()
    race()


if __name__ == "__main__":
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
