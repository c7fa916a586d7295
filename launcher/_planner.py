"""Turn the Spark cluster a user has into exact ``setup_ray_cluster`` arguments.

Ray-on-Spark leaves sizing to the user, and its defaults go wrong in ways that
are hard to see: the default CPUs per Ray node is the whole host (a shared host
never has that free, so nothing schedules), memory is sized per host rather
than per executor, and giving the head node CPUs in a cluster that also runs
Spark jobs starves the Spark driver. The planner encodes the rules once, as
plain Python with no Spark or Ray imports, so every rule has a fast test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from launcher._options import MODES, Mode
from patterns._checks import check_bool, check_choice, check_int, check_number

__all__ = ["MODES", "ClusterPlan", "ClusterSpec", "Mode", "plan_cluster"]

GIB = 1024**3
# Ray's own recommendation (setup_ray_cluster warns below these).
RECOMMENDED_MIN_CPUS = 4
RECOMMENDED_MIN_HEAP_GB = 10.0
# Ray refuses object stores smaller than this (ray_constants.OBJECT_STORE_MINIMUM_MEMORY_BYTES).
OBJECT_STORE_MIN_BYTES = 75 * 1024**2
# Ray-on-Spark recommends executor memory + Ray node memory <= 80% of a host.
USABLE_MEMORY_FRACTION = 0.8
DEFAULT_OBJECT_STORE_FRACTION = 0.3


@dataclass(frozen=True)
class ClusterSpec:
    """The Spark cluster as its user knows it: workers, cores, memory, GPUs.

    A *worker* is one Spark executor host that will run one Ray worker node.
    The spec is validated when it is made, so an impossible cluster fails at
    the line that describes it.

    Args:
        workers: Number of Spark workers (the maximum, for an autoscaling cluster).
        cores_per_worker: CPU cores of each worker.
        memory_per_worker_gb: Physical memory of each worker in GB (GiB).
        gpus_per_worker: GPUs of each worker.
        min_workers: Minimum workers of an autoscaling Spark cluster; ``None``
            (or equal to ``workers``) means a fixed-size cluster.
        driver_cores: Cores of the Spark driver host (where the Ray head runs).
        driver_memory_gb: Memory of the Spark driver host in GB.
        executor_memory_gb: JVM heap of each Spark executor
            (``spark.executor.memory``); it shares the worker's memory with Ray.
        master: The Spark master URL, when known (informational).

    Raises:
        TypeError: A field has the wrong type.
        ValueError: A field is out of range (the message names the field).

    Examples:
        >>> spec = ClusterSpec(workers=8, cores_per_worker=16, memory_per_worker_gb=64)
        >>> spec.autoscaling
        False
        >>> ClusterSpec(workers=8, cores_per_worker=16, memory_per_worker_gb=64,
        ...             min_workers=2).autoscaling
        True
    """

    workers: int
    cores_per_worker: int
    memory_per_worker_gb: float
    gpus_per_worker: int = 0
    min_workers: int | None = None
    driver_cores: int = 4
    driver_memory_gb: float = 16.0
    executor_memory_gb: float = 1.0
    master: str | None = None

    def __post_init__(self) -> None:
        # Checked values are stored converted (a numpy int becomes an int): the spec
        # ends up in JSON and in setup_ray_cluster's arguments.
        def keep(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        keep("workers", check_int("workers", self.workers, minimum=1))
        keep("cores_per_worker", check_int("cores_per_worker", self.cores_per_worker, minimum=1))
        keep(
            "memory_per_worker_gb",
            check_number("memory_per_worker_gb", self.memory_per_worker_gb, positive=True),
        )
        keep("gpus_per_worker", check_int("gpus_per_worker", self.gpus_per_worker, minimum=0))
        if self.min_workers is not None:
            keep("min_workers", check_int("min_workers", self.min_workers, minimum=0))
            if self.min_workers > self.workers:
                msg = f"'min_workers' must be <= 'workers' ({self.workers}), got {self.min_workers}"
                raise ValueError(msg)
        keep("driver_cores", check_int("driver_cores", self.driver_cores, minimum=1))
        keep(
            "driver_memory_gb",
            check_number("driver_memory_gb", self.driver_memory_gb, positive=True),
        )
        keep(
            "executor_memory_gb",
            check_number("executor_memory_gb", self.executor_memory_gb, minimum=0),
        )

    @property
    def autoscaling(self) -> bool:
        """True when the Spark cluster can grow from ``min_workers`` to ``workers``."""
        return self.min_workers is not None and self.min_workers < self.workers

    @classmethod
    def from_spark(cls, spark: Any, *, wait_for_executors_s: float = 60.0) -> ClusterSpec:
        """Read the spec of a live ``SparkSession`` (standalone, YARN, Databricks).

        Args:
            spark: An active ``pyspark.sql.SparkSession`` (classic, not Spark Connect).
            wait_for_executors_s: How long to wait for executors to register.

        Returns:
            The spec of that session's cluster.

        Raises:
            ValueError: Spark Connect, Kubernetes or an unreadable cluster.
        """
        from launcher._spark_info import spec_from_spark

        spec: ClusterSpec = spec_from_spark(cls, spark, wait_for_executors_s=wait_for_executors_s)
        return spec


@dataclass(frozen=True)
class ClusterPlan:
    """A sizing decision: the exact ``setup_ray_cluster`` kwargs and why.

    Attributes:
        spec: The Spark cluster the plan was made for.
        mode: ``"isolated"``, ``"hybrid"`` or ``"gpu"``.
        setup_kwargs: Keyword arguments for ``ray.util.spark.setup_ray_cluster``,
            every resource explicit.
        warnings: Things that work but that a user should know.
        reasons: One line per decision, used by `explain`.

    Examples:
        >>> plan = plan_cluster(ClusterSpec(8, 16, 64), mode="hybrid",
        ...                     reserve_workers_for_spark=2)
        >>> plan.setup_kwargs["max_worker_nodes"], plan.setup_kwargs["num_cpus_head_node"]
        (6, 0)
    """

    spec: ClusterSpec
    mode: str
    setup_kwargs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def ray_workers(self) -> int:
        """Ray worker nodes the cluster holds once fully scaled."""
        return int(self.setup_kwargs["max_worker_nodes"])

    @property
    def min_ray_workers(self) -> int:
        """Ray worker nodes the launcher waits for before it reports ready."""
        return int(self.setup_kwargs["min_worker_nodes"])

    @property
    def autoscaling(self) -> bool:
        """True when Ray's autoscaler may grow and shrink the cluster (min < max)."""
        return self.min_ray_workers < self.ray_workers

    def with_min_worker_nodes(self, min_worker_nodes: int) -> ClusterPlan:
        """This plan, starting with ``min_worker_nodes`` and autoscaling up to its maximum.

        Raises:
            TypeError: ``min_worker_nodes`` is not an int.
            ValueError: It is negative or above the plan's maximum.

        Examples:
            >>> plan = plan_cluster(ClusterSpec(4, 8, 32)).with_min_worker_nodes(1)
            >>> plan.min_ray_workers, plan.ray_workers, plan.autoscaling
            (1, 4, True)
        """
        wanted = check_int("min_worker_nodes", min_worker_nodes, minimum=0)
        if wanted > self.ray_workers:
            msg = (
                f"'min_worker_nodes' ({wanted}) must be <= the plan's maximum of "
                f"{self.ray_workers} Ray worker nodes"
            )
            raise ValueError(msg)
        reasons = [
            r
            for r in self.reasons
            if not r.startswith(("autoscaling", "min_worker", "fixed-size Spark"))
        ]
        reasons.append(autoscaling_reason(wanted, self.ray_workers, self.spec.cores_per_worker))
        kwargs = {**self.setup_kwargs, "min_worker_nodes": wanted}
        return ClusterPlan(self.spec, self.mode, kwargs, list(self.warnings), reasons)

    def explain(self) -> str:
        """Describe the plan for a human: the cluster, each decision, warnings, kwargs."""
        spec, kw = self.spec, self.setup_kwargs
        size = (
            f"{spec.min_workers}-{spec.workers} workers (autoscaling)"
            if spec.autoscaling
            else f"{spec.workers} workers (fixed size)"
        )
        gpus = f", {spec.gpus_per_worker} GPUs" if spec.gpus_per_worker else ""
        lines = [
            f"Spark cluster: {size}, each {spec.cores_per_worker} cores, "
            f"{spec.memory_per_worker_gb:g} GiB{gpus}; "
            f"executor heap {spec.executor_memory_gb:g} GiB",
            f"Mode: {self.mode}",
            f"Ray: {kw['min_worker_nodes']}-{kw['max_worker_nodes']} worker nodes"
            f"{' (autoscaling)' if self.autoscaling else ''}, each "
            f"{kw['num_cpus_worker_node']} CPUs, {kw['num_gpus_worker_node']} GPUs, "
            f"heap {kw['memory_worker_node'] / GIB:.2f} GiB, "
            f"object store {kw['object_store_memory_worker_node'] / GIB:.2f} GiB; "
            f"head {kw['num_cpus_head_node']} CPUs, {kw['num_gpus_head_node']} GPUs",
            "",
            "Why:",
            *(f"  - {reason}" for reason in self.reasons),
        ]
        if self.warnings:
            lines += ["", "Warnings:", *(f"  ! {warning}" for warning in self.warnings)]
        lines += ["", "setup_ray_cluster(", *(f"    {k}={v!r}," for k, v in kw.items()), ")"]
        return "\n".join(lines)


