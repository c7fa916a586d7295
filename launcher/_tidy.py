"""Remove a launch's temporary folder from the Spark executors' hosts after shutdown.

Ray on Spark starts each worker node with ``--temp-dir=<temp root>/ray-<port>-<id>``,
where the temp root is a folder the launcher made on the driver. On another host, the
node's starter creates that path, and when the last node of the cluster on the host
exits it removes ``ray-<port>-<id>/`` but leaves the ``ray-<port>-<id>.lock`` file
it coordinated with and the temp root around it. The driver removes its own copy;
this removes the others with one short Spark job, a task per executor.

A node still holding its lock (shared while it runs) is waited for, up to a bound,
and then left alone: nothing that may still be in use is removed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["tidy_executor_hosts"]

# A node's starter copies logs and removes its folder within seconds of the job's end.
LOCK_WAIT_S = 15.0
JOB_TIMEOUT_S = 60.0


def _make_tidy_task(temp_root: str, lock_wait_s: float) -> Callable[[Any], Iterator[Any]]:
    """The task each executor runs: a nested function, so Spark ships it by value (an
    executor may not have this package; it needs only the standard library)."""

    def tidy(_: Any) -> Iterator[tuple[str, list[str]]]:
        import fcntl
        import glob
        import os
        import shutil
        import socket
        import time

        deadline = time.monotonic() + lock_wait_s
        held = []
        fds = []
        try:
            for lock_path in sorted(glob.glob(os.path.join(temp_root, "ray-*.lock"))):
                try:
                    fd = os.open(lock_path, os.O_RDWR)
                except FileNotFoundError:  # another task on this host got there first
                    continue
                fds.append(fd)
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:  # a node still runs (or is still exiting)
                        if time.monotonic() > deadline:
                            held.append(lock_path)
                            break
                        time.sleep(0.2)
            if not held:
                # Every node of this launch on the host has exited: nothing in use.
                shutil.rmtree(temp_root, ignore_errors=True)
        finally:
            for fd in fds:
                os.close(fd)
        yield socket.gethostname(), held

    return tidy


def tidy_executor_hosts(spark: Any, temp_root: str, n_executors: int) -> dict[str, list[str]]:
    """Remove ``temp_root`` on the executors' hosts; return ``{host: locks still held}``.

    A barrier stage of ``n_executors`` tasks: they start together, one per executor
    while every executor is free (Spark offers each executor one task per round). The
    job is cancelled after ``JOB_TIMEOUT_S`` (a Spark cluster busy with other work).
    """
    sc = spark.sparkContext
    group = f"rap-tidy-{threading.get_ident()}"
    result: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sc.setJobGroup(group, "remove the Ray-on-Spark launch's temp folder", True)
            rdd = sc.parallelize(range(n_executors), n_executors).barrier()
            for host, held in rdd.mapPartitions(_make_tidy_task(temp_root, LOCK_WAIT_S)).collect():
                result.setdefault(host, []).extend(held)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)

    worker = threading.Thread(target=run, name="rap-tidy", daemon=True)
    worker.start()
    worker.join(JOB_TIMEOUT_S)
    if worker.is_alive():
        sc.cancelJobGroup(group)
        worker.join(10)
        raise TimeoutError(f"the clean-up job did not finish within {JOB_TIMEOUT_S:g}s")
    if errors:
        raise errors[0]
    return result
