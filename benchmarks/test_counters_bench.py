"""Counter benchmarks: facade overhead, batching speed-up, checkpoint cost.

Every figure that compares two things is a ratio of measurements taken in this run,
interleaved in blocks (A, B, A, B, ...) so that a neighbour's load slows both sides
alike; the medians of the blocks are compared. Ratios go to ``benchmark.extra_info``
(in the JSON report) and are printed. Nothing asserts on speed; every round checks
its result.

With ``--benchmark-disable`` (smoke mode) every case runs once, on tiny sizes.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from patterns import Counter, DirectoryStore, RayKVStore, ShardedCounter


def _smoke(benchmark: Any) -> bool:
    return bool(getattr(benchmark, "disabled", False))


def _per_call_us(fn: Callable[[int], int], calls: int, blocks: int) -> list[float]:
    """Run ``fn(calls)`` ``blocks`` times; microseconds per call for each block."""
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        assert fn(calls) == calls
        times.append((time.perf_counter() - start) / calls * 1e6)
    return times


def _interleaved(
    cases: dict[str, tuple[Callable[[int], int], int]], blocks: int
) -> dict[str, dict[str, float]]:
    """Microseconds per call of each ``name: (fn, calls)``, measured in alternating blocks.

    Returns the median and the minimum over the blocks for each case: the median
    describes a typical block, the minimum the cost when no neighbour got in the way.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(blocks):
        for name, (fn, calls) in cases.items():
            samples[name] += _per_call_us(fn, calls, 1)
    return {
        name: {"median": statistics.median(values), "min": min(values)}
        for name, values in samples.items()
    }


def _report(benchmark: Any, title: str, **figures: float) -> None:
    benchmark.extra_info.update({k: round(v, 3) for k, v in figures.items()})
    shown = ", ".join(f"{k}={v:,.2f}" for k, v in figures.items())
    print(f"\n[{title}] {shown}")


@pytest.fixture(scope="module")
def bare_actor(ray_cluster: dict) -> Iterator[Any]:
    import ray

    # Defined here so that it is shipped by value: workers cannot import this module.
    @ray.remote
    class BareCounter:
        """What the facade does, as a bare Ray actor: add and return the value."""

        def __init__(self) -> None:
            self.value = 0

        def increment(self, n: int) -> int:
            self.value += n
            return self.value

    actor = BareCounter.remote()
    ray.get(actor.increment.remote(0), timeout=60)
    yield actor
    ray.kill(actor)


def _bare_calls(actor: Any) -> Callable[[int], int]:
    import ray

    def run(calls: int) -> int:
        first = ray.get(actor.increment.remote(1))
        for _ in range(calls - 1):
            last = ray.get(actor.increment.remote(1))
        return (last - first + 1) if calls > 1 else 1

    return run


def _counter_calls(counter: Counter) -> Callable[[int], int]:
    def run(calls: int) -> int:
        first = counter.increment()
        for _ in range(calls - 1):
            last = counter.increment()
        return (last - first + 1) if calls > 1 else 1

    return run


# --- facade overhead ---------------------------------------------------------------------


def test_bench_bare_actor_increment(benchmark: Any, bare_actor: Any) -> None:
    calls = 5 if _smoke(benchmark) else 200
    benchmark.group = "counters: increment, per call"
    result = benchmark.pedantic(_bare_calls(bare_actor), args=(calls,), rounds=10, warmup_rounds=2)
    assert result == calls


def test_bench_counter_increment(benchmark: Any, bare_actor: Any) -> None:
    smoke = _smoke(benchmark)
    calls = 5 if smoke else 200
    counter = Counter()
    run = _counter_calls(counter)
    benchmark.group = "counters: increment, per call"
    result = benchmark.pedantic(run, args=(calls,), rounds=10, warmup_rounds=2)
    assert result == calls

    block = 5 if smoke else 40
    measured = _interleaved(
        {"bare": (_bare_calls(bare_actor), block), "facade": (run, block)},
        blocks=1 if smoke else 60,
    )
    bare, facade = measured["bare"], measured["facade"]
    _report(
        benchmark,
        "facade overhead",
        bare_us_per_call=bare["median"],
        facade_us_per_call=facade["median"],
        facade_overhead_pct=(facade["median"] / bare["median"] - 1) * 100,
        facade_overhead_pct_of_minimums=(facade["min"] / bare["min"] - 1) * 100,
    )
    counter.close()


