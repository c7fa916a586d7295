"""A driver for tests/test_launcher_autoscaling.py: grow under demand, shrink when idle.

Usage: autoscaling.py [--write FILE.md], printing one JSON line per event on stdout;
with ``--write`` it also writes the measured seconds as a Markdown table (the docs
page includes ``benchmarks/results/autoscaling.md``, written this way).

An embedded cluster of at most 2 Ray worker nodes starts with 1
(``min_worker_nodes=1``). An actor holding that node's only CPU keeps a count;
a task that needs a CPU then makes Ray's autoscaler on Spark add the second node.
Once the task is done that node idles and the autoscaler removes it after the idle
timeout; the actor's node is busy (it holds the actor's CPU), so it stays, and so
does the actor's state. Every wait is bounded; the seconds are reported, not judged.
"""

import json
import os
import sys
import time

import ray

from launcher import RayOnSpark, count_alive_workers

IDLE_TIMEOUT_MINUTES = 0.25
WAIT_S = 300.0


_events = []


def report(**payload):
    _events.append(payload)
    print(json.dumps(payload), flush=True)


def write_markdown(path):
    by = {e["event"]: e for e in _events}
    ready, grown, shrunk = by["ready"], by["grown"], by["shrunk"]
    rows = [
        "Embedded cluster, `min_worker_nodes=1`, at most 2 worker nodes, "
        f"`autoscale_idle_timeout_minutes={IDLE_TIMEOUT_MINUTES}` "
        f"({shrunk['idle_timeout_s']:g} s), {os.cpu_count()} cores "
        "(measured by `tests/scripts/autoscaling.py --write`):",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| launch until ready with 1 worker node | {ready['ready_s']:.1f} |",
        f"| scale-up: a task waiting for a CPU until it has run on the new node "
        f"| {grown['grow_s']:.1f} |",
        f"| scale-down: task done until the idle node is gone (includes the idle timeout) "
        f"| {shrunk['shrink_s']:.1f} |",
        "",
        f"The actor's count was {shrunk['total_after']} before and after the scale-down.",
    ]
    with open(path, "w") as handle:
        handle.write("\n".join(rows) + "\n")


@ray.remote(num_cpus=1)
class Tally:
    def __init__(self):
        self.total = 0

    def add(self, n):
        self.total += n
        return self.total

    def node(self):
        return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=1)
def node_of_task():
    return ray.get_runtime_context().get_node_id()


def wait_for_workers(wanted):
    began = time.monotonic()
    while count_alive_workers() != wanted:
        if time.monotonic() - began > WAIT_S:
            return None
        time.sleep(0.25)
    return round(time.monotonic() - began, 1)


def main():
    began = time.monotonic()
    with RayOnSpark(
        embedded_workers=2,
        min_worker_nodes=1,
        autoscale_idle_timeout_minutes=IDLE_TIMEOUT_MINUTES,
        progress=False,
    ) as cluster:
        report(
            event="ready",
            ready_s=round(time.monotonic() - began, 1),
            workers=count_alive_workers(),
            min=cluster.plan.min_ray_workers,
            max=cluster.plan.ray_workers,
        )
        tally = Tally.remote()
        for _ in range(5):
            total = ray.get(tally.add.remote(1), timeout=120)
        actor_node = ray.get(tally.node.remote(), timeout=60)
        t0 = time.monotonic()
        task_node = ray.get(node_of_task.remote(), timeout=WAIT_S)
        report(
            event="grown",
            grow_s=round(time.monotonic() - t0, 1),
            workers=count_alive_workers(),
            task_node=task_node,
            actor_node=actor_node,
            total=total,
        )
        shrink_s = wait_for_workers(1)
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        report(
            event="shrunk",
            shrink_s=shrink_s,
            idle_timeout_s=IDLE_TIMEOUT_MINUTES * 60,
            workers=count_alive_workers(),
            actor_node_alive=actor_node in alive,
            task_node_alive=task_node in alive,
            total_after=ray.get(tally.add.remote(0), timeout=60),
        )
    report(event="done", shutdown_s=round(cluster.timings.get("shutdown_s", -1), 1))
    if "--write" in sys.argv:
        write_markdown(sys.argv[sys.argv.index("--write") + 1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
