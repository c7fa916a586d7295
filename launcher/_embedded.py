"""The embedded default: a real ``local-cluster`` Spark sized to this machine.

``local-cluster[N, C, M]`` runs a Spark master, N workers and N executor JVMs on
this host, the same code paths as a standalone cluster. One executor per core
hosts one Ray worker node, so the result is a real multi-node Ray cluster on
one machine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import psutil

from launcher._env import temporary_environment
from launcher._planner import ClusterPlan, ClusterSpec, plan_cluster

LOOPBACK = "127.0.0.1"
EXECUTOR_MEMORY_MB = 1024
# Per executor host budget (JVM heap + Ray heap + object store), and the share
# of this machine's available memory the whole embedded cluster may take.
MAX_BUDGET_PER_WORKER_GB = 4.0
MIN_BUDGET_PER_WORKER_GB = 2.0
MACHINE_SHARE = 0.5


@dataclass(frozen=True)
class EmbeddedLayout:
    """How the embedded cluster is laid out on this machine."""

    ray_workers: int
    spark_only_executors: int
    budget_per_worker_gb: float

    @property
    def executors(self) -> int:
        return self.ray_workers + self.spark_only_executors

    @property
    def master(self) -> str:
        return f"local-cluster[{self.executors},1,{EXECUTOR_MEMORY_MB}]"


def layout_for_machine(ray_workers: int | None, reserve_for_spark: int) -> EmbeddedLayout:
    """One Ray worker per core (or ``ray_workers``), memory that fits this machine."""
    cores = psutil.cpu_count(logical=True) or 1
    ray_workers = ray_workers or cores
    executors = ray_workers + reserve_for_spark
    available_gb = psutil.virtual_memory().available / 1024**3
    budget = min(MAX_BUDGET_PER_WORKER_GB, available_gb * MACHINE_SHARE / executors)
    if budget < MIN_BUDGET_PER_WORKER_GB:
        msg = (
            f"this machine has {available_gb:.1f} GiB available; {executors} embedded "
            f"executors need {MIN_BUDGET_PER_WORKER_GB:g} GiB each. Ask for fewer "
            "'embedded_workers' or free some memory"
        )
        raise ValueError(msg)
    return EmbeddedLayout(ray_workers, reserve_for_spark, round(budget, 2))


def plan_for_layout(layout: EmbeddedLayout) -> ClusterPlan:
    """The plan for an embedded layout: isolated, or hybrid when executors are kept for Spark."""
    spec = ClusterSpec(
        workers=layout.executors,
        cores_per_worker=1,
        memory_per_worker_gb=layout.budget_per_worker_gb,
        executor_memory_gb=EXECUTOR_MEMORY_MB / 1024,
        driver_cores=psutil.cpu_count(logical=True) or 1,
        driver_memory_gb=round(psutil.virtual_memory().total / 1024**3, 1),
        master=layout.master,
    )
    if layout.spark_only_executors:
        return plan_cluster(
            spec, mode="hybrid", reserve_workers_for_spark=layout.spark_only_executors
        )
    return plan_cluster(spec, mode="isolated")


# Spark logs WARN lines a user cannot act on (native Hadoop, local dirs) and an
# ERROR on every clean local-cluster stop; errors that matter still show.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.transport.name = org.apache.spark.network.server.TransportRequestHandler
logger.transport.level = fatal
logger.inbox.name = org.apache.spark.rpc.netty.Inbox
logger.inbox.level = fatal
"""


def start_spark(layout: EmbeddedLayout, temp_root: str, node_env: dict[str, str]) -> Any:
    """Start the embedded SparkSession, every socket on 127.0.0.1."""
    from pyspark.sql import SparkSession

    log_config = os.path.join(temp_root, "log4j2.properties")
    with open(log_config, "w") as handle:
        handle.write(_LOG4J2)
    java_options = f"-Dlog4j2.configurationFile=file:{log_config}"
    work_dir = os.path.join(temp_root, "spark-work")
    local_dir = os.path.join(temp_root, "spark-local")
    os.makedirs(work_dir, exist_ok=True)
    os.makedirs(local_dir, exist_ok=True)
    jvm_env = {
        # Executors and their Python workers inherit this environment.
        "SPARK_LOCAL_IP": LOOPBACK,
        # Without it, local-cluster workers write into the pyspark package folder.
        "SPARK_WORKER_DIR": work_dir,
        # Executors must run this interpreter (with ray installed), not `python3`.
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        **node_env,
    }
    builder = (
        SparkSession.builder.master(layout.master)
        .appName("ray-actor-patterns embedded cluster")
        .config("spark.driver.host", LOOPBACK)
        .config("spark.driver.bindAddress", LOOPBACK)
        .config("spark.ui.enabled", "false")
        .config("spark.local.dir", local_dir)
        .config("spark.pyspark.python", sys.executable)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.executor.extraJavaOptions", java_options)
    )
    # Set for the JVM launch only: the JVM copies its environment when it starts.
    with temporary_environment(jvm_env):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
