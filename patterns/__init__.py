"""Stateful Ray actor patterns: plain state classes behind typed facades.

Each pattern family is a module, and its public names are re-exported here, so
``from patterns import Counter, ShardedCounter, DirectoryStore`` works.

Nothing here imports ``launcher`` or ``pyspark``: the patterns run on any Ray cluster.
"""

from patterns.checkpointing import Checkpoint, CheckpointStore, DirectoryStore, RayKVStore
from patterns.counters import Counter, ShardedCounter
from patterns.spark_bridge import (
    BridgeBatchError,
    BridgeError,
    BridgeSchemaError,
    BridgeStats,
    actor_for_key,
    map_batches_with_actors,
    map_groups_with_actors,
)

__all__ = [
    "BridgeBatchError",
    "BridgeError",
    "BridgeSchemaError",
    "BridgeStats",
    "Checkpoint",
    "CheckpointStore",
    "Counter",
    "DirectoryStore",
    "RayKVStore",
    "ShardedCounter",
    "actor_for_key",
    "map_batches_with_actors",
    "map_groups_with_actors",
]
