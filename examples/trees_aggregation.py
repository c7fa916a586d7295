"""Tree aggregation: combine many partial results without funnelling them through one process.

Run it with ``python examples/trees_aggregation.py``; the tutorial page
``tutorials/patterns/actor-trees.md`` shows its sections.
"""

from __future__ import annotations

import time

import numpy as np
import ray

from patterns import tree_reduce

TIMEOUT = 120  # seconds: no wait in the examples is unbounded


# --8<-- [start:leaves]
@ray.remote
def partial_histogram(seed: int, bins: int = 4096) -> np.ndarray:
    """One worker's share: a histogram of its slice of the data (here: made up)."""
    rng = np.random.default_rng(seed)
    return np.bincount(rng.integers(0, bins, size=20_000), minlength=bins).astype(np.int64)


def add_all(arrays: list[np.ndarray]) -> np.ndarray:
    return np.sum(arrays, axis=0)  # associative: any grouping gives the same total


# --8<-- [end:leaves]


def main() -> None:
    leaves = 128
    # --8<-- [start:flat]
    refs = [partial_histogram.remote(seed) for seed in range(leaves)]

    start = time.perf_counter()
    flat = add_all(ray.get(refs, timeout=TIMEOUT))  # every array travels to this process
    flat_s = time.perf_counter() - start
    # --8<-- [end:flat]

    # --8<-- [start:tree]
    start = time.perf_counter()
    total = tree_reduce(refs, add_all, fan_in=8, budget_s=TIMEOUT)  # 128 -> 16 -> 2 -> 1
    tree_s = time.perf_counter() - start

    np.testing.assert_array_equal(total, flat)  # the same histogram, to the last count
    assert total.sum() == leaves * 20_000
    # --8<-- [end:tree]
    print(f"{leaves} partial histograms: flat {flat_s * 1e3:.0f} ms, tree {tree_s * 1e3:.0f} ms")


if __name__ == "__main__":
    # --8<-- [start:script-main]
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
    # --8<-- [end:script-main]
