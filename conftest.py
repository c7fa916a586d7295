"""Shared, session-scoped clusters: starting Ray or Spark is expensive.

Ray allows one cluster connection per driver process, so the whole pytest
process shares one Ray cluster: by default the launcher's embedded
Ray-on-Spark cluster (real Spark ``local-cluster`` + real Ray worker nodes).
``RAP_SPARK_EXECUTORS`` sets how many executors are kept for Spark jobs
(default 1). Set ``RAP_TEST_RAY=local`` for a quick inner loop on a plain local Ray
(``make test`` never sets it). Tests that need a cluster of their own (launch,
shutdown, driver crash) start it in a subprocess.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# The JIT tier and garbage collector of every JVM the suite starts (Spark drivers,
# executors, standalone masters and workers, also in subprocesses: they inherit
# the environment). The suite's JVMs run small jobs, and with the defaults the C2
# compiler and the parallel collector's threads took half of the CPU of each
# embedded launch (about 95 CPU-seconds, 45 with these flags, on the 2-core
# reference machine), on a machine the suite keeps busy. Nothing the tests assert
# depends on them. Only when benchmarks are not timed: `make bench` measures Spark
# with the JVM's defaults, as users run it.
LIGHT_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("benchmark_disable", default=False):
        os.environ.setdefault("JDK_JAVA_OPTIONS", LIGHT_JVM_OPTIONS)


def _start_local_ray() -> Iterator[dict]:
    import ray

    # Deliberate auth choice, as the launcher does: no stray ~/.ray/auth_token.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield {"kind": "local", "address": None, "launcher": None}
    finally:
        ray.shutdown()


def _start_ray_on_spark() -> Iterator[dict]:
    from launcher import RayOnSpark

    # Executors kept free for Spark jobs (examples and benchmarks run Spark UDFs
    # next to Ray): a hybrid cluster, as on a shared Spark cluster. `make bench`
    # keeps as many for Spark as Ray gets, so both engines get the same slots.
    spark_executors = int(os.environ.get("RAP_SPARK_EXECUTORS", "1"))
    import sys

    cluster = RayOnSpark(reserve_workers_for_spark=spark_executors, progress=False)
    with cluster:
        yield {"kind": "ray-on-spark", "address": cluster.address, "launcher": cluster}
    # The suite's own cost of its shared cluster, in the run's log.
    timings = ", ".join(f"{k} {v:.1f}" for k, v in cluster.timings.items())
    print(f"\nsession cluster: {timings}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[dict]:
    """A connected Ray cluster shared by every test in the session."""
    if os.environ.get("RAP_TEST_RAY") == "local":
        yield from _start_local_ray()
    else:
        yield from _start_ray_on_spark()
