"""Stateful Ray actor patterns: plain state classes behind typed facades.

Each pattern family is a module, and its public names are re-exported here, so
``from patterns import Counter, ShardedCounter, DirectoryStore`` works.

Nothing here imports ``launcher`` or ``pyspark``: the patterns run on any Ray cluster.
"""

from patterns.agents import (
    Agent,
    AgentPopulation,
    AgentReplicas,
    BanditHistory,
    ContextualBanditEnv,
    LearningAgent,
    LinUCBAgent,
    PolicyHistory,
    RandomAgent,
    RolloutWorker,
    ThompsonSamplingAgent,
    run_bandit,
    train_policy,
)
from patterns.checkpointing import Checkpoint, CheckpointStore, DirectoryStore, RayKVStore
from patterns.counters import Counter, ShardedCounter

__all__ = [
    "Agent",
    "AgentPopulation",
    "AgentReplicas",
    "BanditHistory",
    "Checkpoint",
    "CheckpointStore",
    "ContextualBanditEnv",
    "Counter",
    "DirectoryStore",
    "LearningAgent",
    "LinUCBAgent",
    "PolicyHistory",
    "RandomAgent",
    "RayKVStore",
    "RolloutWorker",
    "ShardedCounter",
    "ThompsonSamplingAgent",
    "run_bandit",
    "train_policy",
]