def plan_cluster(
    spec: ClusterSpec,
    *,
    mode: Mode = "isolated",
    reserve_workers_for_spark: int = 0,
    spark_cores_per_worker: int = 0,
    gpus_per_ray_worker: int | None = None,
    head_cpus: int = 0,
    head_gpus: int = 0,
    memory_worker_node_gb: float | None = None,
    object_store_memory_worker_node_gb: float | None = None,
    dashboard: bool = False,
    min_worker_nodes: int | None = None,
) -> ClusterPlan:
    """Plan a Ray-on-Spark cluster for ``spec``.

    Args:
        spec: The Spark cluster.
        mode: ``"isolated"`` (Ray takes every worker whole), ``"hybrid"`` (Spark
            jobs run next to Ray; the head gets no CPUs or GPUs) or ``"gpu"``
            (Ray takes every worker whole, with its GPUs).
        reserve_workers_for_spark: Hybrid only: whole workers left to Spark
            (the recommended way to share).
        spark_cores_per_worker: Hybrid only: cores of every worker left to Spark.
        gpus_per_ray_worker: GPUs per Ray worker node; defaults to all of the
            worker's GPUs in ``"gpu"`` and ``"isolated"`` mode, 0 in ``"hybrid"``.
        head_cpus: CPUs for the Ray head on the driver (isolated/gpu only).
        head_gpus: GPUs for the Ray head on the driver (isolated/gpu only).
        memory_worker_node_gb: Heap per Ray worker node; derived when ``None``.
        object_store_memory_worker_node_gb: Object store per Ray worker node;
            derived when ``None``.
        dashboard: Start Ray's dashboard (it binds every interface, so off by default).
        min_worker_nodes: Ray worker nodes to start with and keep at least; Ray's
            autoscaler on Spark grows the cluster to the planned maximum under demand
            and shrinks it back when nodes are idle. ``None``: the spec's
            ``min_workers`` on an autoscaling Spark cluster, else the maximum (a
            fixed-size Ray cluster).

    Returns:
        The plan: ``setup_kwargs``, ``warnings`` and ``explain()``.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: The plan is impossible; the message names the field.

    Examples:
        >>> plan = plan_cluster(ClusterSpec(workers=4, cores_per_worker=8,
        ...                                 memory_per_worker_gb=32))
        >>> plan.setup_kwargs["max_worker_nodes"], plan.setup_kwargs["num_cpus_worker_node"]
        (4, 8)
    """
    if not isinstance(spec, ClusterSpec):
        msg = f"'spec' must be a ClusterSpec, got {spec!r} ({type(spec).__name__})"
        raise TypeError(msg)
    check_choice("mode", mode, MODES)
    reserve_workers_for_spark = check_int(
        "reserve_workers_for_spark", reserve_workers_for_spark, minimum=0
    )
    spark_cores_per_worker = check_int("spark_cores_per_worker", spark_cores_per_worker, minimum=0)
    head_cpus = check_int("head_cpus", head_cpus, minimum=0)
    head_gpus = check_int("head_gpus", head_gpus, minimum=0)
    if gpus_per_ray_worker is not None:
        gpus_per_ray_worker = check_int("gpus_per_ray_worker", gpus_per_ray_worker, minimum=0)
    check_bool("dashboard", dashboard)
    if min_worker_nodes is not None:
        min_worker_nodes = check_int("min_worker_nodes", min_worker_nodes, minimum=0)

    reasons: list[str] = []
    warnings: list[str] = []

    ray_workers, min_ray_workers = _plan_worker_counts(
        spec, mode, reserve_workers_for_spark, reasons, min_worker_nodes
    )
    cpus = _plan_cpus(spec, mode, spark_cores_per_worker, reasons)
    gpus = _plan_gpus(spec, mode, gpus_per_ray_worker, reasons, warnings)
    head_cpus, head_gpus = _plan_head(spec, mode, head_cpus, head_gpus, reasons)
    heap_bytes, store_bytes = _plan_memory(
        spec,
        ray_share=cpus / spec.cores_per_worker,
        heap_gb=memory_worker_node_gb,
        store_gb=object_store_memory_worker_node_gb,
        reasons=reasons,
    )

    if cpus < RECOMMENDED_MIN_CPUS:
        warnings.append(
            f"each Ray worker node gets {cpus} CPU(s); Ray recommends at least "
            f"{RECOMMENDED_MIN_CPUS}. Fine for small or teaching clusters, tight for real work."
        )
    if heap_bytes < RECOMMENDED_MIN_HEAP_GB * GIB:
        warnings.append(
            f"each Ray worker node gets {heap_bytes / GIB:.2f} GiB of heap; Ray recommends at "
            f"least {RECOMMENDED_MIN_HEAP_GB:g} GiB. "
            "Use larger workers or fewer Ray nodes per host."
        )

    setup_kwargs: dict[str, Any] = {
        "max_worker_nodes": ray_workers,
        "min_worker_nodes": min_ray_workers,
        "num_cpus_worker_node": cpus,
        "num_gpus_worker_node": gpus,
        "num_cpus_head_node": head_cpus,
        "num_gpus_head_node": head_gpus,
        "memory_worker_node": heap_bytes,
        "object_store_memory_worker_node": store_bytes,
        "head_node_options": {"include_dashboard": dashboard},
    }
    reasons.append(
        "dashboard on: it binds every network interface, keep the host firewalled"
        if dashboard
        else "dashboard off: Ray binds it to every network interface; ask for it explicitly"
    )
    return ClusterPlan(spec, mode, setup_kwargs, warnings, reasons)


