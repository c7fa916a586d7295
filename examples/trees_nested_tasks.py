"""Nested tasks: tasks that launch tasks, a task that drives actors, and the traps on the way.

Run it with ``python examples/trees_nested_tasks.py``; the tutorial page
``tutorials/patterns/actor-trees.md`` shows its sections. Every wait has a timeout, so
the deadlock shown here ends in an error instead of a hang.
"""

from __future__ import annotations

import asyncio
import os
import time

import ray

from patterns import divide_and_conquer

TIMEOUT = 120  # seconds: no wait in the examples is unbounded
LEAF = 16  # below this many numbers, adding them up is faster than a task


# --8<-- [start:naive]
@ray.remote
def recursive_sum(xs: list[int]) -> tuple[int, frozenset[int]]:
    """Sum ``xs`` with one task per half, all the way down; also report the processes used."""
    if len(xs) <= LEAF:
        return sum(xs), frozenset([os.getpid()])
    mid = len(xs) // 2
    halves = [recursive_sum.remote(xs[:mid]), recursive_sum.remote(xs[mid:])]
    # This task now waits. Ray lends its CPU to the children meanwhile (no deadlock),
    # but this process stays busy waiting: every level adds waiting processes.
    (left, left_pids), (right, right_pids) = ray.get(halves, timeout=TIMEOUT)
    return left + right, left_pids | right_pids | {os.getpid()}


# --8<-- [end:naive]


# --8<-- [start:bounded]
def halves(xs: list[int]) -> list[list[int]]:
    """Split in two; an empty list means 'small enough, solve it here'."""
    return [xs[: len(xs) // 2], xs[len(xs) // 2 :]] if len(xs) > LEAF else []


def solve(xs: list[int]) -> tuple[int, frozenset[int]]:
    return sum(xs), frozenset([os.getpid()])


def combine(parts: list[tuple[int, frozenset[int]]]) -> tuple[int, frozenset[int]]:
    return sum(total for total, _ in parts), frozenset().union(*(p for _, p in parts))


# --8<-- [end:bounded]


def recursion(depth: int) -> tuple[int, int]:
    """Processes used for 2**depth leaves: the naive recursion, then the bounded one."""
    # --8<-- [start:compare]
    xs = list(range(LEAF * 2**depth))
    total, naive_pids = ray.get(recursive_sum.remote(xs), timeout=TIMEOUT)
    assert total == sum(xs)

    bounded_total, bounded_pids = divide_and_conquer(
        xs, split=halves, solve=solve, combine=combine, max_depth=1, budget_s=TIMEOUT
    )  # tasks for the first level only: the rest runs inside them
    assert bounded_total == total
    # --8<-- [end:compare]
    return len(naive_pids), len(bounded_pids)


# --8<-- [start:coordinator]
@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
class Coordinator:
    """An async actor that fans work out to tasks and awaits them."""

    async def run(self, n: int, wait_s: float) -> int:
        squares = asyncio.gather(*[square.remote(i) for i in range(n)])
        return sum(await asyncio.wait_for(squares, wait_s))


# --8<-- [end:coordinator]


def free_cpus(settle_s: float = 30.0) -> int:
    """The CPUs free once the tasks before have given theirs back (Ray reports it late)."""
    total = int(ray.cluster_resources().get("CPU", 0))
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        if int(ray.available_resources().get("CPU", 0)) >= total:
            break
        time.sleep(0.2)
    return int(ray.available_resources().get("CPU", 0))


def deadlock() -> None:
    cpus = free_cpus()
    assert cpus >= 1, "this demonstration needs at least one free CPU"
    # --8<-- [start:deadlock]
    # One coordinator per CPU, each holding its CPU for as long as it lives. A blocking
    # ray.get would lend the CPU out while it waits; an `await` does not: the tasks
    # they wait for find no CPU left.
    greedy = [Coordinator.options(num_cpus=1).remote() for _ in range(cpus)]
    try:
        ray.get([c.run.remote(4, 2.0) for c in greedy], timeout=TIMEOUT)
        raise AssertionError("expected the coordinators to starve their own tasks")
    except TimeoutError:  # raised in the actors by asyncio.wait_for, re-raised here
        print(f"{cpus} coordinators holding {cpus} CPUs: their tasks never started")
    finally:
        for c in greedy:
            ray.kill(c)  # their pending tasks are cancelled with them

    # The fix: a coordinator only waits, so it asks for no CPU at all.
    light = [Coordinator.options(num_cpus=0).remote() for _ in range(cpus)]
    assert ray.get([c.run.remote(4, 60.0) for c in light], timeout=TIMEOUT) == [14] * cpus
    # --8<-- [end:deadlock]
    for c in light:
        ray.kill(c)


# --8<-- [start:drives_actors]
@ray.remote
class Scorer:
    def __init__(self, weight: float) -> None:
        self.weight = weight

    def score(self, batch: list[float]) -> float:
        return self.weight * sum(batch)


@ray.remote
def score_batches(batches: list[list[float]], replicas: int = 2) -> float:
    """A task that starts its own actors, spreads the batches over them, and stops them."""
    # num_cpus=0: this task holds a CPU already; helpers that asked for one could wait
    # forever on a small cluster whose other CPUs are busy the same way.
    scorers = [Scorer.options(num_cpus=0).remote(0.5) for _ in range(replicas)]
    try:
        refs = [scorers[i % replicas].score.remote(b) for i, b in enumerate(batches)]
        return sum(ray.get(refs, timeout=TIMEOUT))
    finally:
        for scorer in scorers:  # owned by this task's process: end them before returning
            ray.kill(scorer)


# --8<-- [end:drives_actors]


def main() -> None:
    naive, bounded = recursion(depth=2)
    print(f"4 leaves: the naive recursion used {naive} processes, the bounded one {bounded}")
    assert bounded <= 3  # one task per half, the first level only
    deadlock()
    batches = [[1.0, 2.0, 3.0]] * 6
    assert ray.get(score_batches.remote(batches), timeout=TIMEOUT) == 18.0


if __name__ == "__main__":
    # --8<-- [start:script-main]
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
    # --8<-- [end:script-main]
