"""Counting with Ray: tasks return results, actors keep state.

Run it with ``python examples/counters_basics.py``; the tutorial page
``tutorials/patterns/counters.md`` shows its sections.
"""

from __future__ import annotations

import ray

from patterns import Counter

TIMEOUT = 120  # seconds: no wait in the examples is unbounded


# --8<-- [start:tasks]
@ray.remote
def count_even(numbers: list[int]) -> int:
    """A task: a pure function of its input, run on some worker, then gone."""
    return sum(1 for x in numbers if x % 2 == 0)


def count_with_tasks() -> int:
    chunks = [list(range(start, start + 1_000)) for start in range(0, 10_000, 1_000)]
    partial_counts = ray.get([count_even.remote(chunk) for chunk in chunks], timeout=TIMEOUT)
    return sum(partial_counts)  # the driver adds the pieces up at the end


# --8<-- [end:tasks]


# --8<-- [start:bare_actor]
@ray.remote
class TallyActor:
    """A bare Ray actor: one process that keeps `total` between calls."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int) -> int:
        self.total += n
        return self.total


# --8<-- [end:bare_actor]


def bare_actor() -> int:
    # --8<-- [start:bare_actor_use]
    tally = TallyActor.remote()
    tally.add.remote(1)
    tally.add.remote(1)
    total = ray.get(tally.add.remote(0), timeout=TIMEOUT)  # calls run in order: 2
    # --8<-- [end:bare_actor_use]
    return total


def facade() -> None:
    # --8<-- [start:increment]
    with Counter() as counter:  # starts one actor; the end of the block stops it
        counter.increment()
        counter.increment()
        assert counter.value() == 2
        assert counter.increment(5) == 7  # increment returns the new value
    # --8<-- [end:increment]


# --8<-- [start:shared]
@ray.remote(num_cpus=0.5)
def record_hits(counter: Counter, hits: int) -> None:
    # Each task gets its own copy of the facade; all copies talk to the same actor.
    for _ in range(hits):
        counter.increment()


def count_with_an_actor() -> int:
    with Counter() as counter:
        ray.get([record_hits.remote(counter, 50) for _ in range(20)], timeout=TIMEOUT)
        return counter.value()  # readable at any moment, not only at the end


# --8<-- [end:shared]


def named() -> None:
    # --8<-- [start:named]
    get_or_create = {"get_if_exists": True}
    first = Counter(name="page-views", actor_options=get_or_create)  # creates "page-views"
    again = Counter(name="page-views", actor_options=get_or_create)  # finds it: no race
    first.increment(3)
    assert again.value() == 3
    assert first.owned and not again.owned  # only the creator stops the actor on close()
    with Counter.attach("page-views") as attached:  # by name only; releases it on close()
        assert attached.value() == 3
    first.close()  # the owner stops the actor and waits until Ray reports it dead
    # --8<-- [end:named]


def main() -> None:
    assert count_with_tasks() == 5_000
    assert bare_actor() == 2
    facade()
    total = count_with_an_actor()
    assert total == 1_000, total
    named()
    print(f"20 tasks x 50 increments -> {total}")


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
