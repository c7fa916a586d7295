"""Mistakes the launcher turns into clear errors before anything starts.

Shown in the troubleshooting part of the Ray on Spark page. ``main()`` expects
this process to be connected to a Ray cluster already (any kind).
"""

from __future__ import annotations

import ray

from launcher import ClusterSpec, RayOnSpark, plan_cluster


def main() -> None:
    assert ray.is_initialized()

    # --8<-- [start:second_cluster]
    try:
        RayOnSpark(progress=False).start()  # this process is already connected
        raise AssertionError("a second cluster must be refused")
    except RuntimeError as error:
        assert "ray.shutdown()" in str(error)  # the message says what to do
    # --8<-- [end:second_cluster]

    # --8<-- [start:old_argument]
    try:
        RayOnSpark(num_worker_nodes=4)  # the name used by Ray 2.3-era tutorials
        raise AssertionError("an unknown argument must be refused")
    except TypeError as error:
        assert "num_worker_nodes" in str(error)
    # --8<-- [end:old_argument]

    # --8<-- [start:no_room]
    small = ClusterSpec(
        workers=4,
        cores_per_worker=4,
        memory_per_worker_gb=8,
        executor_memory_gb=7,
    )
    try:
        plan_cluster(small)  # 80 % of 8 GB is 6.4 GB: less than the heap
        raise AssertionError("a plan without memory for Ray must be refused")
    except ValueError as error:
        assert "memory_per_worker_gb" in str(error)
    # --8<-- [end:no_room]


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
