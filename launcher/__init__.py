"""Ray-on-Spark launcher: plan, start, wait for and tear down Ray clusters on Spark.

It wraps `ray.util.spark` (it never re-implements it) and adds what Ray
leaves to the user: sizing rules (`plan_cluster`), an embedded default
cluster on this machine, readiness with progress, safe defaults and
guaranteed teardown (`RayOnSpark`).
"""

from launcher._cluster import LaunchError, RayOnSpark, count_alive_workers
from launcher._planner import ClusterPlan, ClusterSpec, plan_cluster

__all__ = [
    "ClusterPlan",
    "ClusterSpec",
    "LaunchError",
    "RayOnSpark",
    "count_alive_workers",
    "plan_cluster",
]
