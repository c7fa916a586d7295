"""Tasks are remote functions; actors are remote objects that keep their state.

Shown on the Concepts page. ``main()`` expects a connected Ray cluster.
"""

from __future__ import annotations

import ray


# --8<-- [start:task]
@ray.remote
def square(x: float) -> float:
    # A task sees only its arguments: nothing survives from one call to the next.
    return x * x


# --8<-- [end:task]


# --8<-- [start:actor]
@ray.remote
class RunningMean:
    """Keeps a running mean of every number it has been sent."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def add(self, x: float) -> float:
        self.count += 1
        self.total += x
        return self.total / self.count

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


# --8<-- [end:actor]


def main() -> None:
    # --8<-- [start:call_tasks]
    refs = [square.remote(x) for x in range(4)]  # four tasks start at once
    assert ray.get(refs) == [0, 1, 4, 9]  # ray.get waits for the results
    # --8<-- [end:call_tasks]

    # --8<-- [start:call_actors]
    temperatures = RunningMean.remote()  # one process, one piece of state
    latencies = RunningMean.remote()  # another process, separate state

    for reading in (18.0, 20.0, 22.0):
        temperatures.add.remote(reading)  # calls to one actor run in order
    latencies.add.remote(250.0)

    assert ray.get(temperatures.mean.remote()) == 20.0
    assert ray.get(latencies.mean.remote()) == 250.0
    # --8<-- [end:call_actors]

    # --8<-- [start:stop_actors]
    for actor in (temperatures, latencies):
        ray.kill(actor)  # frees the actor's process; its state is gone
    # --8<-- [end:stop_actors]


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
