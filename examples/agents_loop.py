"""The agent loop: a model in an actor predicts, receives feedback and learns.

Run it with ``python examples/agents_loop.py``; the tutorial page
``tutorials/patterns/agents.md`` shows its sections.
"""

from __future__ import annotations

import numpy as np
import ray
from sklearn.linear_model import SGDRegressor

from patterns import ContextualBanditEnv, LearningAgent

TIMEOUT = 120  # seconds: no wait in the examples is unbounded


# --8<-- [start:bare]
@ray.remote
class BareAgent:
    """The seeds' agent as a bare Ray actor: one model per action, kept in memory."""

    def __init__(self, n_actions: int) -> None:
        self.models = [SGDRegressor(random_state=a) for a in range(n_actions)]
        self.tried = [False] * n_actions

    def make_prediction(self, context: np.ndarray) -> int:
        untried = [a for a, seen in enumerate(self.tried) if not seen]
        if untried:
            return untried[0]
        scores = [m.predict(context[None, :])[0] for m in self.models]
        return int(np.argmax(scores))

    def receive_feedback(self, context: np.ndarray, action: int, reward: float) -> None:
        # partial_fit: learn from this one example, not from the whole history again.
        self.models[action].partial_fit(context[None, :], [reward])
        self.tried[action] = True


# --8<-- [end:bare]


def bare() -> float:
    # --8<-- [start:bare_use]
    env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
    agent = BareAgent.remote(5)
    rewards = []
    for _ in range(150):
        x = env.context()
        action = ray.get(agent.make_prediction.remote(x), timeout=TIMEOUT)
        reward = env.reward(x, action)
        ray.get(agent.receive_feedback.remote(x, action, reward), timeout=TIMEOUT)
        rewards.append(reward)
    # --8<-- [end:bare_use]
    ray.kill(agent)
    return float(np.mean(rewards[-50:]))


def loop() -> tuple[float, float]:
    # --8<-- [start:loop]
    env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
    agent = LearningAgent(SGDRegressor(), n_actions=5, epsilon=0.1, seed=0)

    rewards, best = [], []
    for _ in range(300):
        x = env.context()
        action = agent.make_prediction(x)  # an int in range(5)
        reward = env.reward(x, action)  # the world answers
        agent.receive_feedback(x, action, reward)  # the agent learns, in its actor
        rewards.append(reward)
        best.append(env.expected_rewards(x).max())

    first, last = np.mean(rewards[:100]), np.mean(rewards[-100:])
    print(f"mean reward, first 100 rounds: {first:.2f}; last 100: {last:.2f}")
    print(f"the oracle's mean expected reward, last 100: {np.mean(best[-100:]):.2f}")
    # --8<-- [end:loop]
    assert last > first + 0.3 and last > 0.75 * np.mean(best[-100:]), (first, last)
    live(agent)
    batches(agent, env)
    tasks(agent, env)
    agent.close()  # stop the actor (and wait until Ray reports it dead)
    return float(first), float(last)


def live(agent: LearningAgent) -> None:
    # --8<-- [start:live]
    agent.set_params(epsilon=0.0)  # stop exploring: the seeds' set_coef
    agent.set_params(estimator__eta0=0.005)  # the estimator's own parameters too
    params = agent.get_params()
    assert params["epsilon"] == 0.0 and params["estimator"].eta0 == 0.005

    stats = agent.stats()
    print(f"{stats['feedbacks']} feedbacks applied, mean reward {stats['mean_reward']:.2f}")
    models = agent.get_model()  # fitted copies, one per action
    print([type(m).__name__ for m in models])
    # --8<-- [end:live]
    assert stats["feedbacks"] == 300


def batches(agent: LearningAgent, env: ContextualBanditEnv) -> None:
    # --8<-- [start:batch]
    contexts = np.array([env.context() for _ in range(100)])
    actions = agent.make_predictions(contexts)  # one round trip for 100 decisions
    rewards = [env.reward(x, a) for x, a in zip(contexts, actions, strict=True)]
    agent.receive_feedbacks(contexts, actions, rewards)  # and one for their feedback
    # --8<-- [end:batch]
    assert agent.stats()["feedbacks"] == 400


# --8<-- [start:tasks]
@ray.remote
def score(weights: np.ndarray, intercepts: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    """A task: the best action for each context, with a model that does not change."""
    return np.argmax(contexts @ weights.T + intercepts, axis=1)


def score_offline(agent: LearningAgent, contexts: np.ndarray) -> np.ndarray:
    models = agent.get_model()  # a snapshot of the linear models: ship only their numbers
    weights = ray.put(np.array([m.coef_ for m in models]))  # stored once, read by every task
    intercepts = ray.put(np.array([m.intercept_[0] for m in models]))
    chunks = np.array_split(contexts, 2)
    refs = [score.remote(weights, intercepts, chunk) for chunk in chunks]
    return np.concatenate(ray.get(refs, timeout=TIMEOUT))


# --8<-- [end:tasks]


def tasks(agent: LearningAgent, env: ContextualBanditEnv) -> None:
    contexts = np.array([env.context() for _ in range(200)])
    offline = score_offline(agent, contexts)
    online = np.array(agent.make_predictions(contexts))  # epsilon is 0 now: greedy
    assert (offline == online).all()  # the same models, the same choices


def main() -> None:
    bare_reward = bare()
    _, last = loop()
    print(f"mean reward, last rounds: bare actor {bare_reward:.2f}, LearningAgent {last:.2f}")


if __name__ == "__main__":
    from launcher import RayOnSpark

    # --8<-- [start:script-cluster]
    with RayOnSpark():
        main()
    # --8<-- [end:script-cluster]
