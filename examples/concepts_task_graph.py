"""Task parallelism: pass references between tasks and Ray runs the graph.

Shown on the Concepts page. ``main()`` expects a connected Ray cluster.
"""

from __future__ import annotations

import statistics

import ray


# --8<-- [start:tasks]
@ray.remote
def load(day: int) -> list[float]:
    return [day + 0.5 * hour for hour in range(24)]  # one reading per hour


@ray.remote
def peak(readings: list[float]) -> float:
    return max(readings)


@ray.remote
def spread(readings: list[float]) -> float:
    return statistics.pstdev(readings)


@ray.remote
def describe(day: int, top: float, sd: float) -> str:
    return f"day {day}: peak {top:.1f}, spread {sd:.2f}"


# --8<-- [end:tasks]


def main() -> None:
    # --8<-- [start:graph]
    lines = []
    for day in range(3):
        readings = load.remote(day)  # a reference, not the list
        # Both tasks wait for this day's readings only, then run side by side.
        top, sd = peak.remote(readings), spread.remote(readings)
        lines.append(describe.remote(day, top, sd))
    report = ray.get(lines)  # the only place the driver waits
    # --8<-- [end:graph]

    assert report == [f"day {d}: peak {d + 11.5}, spread 3.46" for d in range(3)]


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
