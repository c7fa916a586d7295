"""Every non-public API the launcher relies on, in one place, each with the reason.

Public APIs do not offer these; when Ray, PySpark or Python change one, this module
is the only place to fix. Each function degrades to a safe default where it can.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from launcher import _versions


def register_exit_hook_before_thread_join(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit *before* non-daemon threads are joined.

    Why: ray.util.spark leaves a non-daemon thread blocked in a Spark ``collect()`` for
    as long as a worker node lives, and Python joins non-daemon threads before it runs
    ``atexit`` hooks, so a plain atexit hook never runs and the process hangs at exit.
    ``threading._register_atexit`` runs before that join (concurrent.futures uses it).
    """
    try:
        threading._register_atexit(hook)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # another Python, or already shutting down
        atexit.register(hook)


def active_ray_on_spark_cluster() -> Any:
    """The cluster ray.util.spark considers active in this process, or None.

    Why: Ray-on-Spark allows one cluster per driver process and has no public way to ask
    whether one is running (e.g. started by plain ``setup_ray_cluster``), which the
    launcher must know before it starts another.
    """
    from ray.util.spark import cluster_init

    return getattr(cluster_init, "_active_ray_cluster", None)


def install_ray_on_spark_sigterm_handler() -> None:
    """Install Ray-on-Spark's SIGTERM handler now, from the main thread.

    Why: ``setup_ray_cluster`` installs it lazily; installed first, it becomes the inner
    handler, so the launcher's own handler (installed after) runs around it and still
    tears down what Ray's leaves.
    """
    from ray.util.spark import cluster_init

    install = getattr(cluster_init, "_install_sigterm_signal", None)
    if install is not None:
        install()


def refresh_ray_auth_config() -> None:
    """Make this process re-read ``RAY_AUTH_*`` (Ray caches both the mode and the token).

    Why: a second launch in the same process brings a new token; without a refresh Ray
    keeps presenting the first cluster's token and fails with AuthenticationError.
    """
    if os.environ.get("RAY_AUTH_MODE") == "token":
        _versions.require_token_auth()  # an older Ray would ignore it: an open cluster
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # a Ray without these hooks: nothing cached to reset
        pass


def executor_block_managers(spark: Any) -> list[str]:
    """``host:port`` of every block manager of the session (executors and the driver).

    Why: PySpark exposes no list of executors; the JVM's ``getExecutorMemoryStatus``
    is the standard way to see which executors have registered.
    """
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
    keys = status.keys().iterator()
    found = []
    while keys.hasNext():
        found.append(str(keys.next()))
    return found


def stop_spark_gateway() -> None:
    """Stop PySpark's gateway JVM and forget it, so the next session starts a fresh one.

    Why: ``SparkSession.stop()`` keeps the gateway JVM for reuse; an embedded cluster
    started afterwards in the same process would inherit the first one's environment
    (auth token, paths), and the JVM would outlive the launch that started it.
    """
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    try:
        gateway.shutdown()
    except Exception:  # already gone
        pass
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
    SparkContext._gateway = None
    SparkContext._jvm = None


def set_autoscaler_events_shown(shown: bool) -> bool:
    """Show or hide the autoscaler's event lines on the driver; return the previous setting.

    Why: Ray reads ``RAY_SCHEDULER_EVENTS`` once, when ``ray`` is imported, into
    ``ray_constants.AUTOSCALER_EVENTS``, and checks that attribute for every line; a
    command that imported ray before deciding can only change the attribute.
    """
    from ray._private import ray_constants

    previous = bool(getattr(ray_constants, "AUTOSCALER_EVENTS", True))
    ray_constants.AUTOSCALER_EVENTS = int(shown)
    return previous


def set_worker_start_patience(seconds: float) -> None:
    """Let ``setup_ray_cluster`` wait ``seconds`` (not its fixed 120 s) for a first worker.

    Why: Ray on Spark gives up when no worker node has joined for 120 s, a module
    constant with no setting. On a busy host (several clusters, a loaded CI machine)
    the first node can take longer; the launcher's own ``ready_timeout_s`` is the
    user's answer to "how long may a start take", so it governs both waits.
    """
    from ray.util.spark import cluster_init

    if hasattr(cluster_init, "_RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT"):
        cluster_init._RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT = max(120, int(seconds))


def close_spark_job_server(cluster_handle: Any) -> None:
    """Close the listening socket of a stopped cluster's Spark job server.

    Why: Ray on Spark stops its job server's request loop at shutdown but never closes
    the server's socket, so every launch in a process would leave one listening
    descriptor behind until the garbage collector finds it.
    """
    server = getattr(cluster_handle, "spark_job_server", None)
    close = getattr(server, "server_close", None)
    if close is not None:
        close()
