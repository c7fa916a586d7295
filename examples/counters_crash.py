"""Surviving a crash: exactly-once increments with a checkpoint store.

Run it with ``python examples/counters_crash.py``.
"""

from __future__ import annotations

import time
import uuid

import ray

from patterns import Counter, PatternError, RayKVStore

TIMEOUT = 120


# --8<-- [start:wait]
def crash_and_wait(counter: Counter, timeout: float = TIMEOUT) -> None:
    """Kill the actor's process the hard way and wait until Ray has restarted it."""
    (old_pid,) = counter.pids(timeout=timeout)
    counter.kill()  # the crash simulation: like SIGKILL, no clean-up runs; Ray restarts it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if counter.pids(timeout=timeout) != [old_pid]:
                return  # a new process runs the actor
        except PatternError:
            pass  # the call raced with the crash; ask again
        time.sleep(0.1)
    raise TimeoutError(f"the actor was not restarted within {timeout} s")


# --8<-- [end:wait]


def survive() -> None:
    # --8<-- [start:survive]
    store = RayKVStore(namespace="counters-tutorial")  # any node of the cluster reaches it
    key = f"orders-{uuid.uuid4().hex}"
    counter = Counter(store=store, key=key)  # restartable, checkpoints every increment

    for _ in range(100):
        counter.increment()  # each return = acknowledged = in the store
    in_flight = [counter.increment_async() for _ in range(50)]
    crash_and_wait(counter)  # some of the 50 were running or queued
    ray.get(in_flight, timeout=TIMEOUT)  # Ray re-sent them; the actor skipped duplicates

    assert counter.value() == 150  # nothing lost, nothing counted twice
    # --8<-- [end:survive]
    counter.close()  # stops the actor; its checkpoints stay in the store
    store.delete(key)


def failure() -> None:
    # --8<-- [start:failure]
    options = {"max_restarts": 1, "max_task_retries": 3}  # restartable, but no store
    with Counter(actor_options=options) as counter:
        for _ in range(100):
            counter.increment()
        crash_and_wait(counter)
        assert counter.value() == 0  # the restarted actor began again from `start`
    # --8<-- [end:failure]


def main() -> None:
    survive()
    failure()


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