def _plan_worker_counts(
    spec: ClusterSpec, mode: str, reserve: int, reasons: list[str], asked_min: int | None = None
) -> tuple[int, int]:
    if reserve and mode != "hybrid":
        msg = (
            f"'reserve_workers_for_spark' only applies to mode='hybrid' (mode is {mode!r}): "
            "isolated and gpu modes give every worker to Ray"
        )
        raise ValueError(msg)
    if reserve >= spec.workers:
        msg = (
            f"'reserve_workers_for_spark' must be less than 'workers' ({spec.workers}) so Ray "
            f"keeps at least one worker, got {reserve}"
        )
        raise ValueError(msg)
    ray_max = spec.workers - reserve
    if reserve:
        reasons.append(
            f"{reserve} of {spec.workers} workers reserved for Spark at cluster level "
            f"-> {ray_max} Ray worker nodes"
        )
    if asked_min is not None:
        if asked_min > ray_max:
            msg = (
                f"'min_worker_nodes' ({asked_min}) must be <= the plan's maximum of "
                f"{ray_max} Ray worker nodes"
                + (f" ({spec.workers} workers - {reserve} reserved for Spark)" if reserve else "")
            )
            raise ValueError(msg)
        reasons.append(autoscaling_reason(asked_min, ray_max, spec.cores_per_worker))
        return ray_max, asked_min
    if spec.autoscaling:
        assert spec.min_workers is not None
        ray_min = min(spec.min_workers, ray_max)
        reasons.append(
            f"autoscaling Spark ({spec.min_workers}-{spec.workers} workers): Ray scales "
            f"between {ray_min} and {ray_max} worker nodes, following Spark"
        )
    else:
        ray_min = ray_max
        reasons.append(
            f"fixed-size Spark: min and max Ray worker nodes are both {ray_max}, "
            "so the cluster comes up whole and stays that size"
        )
    return ray_max, ray_min


