"""Stateful Ray actor patterns: plain state classes behind typed facades.

Each pattern family is a module, and its public names are re-exported here, so
``from patterns import Counter, ShardedCounter, DirectoryStore`` works.

Nothing here imports ``launcher`` or ``pyspark``: the patterns run on any Ray cluster.
"""

from patterns.checkpointing import Checkpoint, CheckpointStore, DirectoryStore, RayKVStore
from patterns.counters import Counter, ShardedCounter
from patterns.trees import (
    ChildSpec,
    Supervisor,
    SupervisorSpec,
    divide_and_conquer,
    exit_normally,
    tree_reduce,
)

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "ChildSpec",
    "Counter",
    "DirectoryStore",
    "RayKVStore",
    "ShardedCounter",
    "Supervisor",
    "SupervisorSpec",
    "divide_and_conquer",
    "exit_normally",
    "tree_reduce",
]