# --- naive vs sharded + batched ----------------------------------------------------------


def _sharded_calls(counter: ShardedCounter) -> Callable[[int], int]:
    def run(calls: int) -> int:
        before = counter.value()
        for _ in range(calls):
            counter.increment()
        return counter.value() - before  # value() flushes: every increment acknowledged

    return run


def test_bench_naive_increments(benchmark: Any, ray_cluster: dict) -> None:
    calls = 5 if _smoke(benchmark) else 300
    counter = Counter()
    benchmark.group = "counters: increments/s, one client"
    result = benchmark.pedantic(_counter_calls(counter), args=(calls,), rounds=5, warmup_rounds=1)
    assert result == calls
    counter.close()


def test_bench_sharded_per_call(benchmark: Any, ray_cluster: dict) -> None:
    calls = 5 if _smoke(benchmark) else 300
    counter = ShardedCounter(n_shards=4)
    benchmark.group = "counters: increments/s, one client"
    result = benchmark.pedantic(_sharded_calls(counter), args=(calls,), rounds=5, warmup_rounds=1)
    assert result == calls
    counter.close()


def test_bench_sharded_batched(benchmark: Any, ray_cluster: dict) -> None:
    smoke = _smoke(benchmark)
    calls = 50 if smoke else 200_000
    counter = ShardedCounter(n_shards=4, batch_size=10_000)
    benchmark.group = "counters: increments/s, one client"
    result = benchmark.pedantic(_sharded_calls(counter), args=(calls,), rounds=5, warmup_rounds=1)
    assert result == calls

    naive = Counter()
    measured = _interleaved(
        {
            "naive": (_counter_calls(naive), 5 if smoke else 300),
            "batched": (_sharded_calls(counter), calls),
        },
        blocks=1 if smoke else 5,
    )
    _report(
        benchmark,
        "batching",
        naive_increments_per_s=1e6 / measured["naive"]["median"],
        batched_increments_per_s=1e6 / measured["batched"]["median"],
        batching_speedup_x=measured["naive"]["median"] / measured["batched"]["median"],
    )
    naive.close()
    counter.close()


# --- checkpoint cost ---------------------------------------------------------------------


def _make_store(kind: str, tmp_path: Path) -> DirectoryStore | RayKVStore:
    if kind == "directory":
        return DirectoryStore(tmp_path)
    return RayKVStore(namespace=f"bench-{uuid.uuid4().hex}")


CHECKPOINT_CASES = [
    ("directory", 1),
    ("directory", 10),
    ("directory", 100),
    ("ray-kv", 1),
    ("ray-kv", 10),
]


@pytest.mark.parametrize(
    ("kind", "every"), CHECKPOINT_CASES, ids=[f"{k}-every-{n}" for k, n in CHECKPOINT_CASES]
)
def test_bench_checkpoint_cost(
    benchmark: Any, ray_cluster: dict, tmp_path: Path, kind: str, every: int
) -> None:
    smoke = _smoke(benchmark)
    calls = 5 if smoke else 200
    store = _make_store(kind, tmp_path)
    counter = Counter(store=store, checkpoint_every=every)
    run = _counter_calls(counter)
    benchmark.group = "counters: checkpoint every N increments"
    result = benchmark.pedantic(run, args=(calls,), rounds=5, warmup_rounds=1)
    assert result == calls

    plain = Counter()
    measured = _interleaved(
        {"no_store": (_counter_calls(plain), calls), "store": (run, calls)},
        blocks=1 if smoke else 7,
    )
    plain_us, store_us = measured["no_store"]["median"], measured["store"]["median"]
    _report(
        benchmark,
        f"checkpoint {kind} every {every}",
        no_store_us_per_increment=plain_us,
        store_us_per_increment=store_us,
        checkpoint_cost_us_per_increment=store_us - plain_us,
        checkpoint_cost_pct=(store_us / plain_us - 1) * 100,
    )
    if every == 1:  # every acknowledged increment is in the store
        assert store.load(counter.key).state["value"] == counter.value()
    counter.close()
    plain.close()
    if isinstance(store, RayKVStore):
        store.delete(counter.key)
