"""Size Ray for a Spark cluster with the planner, one mode at a time.

Shown on the Ray on Spark page. The planner is plain Python: nothing here
starts a cluster, so ``main()`` runs anywhere (it needs no Ray connection).
"""

from __future__ import annotations

from pathlib import Path

# --8<-- [start:imports]
from launcher import ClusterSpec, RayOnSpark, plan_cluster

GIB = 1024**3  # the planner counts memory in bytes; specs are in GiB
# --8<-- [end:imports]

# The page shows this file as explain()'s output; main() checks it is current.
EXPLAIN_OUTPUT = Path(__file__).with_name("ray_on_spark_sizing_explain.txt")


def main() -> None:
    # --8<-- [start:spec]
    spec = ClusterSpec(
        workers=8,  # Spark worker hosts, one Ray worker node each
        cores_per_worker=16,
        memory_per_worker_gb=64,
        executor_memory_gb=8,  # spark.executor.memory: the JVM keeps this much
    )
    # --8<-- [end:spec]

    # --8<-- [start:isolated]
    plan = plan_cluster(spec, mode="isolated")
    kw = plan.setup_kwargs
    assert (kw["min_worker_nodes"], kw["max_worker_nodes"]) == (8, 8)  # fixed size
    assert kw["num_cpus_worker_node"] == 16  # every core, stated explicitly
    assert kw["num_cpus_head_node"] == 0  # the head coordinates; workers compute
    # Ray's share of a host: 80 % of its memory, less the executor's heap.
    ray_bytes = kw["memory_worker_node"] + kw["object_store_memory_worker_node"]
    assert abs(ray_bytes / GIB - (0.8 * 64 - 8)) < 0.01
    # --8<-- [end:isolated]

    # --8<-- [start:explain]
    report = plan.explain()
    print(report)  # the cluster, each decision and why, warnings, the kwargs
    # --8<-- [end:explain]
    assert report + "\n" == EXPLAIN_OUTPUT.read_text(encoding="utf-8"), (
        f"{EXPLAIN_OUTPUT.name} is out of date; the planner now explains:\n{report}"
    )

    # --8<-- [start:hybrid]
    plan = plan_cluster(spec, mode="hybrid", reserve_workers_for_spark=2)
    kw = plan.setup_kwargs
    assert kw["max_worker_nodes"] == 6  # two whole workers stay with Spark
    assert (kw["num_cpus_head_node"], kw["num_gpus_head_node"]) == (0, 0)
    # --8<-- [end:hybrid]

    # --8<-- [start:hybrid_cores]
    plan = plan_cluster(spec, mode="hybrid", spark_cores_per_worker=4)
    kw = plan.setup_kwargs
    assert kw["max_worker_nodes"] == 8  # Ray on every worker...
    assert kw["num_cpus_worker_node"] == 12  # ...but 4 cores each stay with Spark
    # --8<-- [end:hybrid_cores]

    # --8<-- [start:head_refused]
    try:
        plan_cluster(spec, mode="hybrid", head_cpus=4)
        raise AssertionError("a hybrid plan must not give the head CPUs")
    except ValueError as error:
        assert "head_cpus" in str(error)  # named and explained, nothing started
    # --8<-- [end:head_refused]

    # --8<-- [start:autoscaling]
    elastic = ClusterSpec(
        workers=8,
        cores_per_worker=16,
        memory_per_worker_gb=64,
        min_workers=2,  # Spark autoscales between 2 and 8 workers
    )
    kw = plan_cluster(elastic).setup_kwargs
    assert (kw["min_worker_nodes"], kw["max_worker_nodes"]) == (2, 8)  # as Spark
    # --8<-- [end:autoscaling]

    # --8<-- [start:min_worker_nodes]
    fixed = ClusterSpec(workers=4, cores_per_worker=8, memory_per_worker_gb=32)
    plan = plan_cluster(fixed, min_worker_nodes=1)  # start with 1, grow to 4
    kw = plan.setup_kwargs
    assert (kw["min_worker_nodes"], kw["max_worker_nodes"]) == (1, 4)
    assert "Spark keeps 3 executor slots" in plan.explain()

    cluster = RayOnSpark(  # nothing starts until start() or `with`
        embedded_workers=2,
        min_worker_nodes=1,
        autoscale_idle_timeout_minutes=0.5,  # remove a node idle for 30 s
    )
    try:
        RayOnSpark(plan_cluster(fixed), min_worker_nodes=5)
    except ValueError as error:  # refused before anything starts
        assert "'min_worker_nodes' (5) must be <=" in str(error)
    else:
        raise AssertionError("min_worker_nodes above the maximum was accepted")
    # --8<-- [end:min_worker_nodes]
    assert not cluster.running

    # --8<-- [start:gpu]
    gpu_spec = ClusterSpec(
        workers=4, cores_per_worker=8, memory_per_worker_gb=61, gpus_per_worker=1
    )
    plan = plan_cluster(gpu_spec, mode="gpu")
    assert plan.setup_kwargs["num_gpus_worker_node"] == 1
    assert any("spark.task.resource.gpu.amount" in w for w in plan.warnings)
    # --8<-- [end:gpu]


if __name__ == "__main__":
    main()
