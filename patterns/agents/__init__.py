"""Online learning agents: models that live in actors, learn from feedback, and merge.

The seeds' learning agent keeps its model in a Ray actor: ``make_prediction``
sends a context and gets an action back, ``receive_feedback`` teaches it what the
action earned, and the model is never pickled between cycles. This family builds
that agent for any scikit-learn estimator with ``partial_fit`` (`LearningAgent`),
adds linear contextual bandits (`LinUCBAgent`, `ThompsonSamplingAgent`) and a
baseline (`RandomAgent`), a simulator with known expected rewards to measure
regret (`ContextualBanditEnv`, `run_bandit`), replicas of a linear bandit that
merge their statistics exactly (`AgentReplicas`), a population of agents
competing on one stream (`AgentPopulation`), and the reinforcement-learning loop
of rollout workers and a learner (`RolloutWorker`, `train_policy`).

What it promises: with a checkpoint store an agent survives its process being
killed with every acknowledged feedback applied exactly once (like the counters);
replicas of a linear bandit hold, after a merge, exactly the statistics of one
agent fed all their feedback; a dead rollout worker is replaced and its episodes
replayed. What it does not: predictions are not checkpointed (an exploring
agent's random stream resumes from the last checkpoint after a crash), and a
`LearningAgent`'s models cannot be merged (scikit-learn has no way to add two
fitted models).
"""

from patterns.agents._agents import (
    Agent,
    LearningAgent,
    LinUCBAgent,
    RandomAgent,
    ThompsonSamplingAgent,
)
from patterns.agents._env import BanditHistory, ContextualBanditEnv, run_bandit
from patterns.agents._replicas import AgentPopulation, AgentReplicas
from patterns.agents._rl import PolicyHistory, RolloutWorker, train_policy

__all__ = [
    "Agent",
    "AgentPopulation",
    "AgentReplicas",
    "BanditHistory",
    "ContextualBanditEnv",
    "LearningAgent",
    "LinUCBAgent",
    "PolicyHistory",
    "RandomAgent",
    "RolloutWorker",
    "ThompsonSamplingAgent",
    "run_bandit",
    "train_policy",
]
