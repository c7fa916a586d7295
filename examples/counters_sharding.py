"""Sharding and client-side batching for high increment rates.

Run it with ``python examples/counters_sharding.py``.
"""

from __future__ import annotations

import time

import ray

from patterns import Counter, ShardedCounter

TIMEOUT = 120


# --8<-- [start:sharded]
@ray.remote(num_cpus=0.5)
def record(counter: ShardedCounter, hits: int) -> None:
    for _ in range(hits):
        counter.increment()  # goes to one shard, round robin


def sharded() -> None:
    with ShardedCounter(n_shards=4) as counter:  # four actors, spread over the nodes
        ray.get([record.remote(counter, 50) for _ in range(20)], timeout=TIMEOUT)
        assert counter.value() == 1_000  # value() sums the shards
        print("per shard:", counter.shard_values())  # e.g. [250, 250, 250, 250]


# --8<-- [end:sharded]


# --8<-- [start:batched]
@ray.remote(num_cpus=0.5)
def record_batched(counter: ShardedCounter, hits: int) -> None:
    with counter:  # this task's copy: the block's end flushes its buffer (the shards stay)
        for _ in range(hits):
            counter.increment()  # adds to a local buffer; no call to Ray


def batched() -> None:
    with ShardedCounter(n_shards=4, batch_size=10_000, flush_interval_s=0.5) as counter:
        ray.get([record_batched.remote(counter, 25_000) for _ in range(4)], timeout=TIMEOUT)
        assert counter.value() == 100_000


# --8<-- [end:batched]


def rates(calls: int = 200) -> tuple[float, float]:
    # --8<-- [start:rates]
    with Counter() as naive, ShardedCounter(n_shards=2, batch_size=10_000) as fast:
        start = time.perf_counter()
        for _ in range(calls):
            naive.increment()  # one round trip to the actor per call
        naive_rate = calls / (time.perf_counter() - start)

        start = time.perf_counter()
        for _ in range(calls * 100):
            fast.increment()
        fast.flush()  # acknowledged only now
        batched_rate = calls * 100 / (time.perf_counter() - start)
        assert naive.value() == calls and fast.value() == calls * 100
    print(f"naive: {naive_rate:,.0f} increments/s, batched: {batched_rate:,.0f} increments/s")
    # --8<-- [end:rates]
    return naive_rate, batched_rate


def main() -> None:
    sharded()
    batched()
    rates()


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
