"""The tour's parameter-server step: sharded training with a shard SIGKILLed halfway."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from typing import Any

import numpy as np

TITLE = "Parameter server: a shard killed in the middle of training"


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test


def step(spark: Any, *, quick: bool) -> None:
    """Train softmax regression on digits over 2 shards and 2 workers; kill shard 1 midway."""
    from patterns import DirectoryStore, GradientWorker, ParameterServer, SoftmaxRegression, train

    X_train, y_train, X_test, y_test = _digits()
    steps = 40 if quick else 120
    model = SoftmaxRegression(n_features=64, n_classes=10, seed=0)
    halves = np.array_split(np.arange(len(y_train)), 2)
    with contextlib.ExitStack() as stack:  # every actor is closed, also on a failure
        workers = [
            stack.enter_context(GradientWorker(model, X_train[rows], y_train[rows]))
            for rows in halves
        ]
        path = stack.enter_context(tempfile.TemporaryDirectory(prefix="demo-ps-"))
        server = stack.enter_context(
            ParameterServer(
                model.init_params(), n_shards=2, learning_rate=1.0, store=DirectoryStore(path)
            )
        )
        shares = server.stats()["elements_per_shard"]
        rows = [worker.samples for worker in workers]
        print(f"2 shards hold {shares} parameters; 2 workers hold {rows} training rows")
        victim = server.pids()[1]
        killed_at: list[int] = []

        def kill_halfway() -> None:
            deadline = time.monotonic() + 120
            while server.version() < steps // 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            killed_at.append(server.version())
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_halfway, daemon=True)
        killer.start()
        history = train(
            server, workers, mode="sync", steps=steps, eval_data=(X_test, y_test), budget_s=300
        )
        killer.join(timeout=120)
        restored = server.stats()["restored_versions"][1]
        print(
            f"SIGKILL shard 1 (pid {victim}) at version {killed_at[0]}; Ray restarted it "
            f"from its checkpoint (version {restored})"
        )
        accuracy = history.final_accuracy
        assert accuracy is not None
        print(
            f"{history.updates} synchronous steps in {history.duration_s:.1f}s, "
            f"server version {server.version()}: "
            f"Parameter server test accuracy {accuracy:.3f}"
        )
        assert server.version() == history.updates == steps
        assert server.pids()[1] != victim and restored > 0
        assert accuracy > 0.94
