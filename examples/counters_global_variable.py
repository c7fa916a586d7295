"""Why a global variable cannot count across Ray workers (and what does).

Run it with ``python examples/counters_global_variable.py``.
"""

from __future__ import annotations

import os

import ray

from patterns import Counter

TIMEOUT = 120

# --8<-- [start:global]
HITS = 0  # a module-level global: one copy per Python process


@ray.remote(num_cpus=0.5)
def record_hit() -> tuple[int, int]:
    global HITS
    HITS += 1  # changes the copy in *this worker process* only
    return os.getpid(), HITS


# --8<-- [end:global]


def main() -> None:
    # --8<-- [start:global_fails]
    results = ray.get([record_hit.remote() for _ in range(100)], timeout=TIMEOUT)
    workers = {pid for pid, _ in results}
    print(f"100 hits recorded by {len(workers)} worker process(es); the driver sees {HITS}")
    assert HITS == 0  # wrong: the driver's copy never moved
    # --8<-- [end:global_fails]

    # --8<-- [start:global_fixed]
    @ray.remote(num_cpus=0.5)
    def record_hit_in(counter: Counter) -> None:
        counter.increment()  # one shared count, in one actor

    with Counter() as hits:
        ray.get([record_hit_in.remote(hits) for _ in range(100)], timeout=TIMEOUT)
        assert hits.value() == 100  # right, whatever processes ran the tasks
    # --8<-- [end:global_fixed]


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
