"""ParameterServer and GradientWorker on the shared cluster: pushes, pulls, staleness, copies,
names and attach, the training budget.

Training to the accuracy bar is in test_parameter_servers_training.py; killed processes
in test_parameter_servers_faults.py.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from patterns import (
    CallTimeoutError,
    DirectoryStore,
    GradientWorker,
    ParameterServer,
    PatternError,
    SoftmaxRegression,
    train,
)
from patterns.parameter_servers._state import Optimizer

TIMEOUT = 120


@pytest.fixture(scope="module")
def server(ray_cluster: dict) -> Iterator[ParameterServer]:
    """Three shards, sgd with learning rate 0.5 (exact in binary: results compare with ==)."""
    with ParameterServer(
        {"W": np.zeros((4, 3)), "b": np.zeros(3)}, n_shards=3, learning_rate=0.5
    ) as ps:
        yield ps


def _ones(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {"W": np.full((4, 3), scale), "b": np.full(3, scale)}


def test_push_pull_version_stats(server: ParameterServer) -> None:
    import ray

    start = server.version(timeout=TIMEOUT)
    before = server.pull(timeout=TIMEOUT)
    assert server.push(_ones(0.25), timeout=TIMEOUT) is True
    assert (
        ray.get([server.push_async(_ones(0.25)) for _ in range(3)], timeout=TIMEOUT) == [True] * 3
    )
    after = server.pull(timeout=TIMEOUT)
    assert server.version(timeout=TIMEOUT) == start + 4
    assert np.array_equal(after["W"], before["W"] - 4 * 0.5 * 0.25)
    after["W"][0, 0] = 42.0  # the caller's own array
    assert server.pull(timeout=TIMEOUT)["W"][0, 0] != 42.0
    assert np.array_equal(ray.get(server.pull_async(), timeout=TIMEOUT)["b"], after["b"])
    assert ray.get(server.version_async(), timeout=TIMEOUT) == start + 4

    stats = server.stats(timeout=TIMEOUT)
    assert stats["applied"] == start + 4 and stats["dropped_stale"] == 0
    assert stats["n_shards"] == 3 and stats["versions"] == [start + 4] * 3
    assert (stats["kind"], stats["actors"], stats["owned"], stats["closed"]) == (
        "ParameterServer",
        3,
        True,
        False,
    )
    assert ray.get(server.stats_async(), timeout=TIMEOUT)["applied"] == start + 4
    assert sum(stats["elements_per_shard"]) == 15
    assert stats["bytes_per_shard"] == [8 * n for n in stats["elements_per_shard"]]
    assert stats["optimizer"] == "sgd" and stats["learning_rate"] == 0.5
    assert len(set(server.pids(timeout=TIMEOUT))) == 3
    assert server.checkpoint(timeout=TIMEOUT) == [None, None, None]
    assert server.key is None and server.n_shards == 3 and server.name is None
    assert server.shapes == {"W": (4, 3), "b": (3,)}


@pytest.mark.parametrize(
    ("gradients", "version", "error", "match"),
    [
        (
            {"W": np.ones((3, 4)), "b": np.ones(3)},
            None,
            ValueError,
            r"gradients\['W'\] must have shape \(4, 3\), got shape \(3, 4\)",
        ),
        ({"W": np.ones((4, 3))}, None, ValueError, r"'gradients' is missing key 'b'"),
        ({**_ones(), "c": np.ones(1)}, None, ValueError, r"'gradients' has unknown key 'c'"),
        ({**_ones(), "b": np.array([1.0, np.nan, 1.0])}, None, ValueError, r"must be finite"),
        ({**_ones(), "b": np.array(["1", "2", "3"])}, None, TypeError, r"must hold int or float"),
        (_ones(), -1, ValueError, r"'version' must be an int >= 0, got -1"),
        (_ones(), "3", TypeError, r"'version' must be an int, got '3' \(str\)"),
    ],
)
def test_bad_pushes_are_refused_before_anything_is_sent(
    server: ParameterServer, gradients: dict, version: object, error: type[Exception], match: str
) -> None:
    version_before = server.version(timeout=TIMEOUT)
    params_before = server.pull(timeout=TIMEOUT)
    with pytest.raises(error, match=match):
        server.push(gradients, version=version)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        server.push_async(gradients, version=version)  # type: ignore[arg-type]
    assert server.version(timeout=TIMEOUT) == version_before
    after = server.pull(timeout=TIMEOUT)
    assert all(np.array_equal(after[k], params_before[k]) for k in after)
    assert server.push(_ones(0.0), timeout=TIMEOUT)  # and the server still works


def test_staleness_drops_exactly_the_pushes_older_than_the_bound(ray_cluster: dict) -> None:
    bound = 2
    with ParameterServer(
        {"w": np.zeros(6)}, n_shards=3, learning_rate=0.5, max_staleness=bound
    ) as ps:
        expected, current, dropped = np.zeros(6), 0, 0
        for step in range(4):
            assert ps.push({"w": np.full(6, step + 1.0)}, version=current, timeout=TIMEOUT)
            expected -= 0.5 * (step + 1.0)
            current += 1
        for version in [0, 1, 2, 3, 4, 5, 1, 6, 7, 3, None]:
            applied = ps.push({"w": np.ones(6)}, version=version, timeout=TIMEOUT)
            fresh = version is None or current - version <= bound
            assert applied == fresh, f"version {version} at {current}"
            if fresh:
                expected -= 0.5
                current += 1
            else:
                dropped += 1
        stats = ps.stats(timeout=TIMEOUT)
        assert stats["dropped_stale"] == dropped == 4
        assert stats["versions"] == [current] * 3  # every shard took the same decisions
        assert ps.version(timeout=TIMEOUT) == current
        assert np.array_equal(ps.pull(timeout=TIMEOUT)["w"], expected)


def test_one_big_matrix_is_split_into_row_ranges(ray_cluster: dict) -> None:
    W = np.arange(24.0).reshape(6, 4)
    with ParameterServer({"W": W}, n_shards=3, optimizer="momentum", learning_rate=0.5) as ps:
        assert ps.layout == [[("W", 0, 8)], [("W", 8, 16)], [("W", 16, 24)]]
        assert ps.stats(timeout=TIMEOUT)["bytes_per_shard"] == [64, 64, 64]
        grad = np.linspace(-1, 1, 24).reshape(6, 4)
        for _ in range(2):
            ps.push({"W": grad}, timeout=TIMEOUT)
        velocity = 0.9 * grad + grad
        assert np.allclose(ps.pull(timeout=TIMEOUT)["W"], W - 0.5 * grad - 0.5 * velocity)


def test_copies_number_their_pushes_as_other_clients(ray_cluster: dict, tmp_path: Path) -> None:
    import ray

    with ParameterServer({"w": np.zeros(4)}, n_shards=2, store=DirectoryStore(tmp_path)) as ps:
        copy = pickle.loads(pickle.dumps(ps))
        assert copy._requests.client != ps._requests.client
        assert (ps.owned, copy.owned) == (True, False)
        ps.push({"w": np.ones(4)}, timeout=TIMEOUT)
        copy.push({"w": np.ones(4)}, timeout=TIMEOUT)  # seq 1 of another client: applied

        @ray.remote(num_cpus=0.5)
        def push_from_a_task(server: ParameterServer, times: int) -> int:
            return sum(server.push({"w": np.ones(4)}, timeout=TIMEOUT) for _ in range(times))

        assert (
            ray.get([push_from_a_task.remote(ps, 5) for _ in range(3)], timeout=TIMEOUT) == [5] * 3
        )
        copy.close()  # a copy releases the shards: they keep serving the owner
        assert ps.version(timeout=TIMEOUT) == 17
        assert np.allclose(ps.pull(timeout=TIMEOUT)["w"], -0.01 * 17)


def test_a_server_with_a_store_resumes_under_its_key(ray_cluster: dict, tmp_path: Path) -> None:
    """Shard i of n saves under {key}/shard-i-of-n: the layout every family uses now, and the
    one this family used before it (so older checkpoints restore as they are)."""
    store = DirectoryStore(tmp_path)
    # Gradients that change sign and size: Adam's step depends on its moments.
    grads = [np.arange(5.0) * (-1) ** k * (k + 1) for k in range(4)]
    with ParameterServer(
        {"w": np.zeros(5)}, n_shards=2, optimizer="adam", store=store, key="ps"
    ) as first:
        for grad in grads[:3]:
            first.push({"w": grad}, timeout=TIMEOUT)
        weights = first.pull(timeout=TIMEOUT)["w"]
        assert store.load("ps/shard-0-of-2").version == 3  # written before each push returned
    # close() stopped the shards; their checkpoints stay in the store.
    again = ParameterServer({"w": np.zeros(5)}, n_shards=2, optimizer="adam", store=store, key="ps")
    try:
        assert again.version(timeout=TIMEOUT) == 3
        assert np.array_equal(again.pull(timeout=TIMEOUT)["w"], weights)
        assert again.stats(timeout=TIMEOUT)["restored_versions"] == [3, 3]
        again.push({"w": grads[3]}, timeout=TIMEOUT)
        assert again.version(timeout=TIMEOUT) == 4
        # Adam's moments and step count came back too: four uninterrupted steps.
        expected = np.zeros(5)
        adam = Optimizer("adam", 0.01)  # the server's default learning rate
        state = adam.init_state(expected)
        for t, grad in enumerate(grads, start=1):
            adam.step(expected, grad, state, t)
        assert np.array_equal(again.pull(timeout=TIMEOUT)["w"], expected)
    finally:
        again.close()


def test_gradient_worker_keeps_its_partition(ray_cluster: dict) -> None:
    model = SoftmaxRegression(3, 2)
    X = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [2.0, 2.0, 0.0]])
    y = np.array([0, 1, 1])
    with GradientWorker(model, X, y) as worker:
        params = model.init_params()
        loss, grads = worker.compute_gradients(params, timeout=TIMEOUT)
        expected_loss, expected = model.loss_and_gradients(params, X, y)
        assert loss == pytest.approx(expected_loss)
        assert all(np.allclose(grads[k], expected[k]) for k in expected)
        assert worker.samples == 3
        assert worker.stats(timeout=TIMEOUT)["gradients"] == 1
        old = worker.pids(timeout=TIMEOUT)
        worker.replace(timeout=TIMEOUT)  # same partition, new process
        assert worker.pids(timeout=TIMEOUT) != old and worker.replacements == 1
        assert worker.compute_gradients(params, timeout=TIMEOUT)[0] == pytest.approx(loss)
        stats = worker.stats(timeout=TIMEOUT)
        assert (stats["replacements"], stats["gradients"], stats["samples"]) == (1, 1, 3)
        with pytest.raises(TypeError, match=r"'params' must be a dict of arrays or an ObjectRef"):
            worker.compute_gradients_async([1, 2])  # type: ignore[arg-type]
        copy = pickle.loads(pickle.dumps(worker))
        with pytest.raises(PatternError, match=r"replace needs the facade that created the"):
            copy.replace()  # a copy does not own the actor
        assert copy.compute_gradients(params, timeout=TIMEOUT)[0] == pytest.approx(loss)
        copy.close()


def test_named_servers_and_workers_attach(ray_cluster: dict, tmp_path: Path) -> None:
    import ray

    store = DirectoryStore(tmp_path)
    with ParameterServer(
        {"w": np.zeros(4)},
        n_shards=2,
        learning_rate=0.5,
        store=store,
        name="ps-doc",
        namespace="ps",
    ) as server:
        names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
        assert {"ps-doc/shard-0-of-2", "ps-doc/shard-1-of-2"} <= names
        assert server.key == "ps/ps-doc"  # the default key: namespace/name
        server.push({"w": np.ones(4)}, timeout=TIMEOUT)
        attached = ParameterServer.attach("ps-doc", namespace="ps")
        assert (attached.owned, attached.n_shards, attached.key) == (False, 2, "ps/ps-doc")
        assert attached.push({"w": np.ones(4)}, timeout=TIMEOUT)  # its own client id
        assert np.array_equal(attached.pull(timeout=TIMEOUT)["w"], np.full(4, -1.0))
        attached.close()  # releases: the owner's shards keep running
        assert server.version(timeout=TIMEOUT) == 2
        assert store.load("ps/ps-doc/shard-1-of-2").version == 2
        with pytest.raises(TypeError, match="not a GradientWorker"):
            GradientWorker.attach("ps-doc/shard-0-of-2", namespace="ps")
    with pytest.raises(ValueError, match="no live ParameterServer named 'ps-doc'"):
        ParameterServer.attach("ps-doc", namespace="ps")

    model = SoftmaxRegression(2, 2)
    with GradientWorker(model, np.eye(2), np.array([0, 1]), name="worker-doc") as worker:
        attached_worker = GradientWorker.attach("worker-doc")
        params = model.init_params()
        assert attached_worker.compute_gradients(params, timeout=TIMEOUT)[0] == pytest.approx(
            worker.compute_gradients(params, timeout=TIMEOUT)[0]
        )
        assert attached_worker.samples == 2 and not attached_worker.owned
        attached_worker.close()
        worker.replace(timeout=TIMEOUT)  # the name is free once the old actor is dead
        named = ray.get_actor("worker-doc")  # the name now leads to the new actor
        assert ray.get(named.pid.remote(), timeout=TIMEOUT) == worker.pids(timeout=TIMEOUT)[0]


def test_train_within_its_budget_or_a_call_timeout_error(ray_cluster: dict) -> None:
    """budget_s bounds the whole call: a run that cannot finish in it raises, it does not hang."""
    model = SoftmaxRegression(2, 2)
    X, y = np.eye(2), np.array([0, 1])
    with (
        GradientWorker(model, X, y, delay_s=0.5) as slow,
        ParameterServer(model.init_params(), learning_rate=0.5) as server,
    ):
        history = train(server, [slow], steps=2, budget_s=TIMEOUT)
        assert history.updates == 2
        with pytest.raises(CallTimeoutError, match=r"train: the budget of 2 s ran out after"):
            train(server, [slow], mode="async", steps=100, budget_s=2)


def test_classifier_fit_within_its_budget_and_no_actor_left(ray_cluster: dict) -> None:
    """A fit that cannot finish within budget_s raises CallTimeoutError and closes its actors."""
    from patterns import ParameterServerClassifier
    from patterns._ray_internals import actor_states, actor_table_ids

    X, y = np.array([[0.0, 1.0], [1.0, 0.0]] * 8), np.array([0, 1] * 8)
    before = actor_table_ids()
    clf = ParameterServerClassifier(steps=100_000, budget_s=3, random_state=0)
    with pytest.raises(CallTimeoutError, match=r"train: the budget of 3 s ran out"):
        clf.fit(X, y)
    assert not hasattr(clf, "coef_")
    started = actor_table_ids() - before
    assert len(started) == 3  # two workers and a shard ...
    assert set(actor_states(started).values()) == {"DEAD"}  # ... all stopped before fit raised