def autoscaling_reason(ray_min: int, ray_max: int, cores_per_worker: int) -> str:
    """The `explain` line for a Ray cluster scaling between ``ray_min`` and ``ray_max`` nodes.

    Examples:
        >>> autoscaling_reason(1, 2, 1)[:52]
        'autoscaling: Ray starts with 1 worker node and grows'
    """
    if ray_min == ray_max:
        return (
            f"min_worker_nodes = max = {ray_max}: no autoscaling, the cluster comes up whole "
            "and stays that size"
        )
    return (
        f"autoscaling: Ray starts with {ray_min} worker node{'s' if ray_min != 1 else ''} "
        f"and grows to {ray_max} when tasks or actors wait for resources, shrinking back "
        f"when nodes idle; Spark keeps {ray_max - ray_min} "
        f"executor slot{'s' if ray_max - ray_min != 1 else ''} (up to "
        f"{(ray_max - ray_min) * cores_per_worker} cores) for its own jobs while Ray is "
        f"small, and gives them up to Ray as it grows (a node takes a whole Spark task slot "
        "while it lives)"
    )


def _plan_cpus(spec: ClusterSpec, mode: str, spark_cores: int, reasons: list[str]) -> int:
    if spark_cores and mode != "hybrid":
        msg = (
            f"'spark_cores_per_worker' only applies to mode='hybrid' (mode is {mode!r}): "
            "isolated and gpu modes give every core to Ray"
        )
        raise ValueError(msg)
    if spark_cores >= spec.cores_per_worker:
        msg = (
            f"'spark_cores_per_worker' must leave Ray at least one of the "
            f"{spec.cores_per_worker} cores per worker, got {spark_cores}"
        )
        raise ValueError(msg)
    cpus = spec.cores_per_worker - spark_cores
    if spark_cores:
        reasons.append(
            f"{spark_cores} of {spec.cores_per_worker} cores per worker left to Spark "
            f"-> {cpus} CPUs per Ray worker node"
        )
    else:
        reasons.append(
            f"{cpus} CPUs per Ray worker node, given explicitly (Ray's default is the whole "
            "host, which never schedules on a shared host)"
        )
    return cpus


