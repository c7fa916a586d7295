"""A driver process for the teardown tests (tests/test_launcher_teardown.py).

Usage: driver.py MODE, printing one JSON line per event on stdout.

relaunch: a ``with RayOnSpark()`` block exits by exception, then a second launch
    in the same process runs a task and the script returns without calling
    shutdown(): the atexit hook must tear the second cluster down.
wait: launch, run a task, report, then sleep until the test signals us
    (SIGTERM: RayOnSpark's handler tears down; SIGKILL: nothing runs, and Ray's
    and Spark's own parent-death checks must clean up).
"""

import json
import sys
import time

import ray

from launcher import RayOnSpark, _processes


def report(**payload):
    print(json.dumps(payload), flush=True)


@ray.remote
def where():
    return ray.get_runtime_context().get_node_id()


def worker_node_ids():
    return {
        n["NodeID"]
        for n in ray.nodes()
        if n["Alive"] and not any(k.startswith("node:__internal_head__") for k in n["Resources"])
    }


def launched(cluster):
    """Report a running cluster: where a task ran and the processes it started."""
    node = ray.get(where.remote(), timeout=120)
    owned = sorted(cluster.started_processes())
    report(
        event="ready",
        task_on_worker=node in worker_node_ids(),
        processes=owned,
        temp_root=cluster._state.temp_root,
        start_s=cluster.timings["start_s"],
    )
    return owned


def relaunch():
    started = []
    try:
        with RayOnSpark(embedded_workers=1, progress=False) as first:
            started = launched(first)
            raise RuntimeError("user code failed inside the with block")
    except RuntimeError as error:
        leftovers = _processes.wait_gone(started, timeout_s=30)
        report(
            event="after-exception",
            error=str(error),
            leftovers=[(p.pid, p.name()) for p in leftovers],
            shutdown_s=first.timings["shutdown_s"],
        )
    second = RayOnSpark(embedded_workers=1, progress=False).start()
    launched(second)
    report(event="exiting")  # no shutdown(): atexit must do it


def wait():
    cluster = RayOnSpark(embedded_workers=1, progress=False).start()
    launched(cluster)
    time.sleep(600)


if __name__ == "__main__":
    {"relaunch": relaunch, "wait": wait}[sys.argv[1]]()
