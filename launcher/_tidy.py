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

from launcher._spark_info import executor_hosts

__all__ = ["tidy_executor_hosts"]

# A node's starter copies logs and removes its folder within seconds of the job's end.
LOCK_WAIT_S = 15.0
JOB_TIMEOUT_S = 60.0
MAX_STAGES = 20


def _make_tidy_task(temp_root: str, lock_wait_s: float) -> Callable[[Any], Iterator[Any]]:
    """The task each executor runs: a nested function, so Spark ships it by value (an
    executor may not have this package; it needs only the standard library)."""

    def tidy(_: Any) -> Iterator[tuple[str, list[str]]]:
        import fcntl
        import glob
        import os
        import shutil
        import time

        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        # The executor's address as the driver knows it (executor_hosts' form).
        host = context.getTaskInfos()[context.partitionId()].address.rsplit(":", 1)[0]
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
        yield host, held

    return tidy


def tidy_executor_hosts(spark: Any, temp_root: str, hosts: list[str]) -> dict[str, list[str]]:
    """Remove ``temp_root`` on the executors' ``hosts``; return ``{host: locks still held}``.

    Barrier stages of one task per registered executor: they start together, one per
    free executor (Spark offers each executor one task per round). An executor still
    busy with its Ray node's task when the stage starts is missed, and a host that was
    lost and came back may have no executor yet (the Spark master re-launches one once
    the host re-registers), so stages are run again until every host is clean or
    ``JOB_TIMEOUT_S`` passes (a Spark cluster busy with other work, a host still away);
    the hosts not reached are returned with ``["not reached"]``.
    """
    import time

    sc = spark.sparkContext
    group = f"rap-tidy-{threading.get_ident()}"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    wanted = set(hosts)
    clean: set[str] = set()
    held: dict[str, list[str]] = {}
    stages = 0
    while stages < MAX_STAGES:
        registered = executor_hosts(spark)
        if set(registered) - clean:  # an executor on a host not yet clean: a stage
            stages += 1
            stage = _run_stage(sc, group, temp_root, len(registered), deadline)
            for host, locks in stage.items():
                if locks:
                    held[host] = locks
                else:
                    clean.add(host)
                    held.pop(host, None)
        # Every host clean (by name; by count, should Spark name a host differently).
        if wanted <= clean or len(clean) >= len(wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    left = {host: held.get(host, ["not reached"]) for host in wanted - clean}
    return {} if len(clean) >= len(wanted) else left


def _run_stage(
    sc: Any, group: str, temp_root: str, n_tasks: int, deadline: float
) -> dict[str, list[str]]:
    import time

    result: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sc.setJobGroup(group, "remove the Ray-on-Spark launch's temp folder", True)
            rdd = sc.parallelize(range(n_tasks), n_tasks).barrier()
            task = _make_tidy_task(temp_root, LOCK_WAIT_S)
            for host, held in rdd.mapPartitions(task).collect():
                result.setdefault(host, []).extend(held)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)

    worker = threading.Thread(target=run, name="rap-tidy", daemon=True)
    worker.start()
    worker.join(max(1.0, deadline - time.monotonic()))
    if worker.is_alive():
        sc.cancelJobGroup(group)
        worker.join(10)
        raise TimeoutError(f"the clean-up job did not finish within {JOB_TIMEOUT_S:g}s")
    if errors:
        raise errors[0]
    return result
