"""The tour ``make demo`` runs: an embedded Ray-on-Spark cluster and the patterns on it."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable

import ray

from launcher import _processes, _tour_agents, _tour_parameter_servers, _tour_trees
from launcher._cluster import RayOnSpark, format_status
from launcher._tour_spark_bridge import step as spark_bridge


def _title(step: int, text: str) -> None:
    print(f"\n== {step}. {text} " + "=" * max(0, 66 - len(text)), flush=True)


@ray.remote
def _double_slowly(x: int) -> tuple[int, str]:
    time.sleep(0.5)
    return 2 * x, ray.get_runtime_context().get_node_id()[:8]


@ray.remote
def _count_into(counter: object, times: int) -> int:
    for _ in range(times):
        counter.increment()  # type: ignore[attr-defined]
    return times


def _tasks_vs_actors(quick: bool) -> None:
    from patterns import Counter

    results = ray.get([_double_slowly.remote(i) for i in range(8)], timeout=120)
    nodes = sorted({node for _, node in results})
    print(f"8 tasks doubled 0..7 -> {[value for value, _ in results]}")
    print(f"they ran on worker nodes {nodes}: tasks are stateless and go wherever CPUs are free")

    counter = Counter()
    writers, per_writer = (10, 50) if quick else (20, 100)
    done = sum(ray.get([_count_into.remote(counter, per_writer) for _ in range(writers)]))
    print(
        f"{writers} tasks x {per_writer} increments into one Counter actor -> "
        f"{counter.value()} (expected {done}): one actor serialises the updates"
    )
    assert counter.value() == done
    counter.kill()


def _sharding(quick: bool) -> None:
    from patterns import Counter, ShardedCounter

    n = 2_000 if quick else 20_000
    naive = Counter()
    t0 = time.perf_counter()
    for _ in range(n // 20):
        naive.increment()
    naive_rate = (n // 20) / (time.perf_counter() - t0)
    naive.kill()

    t0 = time.perf_counter()
    with ShardedCounter(shards=2, batch_size=1_000) as batched:
        for _ in range(n):
            batched.increment()
        total = batched.value()
    batched_rate = n / (time.perf_counter() - t0)
    assert total == n
    print(f"one increment per call: {naive_rate:,.0f} increments/s")
    print(
        f"ShardedCounter(shards=2, batch_size=1000): {batched_rate:,.0f} increments/s "
        f"({batched_rate / naive_rate:,.0f}x), total {total:,}"
    )


def _crash(quick: bool) -> None:
    from patterns import Counter, DirectoryStore

    with tempfile.TemporaryDirectory(prefix="demo-store-") as path:
        counter = Counter(store=DirectoryStore(path))
        print("Ray reports each kill as a worker that 'died unexpectedly': that is our SIGKILL")
        acknowledged = 0
        for round_ in range(2):
            for _ in range(50 if quick else 200):
                counter.increment()
                acknowledged += 1
            pid = counter.pid()
            os.kill(pid, signal.SIGKILL)
            print(f"round {round_ + 1}: {acknowledged} increments acknowledged, SIGKILL pid {pid}")
        value = counter.value()  # Ray restarts the actor; it restores from the store
        print(f"after two crashes the counter reads {value} (acknowledged {acknowledged})")
        assert value == acknowledged
        counter.kill()


def _spark_next_to_ray(cluster: RayOnSpark) -> None:
    df = cluster.spark.range(1_000_000)
    total = df.selectExpr("sum(id) AS s").collect()[0]["s"]
    print(f"Spark summed 0..999,999 = {total:,} on the executor kept for Spark jobs")


def steps(cluster: RayOnSpark, *, quick: bool) -> list[tuple[str, Callable[[], None]]]:
    """The tour's steps in order: (title, function printing what the step shows)."""
    return [
        ("The plan: how Ray was sized for this machine", lambda: print(cluster.plan.explain())),
        ("The cluster", lambda: print(format_status())),
        ("Tasks vs actors", lambda: _tasks_vs_actors(quick)),
        ("Sharding and batching", lambda: _sharding(quick)),
        ("Surviving a crash (SIGKILL, restart, restore)", lambda: _crash(quick)),
        ("Spark next to Ray", lambda: _spark_next_to_ray(cluster)),
        (_tour_parameter_servers.TITLE, lambda: _tour_parameter_servers.step(cluster, quick=quick)),
        ("Online learning agents", lambda: _tour_agents.step(cluster, quick=quick)),
        ("Actor trees: a restarted leaf", lambda: _tour_trees.step(cluster, quick=quick)),
        ("Spark bridge: a forecast per (store, item)", lambda: spark_bridge(cluster, quick=quick)),
        # Pattern families add their step here (one line each; the code lives in
        # launcher/_tour_<family>.py).
    ]


def tour(cluster: RayOnSpark, *, quick: bool = False) -> int:
    """Walk through the patterns on a running cluster; return the number of steps shown."""
    tour_steps = steps(cluster, quick=quick)
    for number, (title, step) in enumerate(tour_steps, start=1):
        _title(number, title)
        step()
    return len(tour_steps)


def run_demo(*, quick: bool = False) -> int:
    """Start the embedded cluster, tour the patterns, shut down; return an exit code."""
    _title(0, "Starting an embedded Ray-on-Spark cluster (about a minute)")
    with RayOnSpark(reserve_workers_for_spark=1) as cluster:
        shown = tour(cluster, quick=quick)
        started = cluster.started_processes()
        _title(shown + 1, "Clean shutdown")
    left = _processes.wait_gone(started, timeout_s=30)
    print(
        f"stopped in {cluster.timings['shutdown_s']:.1f}s; processes this demo started "
        f"still alive: {len(left)} of {len(started)}"
    )
    return 0 if not left else 1