def _plan_gpus(
    spec: ClusterSpec,
    mode: str,
    gpus_asked: int | None,
    reasons: list[str],
    warnings: list[str],
) -> int:
    if gpus_asked is not None and gpus_asked > spec.gpus_per_worker:
        msg = (
            f"'gpus_per_ray_worker' asks for {gpus_asked} GPU(s) but 'gpus_per_worker' "
            f"of the spec is {spec.gpus_per_worker}"
        )
        raise ValueError(msg)
    if mode == "gpu":
        if spec.gpus_per_worker == 0:
            msg = "mode='gpu' needs GPUs, but 'gpus_per_worker' of the spec is 0"
            raise ValueError(msg)
        gpus = spec.gpus_per_worker if gpus_asked is None else gpus_asked
        if gpus == 0:
            msg = "mode='gpu' needs at least one GPU per Ray worker, 'gpus_per_ray_worker' is 0"
            raise ValueError(msg)
        reasons.append(f"{gpus} GPU(s) per Ray worker node, from the spec")
        warnings.append(
            "set spark.task.resource.gpu.amount to 0 so Spark tasks do not hold GPUs "
            "that the Ray worker nodes need"
        )
        return gpus
    if mode == "hybrid":
        gpus = 0 if gpus_asked is None else gpus_asked
    else:
        gpus = spec.gpus_per_worker if gpus_asked is None else gpus_asked
    if gpus:
        reasons.append(f"{gpus} GPU(s) per Ray worker node")
    return gpus


