"""The pattern steps of ``make demo``, on any connected Ray cluster (and a SparkSession).

The launcher's demo (``actor-patterns demo``) starts the cluster, shows its plan and
status, and then runs these steps; it imports this package only when the demo runs, so
the launcher itself depends on no pattern family. Each family keeps its step in a module
of its own here: short, printing what it shows and asserting it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from patterns._tour import agents, counters, parameter_servers, spark_bridge, trees

__all__ = ["steps"]


def steps(spark: Any, *, quick: bool) -> list[tuple[str, Callable[[], None]]]:
    """The pattern steps in order: (title, function printing what the step shows)."""
    return [
        ("Tasks vs actors", lambda: counters.tasks_vs_actors(quick)),
        ("Sharding and batching", lambda: counters.sharding(quick)),
        ("Surviving a crash (SIGKILL, restart, restore)", lambda: counters.crash(quick)),
        (parameter_servers.TITLE, lambda: parameter_servers.step(spark, quick=quick)),
        ("Online learning agents", lambda: agents.step(spark, quick=quick)),
        ("Actor trees: a restarted leaf", lambda: trees.step(spark, quick=quick)),
        (
            "Spark bridge: a forecast per (store, item)",
            lambda: spark_bridge.step(spark, quick=quick),
        ),
        # A new family adds its step here (one line; the code lives in its own module).
    ]
