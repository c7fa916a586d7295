"""Training on scikit-learn's digits through parameter servers: the accuracy bar, shard counts.

The bar: test accuracy within 2 points of `LogisticRegression` on the same standardised
split (tests/_digits.py). Budgets are small and fixed: two workers over the 1,347
training rows (full-partition gradients), sgd with learning rate 0.5; sync takes 150
steps (150 pushes of the averaged gradient), async and ssp 100 steps per worker (200
pushes). One trained run per mode is shared by the tests that look at it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from patterns import (
    GradientWorker,
    ParameterServer,
    SoftmaxRegression,
    TrainingHistory,
    train,
)
from tests._digits import Digits, digits

TIMEOUT = 120
LEARNING_RATE = 0.5
STEPS = {"sync": 150, "async": 100, "ssp": 100}
STALENESS = {"ssp": 1}


@pytest.fixture(scope="module")
def data() -> Digits:
    return digits()


@pytest.fixture(scope="module")
def model(data: Digits) -> SoftmaxRegression:
    return SoftmaxRegression(data.X_train.shape[1], 10, seed=0)


@pytest.fixture(scope="module")
def workers(ray_cluster: dict, data: Digits, model: SoftmaxRegression) -> Iterator[list]:
    """Two workers on two halves of the training rows, shared by every run of the module."""
    pool = [GradientWorker(model, X, y) for X, y in data.partitions(2)]
    yield pool
    for worker in pool:
        worker.close()


def _train(
    model: SoftmaxRegression, workers: list, data: Digits, mode: str, n_shards: int = 2
) -> TrainingHistory:
    with ParameterServer(
        model.init_params(), n_shards=n_shards, learning_rate=LEARNING_RATE
    ) as server:
        return train(
            server,
            workers,
            mode=mode,
            steps=STEPS[mode],
            staleness=STALENESS.get(mode),
            eval_data=(data.X_test, data.y_test),
            eval_every=50,
            timeout=TIMEOUT,
        )


@pytest.fixture(scope="module")
def histories(model: SoftmaxRegression, workers: list, data: Digits) -> dict[str, TrainingHistory]:
    """One run per mode (the tests below read them)."""
    return {mode: _train(model, workers, data, mode) for mode in ("sync", "async", "ssp")}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async", "ssp"])
def test_each_mode_meets_the_accuracy_bar(
    histories: dict[str, TrainingHistory], data: Digits, mode: str
) -> None:
    history = histories[mode]
    assert history.final_accuracy is not None
    assert history.final_accuracy >= data.bar, (
        f"{mode}: {history.final_accuracy:.4f} < LogisticRegression {data.baseline:.4f} - 0.02"
    )


@pytest.mark.slow
def test_histories_record_every_update(histories: dict[str, TrainingHistory]) -> None:
    sync, asynchronous, ssp = histories["sync"], histories["async"], histories["ssp"]
    assert sync.updates == 150 and all(r.worker is None for r in sync.records)
    assert asynchronous.updates == ssp.updates == 200  # 2 workers x 100 steps
    for history in histories.values():
        records = history.records
        assert records[0].update == 0 and records[0].loss is None  # the start
        assert [r.update for r in records] == list(range(len(records)))
        assert [r.version for r in records[1:]] == list(range(1, len(records)))  # none dropped
        seconds = [r.elapsed_s for r in records]
        assert seconds == sorted(seconds) and history.duration_s >= seconds[-1]
        evaluated = [r.update for r in records if r.accuracy is not None]
        assert evaluated == [0, *range(50, history.updates + 1, 50)]
        assert records[-1].loss < records[1].loss  # it learned
        assert history.applied == history.updates and history.dropped == 0
        assert history.events == []
    # Each worker pushed its share, and gradients were computed on older versions.
    for history in (asynchronous, ssp):
        assert sorted({r.worker for r in history.records[1:]}) == [0, 1]
        assert max(r.staleness for r in history.records[1:]) >= 1


def _largest_lead(history: TrainingHistory) -> int:
    """How far, in steps, the fastest worker was ahead of the slowest, at worst."""
    clocks = [0] * history.n_workers
    lead = 0
    for record in history.records[1:]:
        assert record.worker is not None
        clocks[record.worker] += 1
        lead = max(lead, max(clocks) - min(clocks))
    return lead


STRAGGLER_DELAY_S = 0.6  # the straggler sleeps this long after each gradient
STRAGGLER_STEPS = 5


@pytest.mark.slow
def test_ssp_bounds_how_far_a_worker_leads_where_async_does_not(
    model: SoftmaxRegression, workers: list, data: Digits
) -> None:
    """One fast worker and one straggler: async lets the fast one run ahead, ssp holds it.

    A worker starts step k+1 only if it leads the slowest by <= staleness, so when its
    k-th gradient arrives it leads by at most staleness + 1. The same two workers in
    async mode show that the bound is ssp's doing: there the fast worker finishes its
    steps while the straggler is still on its first ones.
    """
    X, y = data.partitions(2)[1]
    straggler = GradientWorker(model, X, y, delay_s=STRAGGLER_DELAY_S)
    pair = [workers[0], straggler]
    leads = {}
    try:
        for mode, staleness in (("async", None), ("ssp", STALENESS["ssp"])):
            with ParameterServer(model.init_params(), learning_rate=LEARNING_RATE) as server:
                history = train(
                    server,
                    pair,
                    mode=mode,
                    steps=STRAGGLER_STEPS,
                    staleness=staleness,
                    timeout=TIMEOUT,
                )
            assert history.updates == 2 * STRAGGLER_STEPS
            leads[mode] = _largest_lead(history)
    finally:
        straggler.close()
    print(f"largest lead of the fast worker: {leads}")  # shown with -s
    assert leads["ssp"] <= STALENESS["ssp"] + 1, leads
    assert leads["async"] > STALENESS["ssp"] + 1, leads  # without the bound it is exceeded


@pytest.mark.slow
def test_ssp_bound_held_in_the_digits_run(histories: dict[str, TrainingHistory]) -> None:
    assert _largest_lead(histories["ssp"]) <= STALENESS["ssp"] + 1


@pytest.mark.parametrize(
    ("optimizer", "learning_rate"), [("sgd", 0.5), ("momentum", 0.1), ("adam", 0.05)]
)
def test_one_two_and_three_shards_give_the_same_weights(
    model: SoftmaxRegression, workers: list, optimizer: str, learning_rate: float
) -> None:
    servers = [
        ParameterServer(
            model.init_params(), n_shards=n, optimizer=optimizer, learning_rate=learning_rate
        )
        for n in (1, 2, 3)
    ]
    try:
        weights = []
        for server in servers:
            history = train(server, workers, mode="sync", steps=8, timeout=TIMEOUT)
            assert history.updates == 8 == server.version(timeout=TIMEOUT)
            weights.append(server.pull(timeout=TIMEOUT))
    finally:
        for server in servers:
            server.close()
    initial = model.init_params()
    assert not np.allclose(weights[0]["W"], initial["W"])  # training moved them
    for other in weights[1:]:
        for name in ("W", "b"):
            assert np.max(np.abs(other[name] - weights[0][name])) <= 1e-10
            assert np.array_equal(other[name], weights[0][name])  # in fact bit for bit


@pytest.mark.slow
def test_classifier_with_its_defaults_meets_the_accuracy_bar(data: Digits) -> None:
    """Only the seed is set: the defaults must train digits without tuning."""
    from patterns import ParameterServerClassifier

    clf = ParameterServerClassifier(random_state=0).fit(data.X_train, data.y_train)
    accuracy = clf.score(data.X_test, data.y_test)
    print(f"classifier {accuracy:.4f}, LogisticRegression {data.baseline:.4f}")  # shown with -s
    assert accuracy >= data.bar, f"{accuracy:.4f} < LogisticRegression {data.baseline:.4f} - 0.02"
    assert clf.classes_.tolist() == list(range(10))
    assert clf.coef_.shape == (10, data.X_train.shape[1]) and clf.intercept_.shape == (10,)
    assert clf.n_features_in_ == data.X_train.shape[1]
    assert clf.history_.mode == "sync" and clf.history_.updates == 200  # the default steps
    proba = clf.predict_proba(data.X_test)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(data.X_test))
