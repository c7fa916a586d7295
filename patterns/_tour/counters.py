"""The counters steps of ``make demo``: tasks vs one actor, sharding and batching, a crash."""

from __future__ import annotations

import os
import signal
import tempfile
import time

import ray


@ray.remote
def _double_slowly(x: int) -> tuple[int, str]:
    time.sleep(0.5)
    return 2 * x, ray.get_runtime_context().get_node_id()[:8]


@ray.remote
def _count_into(counter: object, times: int) -> int:
    for _ in range(times):
        counter.increment()  # type: ignore[attr-defined]
    return times


def tasks_vs_actors(quick: bool) -> None:
    from patterns import Counter

    results = ray.get([_double_slowly.remote(i) for i in range(8)], timeout=120)
    nodes = sorted({node for _, node in results})
    print(f"8 tasks doubled 0..7 -> {[value for value, _ in results]}")
    print(f"they ran on worker nodes {nodes}: tasks are stateless and go wherever CPUs are free")

    writers, per_writer = (10, 50) if quick else (20, 100)
    with Counter() as counter:
        calls = [_count_into.remote(counter, per_writer) for _ in range(writers)]
        done = sum(ray.get(calls, timeout=120))
        print(
            f"{writers} tasks x {per_writer} increments into one Counter actor -> "
            f"{counter.value()} (expected {done}): one actor serialises the updates"
        )
        assert counter.value() == done


def sharding(quick: bool) -> None:
    from patterns import Counter, ShardedCounter

    n = 2_000 if quick else 20_000
    with Counter() as naive:
        t0 = time.perf_counter()
        for _ in range(n // 20):
            naive.increment()
        naive_rate = (n // 20) / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ShardedCounter(n_shards=2, batch_size=1_000) as batched:
        for _ in range(n):
            batched.increment()
        total = batched.value()
    batched_rate = n / (time.perf_counter() - t0)
    assert total == n
    print(f"one increment per call: {naive_rate:,.0f} increments/s")
    print(
        f"ShardedCounter(n_shards=2, batch_size=1000): {batched_rate:,.0f} increments/s "
        f"({batched_rate / naive_rate:,.0f}x), total {total:,}"
    )


def crash(quick: bool) -> None:
    from patterns import Counter, DirectoryStore

    with (
        tempfile.TemporaryDirectory(prefix="demo-store-") as path,
        Counter(store=DirectoryStore(path)) as counter,
    ):
        print("Ray reports each kill as a worker that 'died unexpectedly': that is our SIGKILL")
        acknowledged = 0
        for round_ in range(2):
            for _ in range(50 if quick else 200):
                counter.increment()
                acknowledged += 1
            (pid,) = counter.pids()
            os.kill(pid, signal.SIGKILL)
            print(f"round {round_ + 1}: {acknowledged} increments acknowledged, SIGKILL pid {pid}")
        value = counter.value()  # Ray restarts the actor; it restores from the store
        print(f"after two crashes the counter reads {value} (acknowledged {acknowledged})")
        assert value == acknowledged
