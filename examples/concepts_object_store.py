"""The object store: put a value once, hand its reference to many tasks.

Shown on the Concepts page. ``main()`` expects a connected Ray cluster.
"""

from __future__ import annotations

import numpy as np
import ray


# --8<-- [start:reader]
@ray.remote
def column_mean(matrix: np.ndarray, column: int) -> float:
    # Ray replaced the reference with the array itself before this call.
    # A numpy array read from the object store is shared, so it is read-only.
    assert not matrix.flags.writeable
    return float(matrix[:, column].mean())


# --8<-- [end:reader]


# --8<-- [start:first_item]
@ray.remote
def first_item(items: list) -> str:
    return type(items[0]).__name__  # the type of what arrived inside the list


# --8<-- [end:first_item]


def main() -> None:
    # --8<-- [start:put_once]
    matrix = np.arange(200_000, dtype=np.float64).reshape(-1, 4)  # 1.6 MB
    matrix_ref = ray.put(matrix)  # stored once, on the node that put it

    # Four tasks share the stored copy; none of them receives its own pickle.
    means = ray.get([column_mean.remote(matrix_ref, c) for c in range(4)])
    assert means == [float(matrix[:, c].mean()) for c in range(4)]
    # --8<-- [end:put_once]

    # --8<-- [start:nested]
    # Only top-level arguments are resolved; a reference inside a list stays one.
    assert ray.get(first_item.remote([matrix_ref])) == "ObjectRef"
    # --8<-- [end:nested]

    # --8<-- [start:get_result]
    copy = ray.get(matrix_ref)
    assert not copy.flags.writeable  # a view of the store, not a private copy
    private = copy.copy()  # copy first if you need to modify it
    private[0, 0] = -1.0
    # --8<-- [end:get_result]


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