def _plan_head(
    spec: ClusterSpec, mode: str, head_cpus: int, head_gpus: int, reasons: list[str]
) -> tuple[int, int]:
    if mode == "hybrid":
        if head_cpus or head_gpus:
            msg = (
                "'head_cpus'/'head_gpus' must be 0 in mode='hybrid': the Ray head shares the "
                f"Spark driver's host, which must not be starved; got head_cpus={head_cpus}, "
                f"head_gpus={head_gpus}"
            )
            raise ValueError(msg)
        reasons.append(
            "head node: 0 CPUs, 0 GPUs: it runs beside the Spark driver, which Spark jobs "
            "still need"
        )
        return 0, 0
    if head_cpus > spec.driver_cores:
        msg = f"'head_cpus' ({head_cpus}) exceeds 'driver_cores' of the spec ({spec.driver_cores})"
        raise ValueError(msg)
    if head_cpus or head_gpus:
        reasons.append(f"head node: {head_cpus} CPUs, {head_gpus} GPUs, as asked")
    else:
        reasons.append("head node: no CPUs or GPUs unless asked; it coordinates, workers compute")
    return head_cpus, head_gpus


def _plan_memory(
    spec: ClusterSpec,
    *,
    ray_share: float,
    heap_gb: float | None,
    store_gb: float | None,
    reasons: list[str],
) -> tuple[int, int]:
    if heap_gb is not None:
        heap_gb = check_number("memory_worker_node_gb", heap_gb, positive=True)
    if store_gb is not None:
        store_gb = check_number("object_store_memory_worker_node_gb", store_gb, positive=True)

    usable_gb = spec.memory_per_worker_gb * USABLE_MEMORY_FRACTION - spec.executor_memory_gb
    if usable_gb <= 0:
        msg = (
            f"'memory_per_worker_gb' ({spec.memory_per_worker_gb:g}) leaves no room for Ray: "
            f"{USABLE_MEMORY_FRACTION:.0%} of it minus the executor heap "
            f"({spec.executor_memory_gb:g} GiB) is {usable_gb:.2f} GiB"
        )
        raise ValueError(msg)
    ray_gb = usable_gb * ray_share
    if heap_gb is None and store_gb is None:
        store_gb = ray_gb * DEFAULT_OBJECT_STORE_FRACTION
        heap_gb = ray_gb - store_gb
    elif heap_gb is None:
        assert store_gb is not None
        heap_gb = ray_gb - store_gb
    elif store_gb is None:
        store_gb = ray_gb - heap_gb
    assert heap_gb is not None and store_gb is not None
    if heap_gb <= 0 or store_gb <= 0 or heap_gb + store_gb > ray_gb + 1e-9:
        msg = (
            f"Ray memory does not fit: 'memory_worker_node_gb' ({heap_gb:.2f}) + "
            f"'object_store_memory_worker_node_gb' ({store_gb:.2f}) must be positive and at "
            f"most {ray_gb:.2f} GiB (the Ray share of {USABLE_MEMORY_FRACTION:.0%} of "
            f"'memory_per_worker_gb' after the executor heap)"
        )
        raise ValueError(msg)
    heap_bytes = int(heap_gb * GIB)
    store_bytes = int(store_gb * GIB)
    if store_bytes < OBJECT_STORE_MIN_BYTES:
        msg = (
            f"'object_store_memory_worker_node_gb' is {store_gb * 1024:.0f} MiB; Ray needs at "
            f"least {OBJECT_STORE_MIN_BYTES // 1024**2} MiB"
        )
        raise ValueError(msg)
    reasons.append(
        f"memory per Ray worker node: heap {heap_gb:.2f} GiB + object store {store_gb:.2f} GiB, "
        f"within {USABLE_MEMORY_FRACTION:.0%} of the worker's {spec.memory_per_worker_gb:g} GiB "
        f"after the {spec.executor_memory_gb:g} GiB executor heap (explicit: Ray would size it "
        "per host, not per executor)"
    )
    return heap_bytes, store_bytes
