"""A shard killed in the middle of training: with a store, training carries on.

Run it with ``python examples/parameter_servers_failures.py``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time

import numpy as np

from patterns import DirectoryStore, GradientWorker, ParameterServer, SoftmaxRegression, train

TIMEOUT = 120


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test


# --8<-- [start:killer]
def kill_shard_later(server: ParameterServer, shard: int, at_version: int) -> threading.Thread:
    """SIGKILL one shard's process once the server has applied ``at_version`` pushes."""
    victim = server.pids()[shard]

    def run() -> None:
        deadline = time.monotonic() + TIMEOUT
        while server.version() < at_version and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)  # no clean-up runs: the process is gone
        print(f"killed shard {shard} (pid {victim}) at version {at_version}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# --8<-- [end:killer]


def shard_killed() -> None:
    X_train, y_train, X_test, y_test = digits()
    model = SoftmaxRegression(n_features=64, n_classes=10, seed=0)
    halves = np.array_split(np.arange(len(y_train)), 2)
    workers = [GradientWorker(model, X_train[rows], y_train[rows]) for rows in halves]
    try:
        with tempfile.TemporaryDirectory() as path:
            # --8<-- [start:survive]
            store = DirectoryStore(path)  # on a real cluster: a path every node mounts
            params = model.init_params()
            with ParameterServer(params, n_shards=2, learning_rate=1.0, store=store) as server:
                old_pids = server.pids()

                killer = kill_shard_later(server, shard=1, at_version=30)
                history = train(server, workers, mode="sync", steps=60, eval_data=(X_test, y_test))
                killer.join(timeout=TIMEOUT)

                assert server.pids()[1] != old_pids[1]  # Ray restarted the shard ...
                assert server.stats()["restored_versions"][1] > 0  # ... from its checkpoint
                assert server.version() == history.updates == 60  # no push lost or doubled
            print(f"accuracy after the crash: {history.final_accuracy:.3f}")
            assert history.final_accuracy is not None and history.final_accuracy > 0.94
            # --8<-- [end:survive]
    finally:
        for worker in workers:
            worker.close()


def without_a_store() -> None:
    # --8<-- [start:no_store]
    options = {"max_restarts": 1, "max_task_retries": 3}  # restartable, but no store
    params = {"w": np.zeros(4)}
    with ParameterServer(params, n_shards=2, learning_rate=0.5, actor_options=options) as server:
        for _ in range(3):
            server.push({"w": np.ones(4)})
        os.kill(server.pids()[1], signal.SIGKILL)  # Ray restarts it: __init__ runs again

        print(server.stats()["versions"])  # [3, 0]: shard 1 forgot its three pushes
        assert server.pull()["w"].tolist() == [-1.5, -1.5, 0.0, 0.0]  # half a model
    # --8<-- [end:no_store]


def main() -> None:
    shard_killed()
    without_a_store()


if __name__ == "__main__":
    # --8<-- [start:script-cluster]
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
    # --8<-- [end:script-cluster]
