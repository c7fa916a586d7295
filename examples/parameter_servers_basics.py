"""A parameter server by hand: pull, push, versions, staleness, shards.

Run it with ``python examples/parameter_servers_basics.py``.
"""

from __future__ import annotations

import numpy as np
import ray

from patterns import ParameterServer

TIMEOUT = 120


def pull_and_push() -> None:
    # --8<-- [start:pull_push]
    params = {"W": np.zeros((3, 2)), "b": np.zeros(2)}
    server = ParameterServer(params, optimizer="sgd", learning_rate=0.5)

    weights = server.pull()  # fresh numpy arrays: yours to change
    gradients = {"W": np.ones((3, 2)), "b": np.array([1.0, -1.0])}
    assert server.push(gradients) is True  # one sgd step: W -= 0.5 * gradient
    assert server.version() == 1  # pushes applied so far

    weights = server.pull()
    assert weights["W"][0].tolist() == [-0.5, -0.5]
    assert weights["b"].tolist() == [-0.5, 0.5]
    # --8<-- [end:pull_push]

    # --8<-- [start:bad_push]
    try:
        server.push({"W": np.ones((2, 3)), "b": np.zeros(2)})
    except ValueError as error:
        print(error)  # gradients['W'] must have shape (3, 2), got shape (2, 3)
    else:
        raise AssertionError("a gradient of the wrong shape was accepted")
    assert server.version() == 1  # nothing was sent, nothing changed
    server.close()  # stops the shard and waits until Ray reports it dead
    # --8<-- [end:bad_push]


def staleness() -> None:
    # --8<-- [start:staleness]
    with ParameterServer({"w": np.zeros(4)}, learning_rate=0.1, max_staleness=1) as server:
        seen = server.version()  # 0: a worker pulls and starts computing on version 0
        weights = server.pull()

        # Two other workers push while this one computes ...
        server.push({"w": np.ones(4)}, version=server.version())
        server.push({"w": np.ones(4)}, version=server.version())

        # ... so its gradients are 2 versions old, more than max_staleness=1 allows.
        gradients = {"w": weights["w"] - 1.0}  # (whatever it computed)
        assert server.push(gradients, version=seen) is False
        assert server.version() == 2 and server.stats()["dropped_stale"] == 1
    # --8<-- [end:staleness]


def sharding() -> None:
    # --8<-- [start:sharding]
    embedding = np.random.default_rng(0).normal(size=(1_000, 64))  # one big matrix
    params = {"embedding": embedding, "bias": np.zeros(64)}
    with ParameterServer(params, n_shards=3) as server:
        print(server.layout)  # the element ranges each shard holds: whole rows
        print(server.stats()["bytes_per_shard"])  # [171008, 170496, 171008]: balanced
        assert np.array_equal(server.pull()["embedding"], embedding)

        gradients = {"embedding": embedding, "bias": np.ones(64)}
        refs = [server.push_async(gradients) for _ in range(5)]
        assert ray.get(refs, timeout=TIMEOUT) == [True] * 5  # each push reached every shard
        assert server.version() == 5
    # --8<-- [end:sharding]


def main() -> None:
    pull_and_push()
    staleness()
    sharding()


if __name__ == "__main__":
    # --8<-- [start:script-cluster]
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
    # --8<-- [end:script-cluster]
