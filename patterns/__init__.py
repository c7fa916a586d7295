"""Stateful Ray actor patterns: plain state classes behind typed facades.

Each pattern family is a module, and its public names are re-exported here, so
``from patterns import Counter, ShardedCounter, DirectoryStore`` works.

A name's module is imported when the name is first used, not when ``patterns`` is:
``from patterns import Counter`` loads the counters alone, and a Ray worker that runs a
counter's actor never imports scikit-learn or the Spark bridge. The launcher shares the
argument checks (``patterns._checks``) without loading any family.

Nothing here imports ``launcher`` or ``pyspark``: the patterns run on any Ray cluster.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from patterns.checkpointing import (
        Checkpoint,
        CheckpointStore,
        DirectoryStore,
        RayKVStore,
        StoreNotSharedError,
    )
    from patterns.counters import (
        Counter,
        ShardedCounter,
    )
    from patterns.errors import (
        ActorLostError,
        CallTimeoutError,
        FacadeClosedError,
        PatternError,
        RemoteCallError,
    )
    from patterns.parameter_servers import (
        GradientModel,
        GradientWorker,
        ParameterServer,
        ParameterServerClassifier,
        SoftmaxRegression,
        TrainingEvent,
        TrainingHistory,
        TrainingRecord,
        train,
    )
    from patterns.spark_bridge import (
        BlockOwner,
        BridgeActorLostError,
        BridgeBatchError,
        BridgeError,
        BridgePool,
        BridgeSchemaError,
        BridgeStats,
        actor_for_key,
        from_ray_dataset,
        map_batches_with_actors,
        map_groups_with_actors,
        to_ray_dataset,
    )
    from patterns.trees import (
        ChildSpec,
        ChildStartError,
        ChildStateError,
        DuplicateChildError,
        Supervisor,
        SupervisorSpec,
        TreeError,
        TreeFailedError,
        UnknownChildError,
        divide_and_conquer,
        exit_normally,
        tree_reduce,
    )

# Where each public name lives (tests/test_patterns_api.py checks this against each
# family's __all__).
_MODULES: dict[str, tuple[str, ...]] = {
    "patterns.agents": (
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
    ),
    "patterns.checkpointing": (
        "Checkpoint",
        "CheckpointStore",
        "DirectoryStore",
        "RayKVStore",
        "StoreNotSharedError",
    ),
    "patterns.counters": ("Counter", "ShardedCounter"),
    "patterns.errors": (
        "ActorLostError",
        "CallTimeoutError",
        "FacadeClosedError",
        "PatternError",
        "RemoteCallError",
    ),
    "patterns.parameter_servers": (
        "GradientModel",
        "GradientWorker",
        "ParameterServer",
        "ParameterServerClassifier",
        "SoftmaxRegression",
        "TrainingEvent",
        "TrainingHistory",
        "TrainingRecord",
        "train",
    ),
    "patterns.spark_bridge": (
        "BlockOwner",
        "BridgeActorLostError",
        "BridgeBatchError",
        "BridgeError",
        "BridgePool",
        "BridgeSchemaError",
        "BridgeStats",
        "actor_for_key",
        "from_ray_dataset",
        "map_batches_with_actors",
        "map_groups_with_actors",
        "to_ray_dataset",
    ),
    "patterns.trees": (
        "ChildSpec",
        "ChildStartError",
        "ChildStateError",
        "DuplicateChildError",
        "Supervisor",
        "SupervisorSpec",
        "TreeError",
        "TreeFailedError",
        "UnknownChildError",
        "divide_and_conquer",
        "exit_normally",
        "tree_reduce",
    ),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "ActorLostError",
    "Agent",
    "AgentPopulation",
    "AgentReplicas",
    "BanditHistory",
    "BlockOwner",
    "BridgeActorLostError",
    "BridgeBatchError",
    "BridgeError",
    "BridgePool",
    "BridgeSchemaError",
    "BridgeStats",
    "CallTimeoutError",
    "Checkpoint",
    "CheckpointStore",
    "ChildSpec",
    "ChildStartError",
    "ChildStateError",
    "ContextualBanditEnv",
    "Counter",
    "DirectoryStore",
    "DuplicateChildError",
    "FacadeClosedError",
    "GradientModel",
    "GradientWorker",
    "LearningAgent",
    "LinUCBAgent",
    "ParameterServer",
    "ParameterServerClassifier",
    "PatternError",
    "PolicyHistory",
    "RandomAgent",
    "RayKVStore",
    "RemoteCallError",
    "RolloutWorker",
    "ShardedCounter",
    "SoftmaxRegression",
    "StoreNotSharedError",
    "Supervisor",
    "SupervisorSpec",
    "ThompsonSamplingAgent",
    "TrainingEvent",
    "TrainingHistory",
    "TrainingRecord",
    "TreeError",
    "TreeFailedError",
    "UnknownChildError",
    "actor_for_key",
    "divide_and_conquer",
    "exit_normally",
    "from_ray_dataset",
    "map_batches_with_actors",
    "map_groups_with_actors",
    "run_bandit",
    "to_ray_dataset",
    "train",
    "train_policy",
    "tree_reduce",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
