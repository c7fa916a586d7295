"""Stateful Ray actor patterns: plain state classes behind typed facades.

Each pattern family is a module, and its public names are re-exported here, so
``from patterns import Counter, ShardedCounter, DirectoryStore`` works.

Nothing here imports ``launcher`` or ``pyspark``: the patterns run on any Ray cluster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from patterns.parameter_servers import (
    GradientModel,
    GradientWorker,
    ParameterServer,
    SoftmaxRegression,
    TrainingEvent,
    TrainingHistory,
    TrainingRecord,
    train,
)
from patterns.spark_bridge import (
    BridgeBatchError,
    BridgeError,
    BridgePool,
    BridgeSchemaError,
    BridgeStats,
    actor_for_key,
    map_batches_with_actors,
    map_groups_with_actors,
)
from patterns.trees import (
    ChildSpec,
    Supervisor,
    SupervisorSpec,
    divide_and_conquer,
    exit_normally,
    tree_reduce,
)

if TYPE_CHECKING:
    from patterns.parameter_servers import ParameterServerClassifier

# Names whose module is imported on first use: they pull in scikit-learn (seconds of
# CPU), which the actor processes that import `patterns` to run a shard never need.
_LAZY = {"ParameterServerClassifier": "patterns.parameter_servers"}

__all__ = [
    "Agent",
    "AgentPopulation",
    "AgentReplicas",
    "BanditHistory",
    "BridgeBatchError",
    "BridgeError",
    "BridgePool",
    "BridgeSchemaError",
    "BridgeStats",
    "Checkpoint",
    "CheckpointStore",
    "ChildSpec",
    "ContextualBanditEnv",
    "Counter",
    "DirectoryStore",
    "GradientModel",
    "GradientWorker",
    "LearningAgent",
    "LinUCBAgent",
    "ParameterServer",
    "ParameterServerClassifier",
    "PolicyHistory",
    "RandomAgent",
    "RayKVStore",
    "RolloutWorker",
    "ShardedCounter",
    "SoftmaxRegression",
    "Supervisor",
    "SupervisorSpec",
    "ThompsonSamplingAgent",
    "TrainingEvent",
    "TrainingHistory",
    "TrainingRecord",
    "actor_for_key",
    "divide_and_conquer",
    "exit_normally",
    "map_batches_with_actors",
    "map_groups_with_actors",
    "run_bandit",
    "train",
    "train_policy",
    "tree_reduce",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
