"""Read what a live SparkSession offers Ray: masters, executors, memory, GPUs."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import psutil

from launcher import _internals

_MEMORY_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_UNIT_GB = {"": 1 / 1024**3, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0}
_LOCAL_CLUSTER_RE = re.compile(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")


def parse_memory_gb(text: str, *, setting: str) -> float:
    """Parse a Spark memory setting such as ``4g`` or ``1536m`` into GiB."""
    match = _MEMORY_RE.match(text)
    if not match:
        msg = f"'{setting}' must look like <int>[k|m|g|t] (Spark's format), got {text!r}"
        raise ValueError(msg)
    number, unit = match.groups()
    # Spark reads a bare number as bytes for *.memory settings given in bytes,
    # but executor/driver memory default to MiB; treat a bare number as MiB.
    return int(number) * _UNIT_GB[unit.lower() or "m"]


def check_master_url(master: str) -> str:
    """Return ``master`` if Ray-on-Spark can run there, else raise ``ValueError``."""
    if master.startswith("sc://"):
        msg = (
            f"Spark Connect ({master}) is not supported: Ray-on-Spark needs a classic "
            "SparkSession with a SparkContext on the driver"
        )
        raise ValueError(msg)
    if master.startswith("k8s://"):
        msg = (
            f"Spark on Kubernetes ({master}) is not supported by ray.util.spark; "
            "use KubeRay on Kubernetes instead"
        )
        raise ValueError(msg)
    if master == "local" or master.startswith("local["):
        msg = (
            f"Spark local mode ({master}) has no executors to host Ray worker nodes; "
            "use local-cluster[...] or let RayOnSpark start its embedded cluster"
        )
        raise ValueError(msg)
    supported = master.startswith(("spark://", "local-cluster[")) or master == "yarn"
    if not supported:
        msg = (
            f"unsupported Spark master {master!r}: Ray-on-Spark runs on standalone "
            "(spark://), YARN, local-cluster[...] and Databricks clusters"
        )
        raise ValueError(msg)
    return master


def check_supported_master(spark: Any) -> str:
    """Return the session's master URL, or raise ``ValueError`` if Ray-on-Spark cannot run there."""
    if type(spark).__module__.startswith("pyspark.sql.connect") or not hasattr(
        spark, "sparkContext"
    ):
        msg = (
            "Spark Connect sessions are not supported: Ray-on-Spark needs a classic "
            "SparkSession with a SparkContext on the driver"
        )
        raise ValueError(msg)
    return check_master_url(spark.sparkContext.master)


def executor_hosts(spark: Any) -> list[str]:
    """Hosts of the registered executors (the driver's own entry removed)."""
    hosts = [address.rsplit(":", 1)[0] for address in _internals.executor_block_managers(spark)]
    driver_host = spark.sparkContext.getConf().get("spark.driver.host", "")
    # The driver's block manager is in the list; drop exactly one entry for it.
    if driver_host in hosts:
        hosts.remove(driver_host)
    elif hosts:
        hosts.pop()
    return hosts


def _wait_for_executors(spark: Any, expected: int | None, timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    last: list[str] = []
    stable_since = time.monotonic()
    while True:
        hosts = executor_hosts(spark)
        if hosts != last:
            last, stable_since = hosts, time.monotonic()
        if expected is not None and len(hosts) >= expected:
            return hosts
        # Without an expected count, a few quiet seconds mean registration is over.
        if expected is None and hosts and time.monotonic() - stable_since > 3:
            return hosts
        if time.monotonic() > deadline:
            if hosts:
                return hosts
            msg = (
                f"no Spark executor registered within {timeout_s:g}s; check that the "
                "cluster has free workers"
            )
            raise ValueError(msg)
        time.sleep(0.5)


def _local_host_names() -> set[str]:
    names = {"localhost", "127.0.0.1", socket.gethostname()}
    try:
        names.add(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    for addresses in psutil.net_if_addrs().values():
        names.update(a.address for a in addresses if a.family == socket.AF_INET)
    return names


def spec_from_spark(cls: Any, spark: Any, *, wait_for_executors_s: float) -> Any:
    """Build a ``ClusterSpec`` from a live session (see ``ClusterSpec.from_spark``)."""
    master = check_supported_master(spark)
    conf = spark.sparkContext.getConf()

    def get(key: str, default: str | None = None) -> str | None:
        value = conf.get(key, None)
        return default if value is None else value

    executor_memory_gb = parse_memory_gb(
        get("spark.executor.memory", "1g") or "1g", setting="spark.executor.memory"
    )
    driver_memory_gb = parse_memory_gb(
        get("spark.driver.memory", "1g") or "1g", setting="spark.driver.memory"
    )
    gpus = int(float(get("spark.executor.resource.gpu.amount", "0") or 0))

    min_workers: int | None = None
    expected: int | None
    local_cluster = _LOCAL_CLUSTER_RE.match(master)
    if local_cluster:
        expected = int(local_cluster.group(1))
        executor_memory_gb = int(local_cluster.group(3)) / 1024
    elif get("spark.dynamicAllocation.enabled", "false") == "true":
        min_workers = int(get("spark.dynamicAllocation.minExecutors", "0") or 0)
        expected = int(get("spark.dynamicAllocation.maxExecutors", "0") or 0) or None
    elif get("spark.databricks.clusterUsageTags.clusterMinWorkers"):
        min_workers = int(get("spark.databricks.clusterUsageTags.clusterMinWorkers") or 0)
        expected = int(get("spark.databricks.clusterUsageTags.clusterMaxWorkers") or 0) or None
    else:
        instances = get("spark.executor.instances")
        expected = int(instances) if instances else None

    # For an autoscaling cluster, only the minimum is guaranteed to be up now.
    wait_for = min_workers if min_workers else expected
    hosts = _wait_for_executors(spark, wait_for, wait_for_executors_s)
    registered = len(hosts)
    workers = max(registered, expected or 0)

    executor_cores = get("spark.executor.cores")
    if executor_cores:
        cores = int(executor_cores)
    else:
        cores = max(1, spark.sparkContext.defaultParallelism // max(registered, 1))

    # Memory is a per-host budget shared by every executor on that host, which
    # is how Ray-on-Spark itself reasons. When executors run on this machine
    # (local-cluster, loopback standalone) we can measure it; otherwise ask one.
    local = _local_host_names()
    per_host = max(hosts.count(h) for h in set(hosts)) if hosts else 1
    if all(h in local for h in hosts):
        host_memory_gb = psutil.virtual_memory().total / 1024**3
        per_host = len(hosts) or 1
    else:
        host_memory_gb = (
            spark.sparkContext.parallelize([0], 1)
            .map(lambda _: __import__("psutil").virtual_memory().total)
            .collect()[0]
            / 1024**3
        )
    memory_per_worker_gb = round(host_memory_gb / per_host, 2)

    driver_cores = int(get("spark.driver.cores", "0") or 0) or (psutil.cpu_count() or 1)
    return cls(
        workers=workers,
        cores_per_worker=cores,
        memory_per_worker_gb=memory_per_worker_gb,
        gpus_per_worker=gpus,
        min_workers=min_workers,
        driver_cores=driver_cores,
        driver_memory_gb=driver_memory_gb,
        executor_memory_gb=round(executor_memory_gb, 3),
        master=master,
    )
