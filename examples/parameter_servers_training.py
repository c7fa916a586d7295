"""Training on digits through a parameter server: sync, async, stale synchronous parallel.

Run it with ``python examples/parameter_servers_training.py``.
"""

from __future__ import annotations

import functools

import numpy as np

from patterns import GradientWorker, ParameterServer, SoftmaxRegression, TrainingHistory, train

TIMEOUT = 120


# --8<-- [start:data]
@functools.cache
def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Digits (8x8 images, 10 classes; shipped with scikit-learn), standardised and split."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    # The reference: scikit-learn's own solver on one machine.
    baseline = LogisticRegression(max_iter=1000).fit(X_train, y_train).score(X_test, y_test)
    return X_train, y_train, X_test, y_test, baseline


# --8<-- [end:data]


def run(mode: str) -> tuple[TrainingHistory, float]:
    X_train, y_train, X_test, y_test, baseline = load_data()
    # --8<-- [start:workers]
    model = SoftmaxRegression(n_features=64, n_classes=10, seed=0)
    halves = np.array_split(np.arange(len(y_train)), 2)
    workers = [GradientWorker(model, X_train[rows], y_train[rows]) for rows in halves]
    server = ParameterServer(model.init_params(), n_shards=2, learning_rate=1.0)
    # --8<-- [end:workers]
    try:
        if mode == "sync":
            # --8<-- [start:sync]
            history = train(
                server, workers, mode="sync", steps=60, eval_data=(X_test, y_test), eval_every=20
            )
            # --8<-- [end:sync]
        elif mode == "async":
            # --8<-- [start:async]
            history = train(
                server, workers, mode="async", steps=30, eval_data=(X_test, y_test), eval_every=20
            )
            # --8<-- [end:async]
        else:
            # --8<-- [start:ssp]
            history = train(
                server,
                workers,
                mode="ssp",
                staleness=1,  # the faster worker may lead by one step, no more
                steps=30,
                eval_data=(X_test, y_test),
                eval_every=20,
            )
            # --8<-- [end:ssp]
    finally:
        # --8<-- [start:close]
        server.close()  # each close() stops the actors and waits until Ray reports them dead
        for worker in workers:
            worker.close()
        # --8<-- [end:close]
    return history, baseline


def modes() -> None:
    for mode in ("sync", "async", "ssp"):
        history, baseline = run(mode)
        # --8<-- [start:history]
        print(
            f"{history.mode}: {history.updates} pushes in {history.duration_s:.1f} s, "
            f"test accuracy {history.final_accuracy:.3f} "
            f"(LogisticRegression: {baseline:.3f})"
        )
        for record in history.records[-2:]:
            print(record)  # update, version, elapsed_s, loss, accuracy, worker, staleness
        assert history.final_accuracy is not None
        assert history.final_accuracy >= baseline - 0.02
        # --8<-- [end:history]


def classifier() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    # --8<-- [start:classifier]
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from patterns import ParameterServerClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    classifier = make_pipeline(
        StandardScaler(), ParameterServerClassifier(n_workers=2, n_shards=2, random_state=0)
    )
    classifier.fit(X_train, y_train)  # trains on the Ray cluster, then closes its actors
    print(f"ParameterServerClassifier: {classifier.score(X_test, y_test):.3f}")
    assert classifier.score(X_test, y_test) > 0.94
    # --8<-- [end:classifier]


def main() -> None:
    modes()
    classifier()


if __name__ == "__main__":
    # --8<-- [start:script-cluster]
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
    # --8<-- [end:script-cluster]
