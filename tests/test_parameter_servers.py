"""Parameter servers without a cluster: checks, the shard plan, optimizers, one shard's state.

Then the argument checks of every facade, each asserting that nothing reached Ray.
Behaviour on the cluster is in test_parameter_servers_cluster.py, training to the
accuracy bar in test_parameter_servers_training.py, killed processes in
test_parameter_servers_faults.py.
"""

from __future__ import annotations

import itertools
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from patterns import DirectoryStore, GradientWorker, ParameterServer, SoftmaxRegression, train
from patterns._actors import rebuild
from patterns.parameter_servers import _server, _worker
from patterns.parameter_servers._state import (
    RECENT_DROPS,
    Layout,
    Optimizer,
    Piece,
    ShardState,
    check_gradients,
    check_optimizer,
    check_params,
    plan_shards,
)

# --- parameters and gradients ---------------------------------------------------------------


def test_params_are_copied_as_float_arrays() -> None:
    given = {"W": np.ones((2, 3), dtype=np.float32), "b": [1, 2, 3]}
    params = check_params(given)
    assert params["W"].dtype == np.float32  # float dtypes are kept
    assert params["b"].dtype == np.float64  # ints become float64
    given["W"][0, 0] = 99.0
    assert params["W"][0, 0] == 1.0  # a copy: the caller's later changes do not leak in


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ([1.0], TypeError, r"'params' must be a dict of name -> numpy array, got \[1.0\] \(list\)"),
        ({}, ValueError, r"'params' must hold at least one array, got \{\}"),
        ({3: np.zeros(2)}, TypeError, r"'params' keys must be non-empty str names, got 3 \(int\)"),
        ({"": np.zeros(2)}, TypeError, r"'params' keys must be non-empty str names"),
        ({"w": np.array(["a"])}, TypeError, r"params\['w'\]' must hold int or float .* dtype <U1"),
        ({"w": np.array([True])}, TypeError, r"params\['w'\]' must hold int or float .* bool"),
        ({"w": "abc"}, TypeError, r"params\['w'\]' must be an array of numbers, got 'abc'"),
        # One rule for arrays in every family (patterns._checks.check_array).
        ({"w": [[1.0], [1.0, 2.0]]}, ValueError, r"params\['w'\]' must be a rectangular array"),
        ({"w": np.zeros((0, 3))}, ValueError, r"params\['w'\] must hold at least one element"),
        ({"w": [1.0, np.nan]}, ValueError, r"params\['w'\] must be finite"),
    ],
)
def test_bad_params(params: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_params(params)


SHAPES = {"W": (3, 2), "b": (2,)}
DTYPES = {"W": np.dtype(np.float64), "b": np.dtype(np.float32)}


def test_gradients_are_cast_to_the_parameters_dtype() -> None:
    checked = check_gradients(
        {"W": np.ones((3, 2), dtype=np.int64), "b": [0.5, 1.0]}, SHAPES, DTYPES
    )
    assert checked["W"].dtype == np.float64
    assert checked["b"].dtype == np.float32
    assert checked["b"].tolist() == [0.5, 1.0]


GOOD = {"W": np.zeros((3, 2)), "b": np.zeros(2)}


@pytest.mark.parametrize(
    ("gradients", "error", "match"),
    [
        ("W", TypeError, r"'gradients' must be a dict of name -> numpy array, got 'W' \(str\)"),
        ({**GOOD, "c": np.zeros(1)}, ValueError, r"unknown key 'c': this server holds 'W', 'b'"),
        ({"W": GOOD["W"]}, ValueError, r"'gradients' is missing key 'b'"),
        (
            {**GOOD, "W": np.zeros((2, 3))},
            ValueError,
            r"gradients\['W'\] must have shape \(3, 2\), got shape \(2, 3\)",
        ),
        ({**GOOD, "b": np.zeros(3)}, ValueError, r"gradients\['b'\] must have shape \(2,\), got"),
        ({**GOOD, "b": ["x", "y"]}, TypeError, r"gradients\['b'\]' must hold int or float"),
        ({**GOOD, "b": [True, False]}, TypeError, r"gradients\['b'\]' must hold .* array of bool"),
        ({**GOOD, "b": [[0.0], [0.0, 1.0]]}, ValueError, r"gradients\['b'\]' must be a rectangul"),
        ({**GOOD, "b": [0.0, np.inf]}, ValueError, r"gradients\['b'\] must be finite, got 1 nan"),
        (
            {**GOOD, "W": np.full((3, 2), np.nan)},
            ValueError,
            r"gradients\['W'\] must be finite, got 6 nan or inf",
        ),
    ],
)
def test_bad_gradients(gradients: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_gradients(gradients, SHAPES, DTYPES)


def test_huge_but_finite_gradients_are_accepted() -> None:
    # Their sum overflows to inf: the quick check must not refuse them.
    huge = np.full(4, np.finfo(np.float64).max)
    assert check_gradients({"w": huge}, {"w": (4,)}, {"w": huge.dtype})["w"] is not None


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (
            ("rmsprop", 0.1, None),
            ValueError,
            r"'optimizer' must be one of 'sgd', 'momentum', 'adam'",
        ),
        ((3, 0.1, None), TypeError, r"'optimizer' must be one of .* got 3 \(int\)"),
        (("sgd", 0, None), ValueError, r"'learning_rate' must be a number > 0, got 0"),
        (("sgd", -0.1, None), ValueError, r"'learning_rate' must be a number > 0, got -0.1"),
        (("sgd", "0.1", None), TypeError, r"'learning_rate' must be a number, got '0.1' \(str\)"),
        (("sgd", 0.1, {"momentum": 0.9}), ValueError, r"which optimizer 'sgd' does not take"),
        (
            ("adam", 0.1, {"beta1": 1.0}),
            ValueError,
            r"optimizer_options\['beta1'\]' must be .* \[0, 1\)",
        ),
        (
            ("adam", 0.1, {"epsilon": 0}),
            ValueError,
            r"optimizer_options\['epsilon'\]' must be .* > 0",
        ),
        (("momentum", 0.1, [0.9]), TypeError, r"'optimizer_options' must be a dict or None"),
    ],
)
def test_bad_optimizer(args: tuple, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        check_optimizer(*args)


# --- the shard plan -------------------------------------------------------------------------


def _covered(plan: list[list[Piece]], shapes: dict[str, tuple[int, ...]]) -> dict[str, list[int]]:
    counts = {name: [0] * math.prod(shape) for name, shape in shapes.items()}
    for shard in plan:
        for piece in shard:
            for i in range(piece.start, piece.stop):
                counts[piece.name][i] += 1
    return counts


CASES = [
    {"W": (64, 10), "b": (10,)},
    {"W": (6, 2)},
    {"w": (1, 7)},  # one row: split between elements
    {"a": (3,), "b": (5, 2), "c": (1,), "d": (2, 2, 2)},
    {"s": ()},  # a scalar
]


@pytest.mark.parametrize(
    "shapes", CASES, ids=lambda s: "-".join(f"{k}{list(v)}" for k, v in s.items())
)
def test_plan_covers_every_element_once_with_no_empty_shard(shapes: dict) -> None:
    total = sum(math.prod(s) for s in shapes.values())
    for shards in range(1, min(total, 12) + 1):
        plan = plan_shards(shapes, shards)
        assert len(plan) == shards
        assert all(plan), f"an empty shard with shards={shards}"
        assert all(c == 1 for counts in _covered(plan, shapes).values() for c in counts)
        assert plan == plan_shards(shapes, shards)  # deterministic


def test_plan_balances_by_size() -> None:
    shapes = {"W": (640, 10), "b": (10,), "c": (3,)}
    for shards in (2, 3, 4, 7):
        loads = [sum(p.size for p in shard) for shard in plan_shards(shapes, shards)]
        fair = sum(loads) / shards
        assert max(loads) <= fair + 10 + 3, loads  # off by at most a row and the small arrays


def test_fewer_arrays_than_shards_split_a_matrix_into_row_ranges() -> None:
    plan = plan_shards({"W": (64, 10)}, 3)
    assert [[(p.start, p.stop) for p in shard] for shard in plan] == [
        [(0, 210)],
        [(210, 420)],
        [(420, 640)],
    ]
    assert all(p.start % 10 == 0 and p.stop % 10 == 0 for shard in plan for p in shard)


def test_arrays_larger_than_the_fair_share_are_split_even_with_enough_arrays() -> None:
    plan = plan_shards({"W": (100, 10), "b": (10,)}, 2)
    assert [sum(p.size for p in shard) for shard in plan] == [510, 500]


def test_plan_refuses_more_shards_than_elements() -> None:
    with pytest.raises(ValueError, match=r"'n_shards' must be an int <= 5 \(the number of param"):
        plan_shards({"a": (2,), "b": (3,)}, 6)


def test_layout_split_and_assemble_round_trip() -> None:
    rng = np.random.default_rng(0)
    params = check_params({"W": rng.normal(size=(7, 3)), "b": rng.normal(size=3)})
    for shards in range(1, 6):
        layout = Layout.plan(params, shards)
        parts = layout.split(params)
        assert [sum(a.size for a in part.values()) for part in parts] == layout.elements
        back = layout.assemble(parts)
        for name, array in params.items():
            assert np.array_equal(back[name], array)
            assert back[name].flags.writeable and not np.shares_memory(back[name], array)
    assert layout.nbytes == [8 * n for n in layout.elements]


# --- optimizers: against hand-computed numpy ---------------------------------------------------

P0 = np.array([0.5, -1.0, 2.0])
GRADS = [np.array([0.1, -0.2, 0.3]), np.array([1.0, 0.0, -1.0]), np.array([-0.5, 0.5, 0.25])]


def _run(optimizer: Optimizer) -> np.ndarray:
    param = P0.copy()
    state = optimizer.init_state(param)
    for t, grad in enumerate(GRADS, start=1):
        optimizer.step(param, grad, state, t)
    return param


def test_sgd_matches_hand_computation() -> None:
    expected = P0 - 0.1 * GRADS[0] - 0.1 * GRADS[1] - 0.1 * GRADS[2]
    assert np.allclose(_run(Optimizer("sgd", 0.1)), expected, rtol=0, atol=1e-15)


def test_momentum_matches_hand_computation() -> None:
    lr, mu = 0.1, 0.8
    v1 = GRADS[0]
    v2 = mu * v1 + GRADS[1]
    v3 = mu * v2 + GRADS[2]
    expected = P0 - lr * v1 - lr * v2 - lr * v3
    got = _run(Optimizer("momentum", lr, {"momentum": mu}))
    assert np.allclose(got, expected, rtol=0, atol=1e-15)


def test_adam_matches_hand_computation() -> None:
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    param, m, v = P0.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        param = param - lr * m_hat / (np.sqrt(v_hat) + eps)
    # The first Adam step moves each element by about lr, whatever the gradient's size.
    assert np.allclose(_run(Optimizer("adam", lr)), param, rtol=0, atol=1e-15)
    first = P0.copy()
    Optimizer("adam", lr).step(first, GRADS[0], Optimizer("adam", lr).init_state(first), 1)
    assert np.allclose(np.abs(first - P0), lr, rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_optimizer_on_pieces_is_bit_identical_to_the_whole_array(name: str, dtype: type) -> None:
    rng = np.random.default_rng(1)
    whole = rng.normal(size=101).astype(dtype)
    grads = [rng.normal(size=101).astype(dtype) for _ in range(5)]
    cuts = [0, 1, 37, 64, 101]  # odd sizes: SIMD and scalar code paths both run
    pieces = [whole[a:b].copy() for a, b in itertools.pairwise(cuts)]
    optimizer = Optimizer(name, 0.05)
    whole_state = optimizer.init_state(whole)
    piece_states = [optimizer.init_state(p) for p in pieces]
    for t, grad in enumerate(grads, start=1):
        optimizer.step(whole, grad, whole_state, t)
        for (a, b), piece, state in zip(
            itertools.pairwise(cuts), pieces, piece_states, strict=True
        ):
            optimizer.step(piece, grad[a:b], state, t)
    assert np.array_equal(np.concatenate(pieces), whole)
    assert np.concatenate(pieces).dtype == dtype


# --- one shard -------------------------------------------------------------------------------

PIECE = Piece("w", 0, 2)


def _shard(max_staleness: int | None = None, optimizer: str = "sgd") -> ShardState:
    return ShardState({PIECE: np.zeros(2)}, Optimizer(optimizer, 0.5), max_staleness)


def _grad(value: float = 1.0) -> dict[Piece, np.ndarray]:
    return {PIECE: np.full(2, value)}


@pytest.mark.parametrize("bound", [0, 1, 3])
def test_pushes_are_dropped_exactly_when_older_than_the_bound(bound: int) -> None:
    state = _shard(max_staleness=bound)
    for _ in range(5):
        assert state.push(_grad())  # versions 1..5, each computed on the newest
    for version in range(6):
        before = (state.version, state.pieces[PIECE].copy(), state.dropped_stale)
        applied = state.push(_grad(), version=version)
        assert applied == (before[0] - version <= bound)
        if not applied:
            assert state.version == before[0] and np.array_equal(state.pieces[PIECE], before[1])
            assert state.dropped_stale == before[2] + 1
    assert state.push(_grad(), version=None)  # no version given: never stale
    assert state.push(_grad(), version=10**6)  # a version from the future: fresh


def test_no_bound_never_drops() -> None:
    state = _shard()
    for _ in range(3):
        state.push(_grad())
    assert state.push(_grad(), version=0)
    assert state.dropped_stale == 0


def test_a_decision_from_the_lead_overrides_the_version() -> None:
    state = _shard(max_staleness=0)
    assert not state.push(_grad(), version=0, decision=False)  # fresh, but the lead said drop
    assert state.version == 0 and state.dropped_stale == 1
    state.push(_grad())
    state.push(_grad())
    assert state.push(_grad(), version=0, decision=True)  # stale here, but the lead applied it
    assert state.version == 3


def test_a_retried_request_is_applied_once_and_answered_the_same() -> None:
    state = _shard(max_staleness=0)
    assert state.push(_grad(), version=0, request=(1, 1))
    assert not state.push(_grad(), version=0, request=(1, 2))  # stale: dropped
    assert state.push(_grad(), version=1, request=(1, 3))
    before = (state.version, state.pieces[PIECE].copy(), state.dropped_stale, state.changes)
    # Ray re-sends in-flight calls after a restart, in any order.
    assert state.push(_grad(), version=0, request=(1, 3))
    assert not state.push(_grad(), version=5, request=(1, 2))  # still dropped, though fresh now
    assert state.push(_grad(), version=0, request=(1, 1))  # still applied, though stale now
    after = (state.version, state.pieces[PIECE], state.dropped_stale, state.changes)
    assert after[0] == before[0] and after[2:] == before[2:]
    assert np.array_equal(after[1], before[1])


def test_a_push_with_other_pieces_is_refused_and_changes_nothing() -> None:
    state = _shard()
    with pytest.raises(ValueError, match="exactly this shard's pieces"):
        state.push({Piece("w", 0, 1): np.ones(1)}, request=(1, 1))
    assert state.version == 0 and state.changes == 0
    assert state.push(_grad(), request=(1, 1))  # the request id was not used up


def test_recent_drops_are_bounded() -> None:
    state = _shard(max_staleness=0)
    state.push(_grad())
    for seq in range(1, RECENT_DROPS + 6):
        state.push(_grad(), version=0, request=(2, seq))
    assert len(state.recent_drops) == RECENT_DROPS


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_snapshot_round_trip_continues_exactly(name: str) -> None:
    rng = np.random.default_rng(2)
    grads = [{PIECE: rng.normal(size=2)} for _ in range(6)]
    straight = _shard(max_staleness=1, optimizer=name)
    for seq, grad in enumerate(grads[:3], start=1):
        straight.push(grad, version=seq - 1, request=(9, seq))
    straight.push(grads[3], version=0, request=(9, 4))  # dropped
    restored = ShardState.from_snapshot(pickle.loads(pickle.dumps(straight.snapshot())))
    assert restored.version == 3 and restored.dropped_stale == 1
    assert not restored.push(grads[3], version=3, request=(9, 4))  # remembered as dropped
    for state in (straight, restored):
        for seq, grad in enumerate(grads[4:], start=5):
            state.push(grad, version=state.version, request=(9, seq))
    assert np.array_equal(straight.pieces[PIECE], restored.pieces[PIECE])
    assert straight.snapshot()["slots"].keys() == restored.snapshot()["slots"].keys()
    with pytest.raises(ValueError, match="unknown parameter-server snapshot format"):
        ShardState.from_snapshot({"format": 99})


# --- the model ------------------------------------------------------------------------------


def test_softmax_regression_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(3)
    model = SoftmaxRegression(4, 3, l2=0.1, seed=5)
    params = model.init_params()
    params["W"] = rng.normal(size=(4, 3))
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, size=20)
    loss, grads = model.loss_and_gradients(params, X, y)
    for name in ("W", "b"):
        numeric = np.zeros_like(params[name])
        for index in np.ndindex(params[name].shape):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name][index] += 1e-6
            numeric[index] = (model.loss_and_gradients(shifted, X, y)[0] - loss) / 1e-6
        assert np.allclose(grads[name], numeric, atol=1e-4)
    assert model.predict(params, X).shape == (20,)
    assert np.allclose(model.predict_proba(params, X).sum(axis=1), 1.0)


def test_softmax_regression_init_is_seeded() -> None:
    a, b = SoftmaxRegression(3, 2, seed=1), SoftmaxRegression(3, 2, seed=1)
    assert np.array_equal(a.init_params()["W"], b.init_params()["W"])
    assert not np.array_equal(
        a.init_params()["W"], SoftmaxRegression(3, 2, seed=2).init_params()["W"]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_features": 0, "n_classes": 2}, ValueError, r"'n_features' must be an int >= 1, got 0"),
        ({"n_features": 2, "n_classes": 1}, ValueError, r"'n_classes' must be an int >= 2, got 1"),
        ({"n_features": 2, "n_classes": 2, "l2": -1}, ValueError, r"'l2' must be a number >= 0"),
        ({"n_features": 2.0, "n_classes": 2}, TypeError, r"'n_features' must be an int, got 2.0"),
    ],
)
def test_softmax_regression_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        SoftmaxRegression(**kwargs)


# --- facade argument checks: nothing reaches Ray ---------------------------------------------


class _Guard:
    """Stands in for a remote actor class: Ray's local option checks run, creation fails."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def options(self, **options: object) -> _Guard:
        self._real.options(**options)  # validates locally, sends nothing
        return self

    def remote(self, *args: object) -> None:
        raise AssertionError("a bad argument reached Ray")


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an actor would be created or an object put into Ray."""
    monkeypatch.setattr(_server, "_RemoteShardActor", _Guard(_server._RemoteShardActor))
    monkeypatch.setattr(_worker, "_RemoteWorkerActor", _Guard(_worker._RemoteWorkerActor))

    def no_put(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bad argument reached ray.put")

    monkeypatch.setattr(_worker.ray, "put", no_put)


PARAMS = {"W": np.zeros((2, 2)), "b": np.zeros(2)}

BAD_SERVER_ARGS = [
    ({"params": {}}, ValueError, r"'params' must hold at least one array"),
    ({"params": None}, TypeError, r"'params' must be a dict"),
    ({"n_shards": 0}, ValueError, r"'n_shards' must be an int >= 1, got 0"),
    ({"n_shards": "2"}, TypeError, r"'n_shards' must be an int, got '2' \(str\)"),
    (
        {"n_shards": 7},
        ValueError,
        r"'n_shards' must be an int <= 6 \(the number of parameter elements\)",
    ),
    ({"optimizer": "lbfgs"}, ValueError, r"'optimizer' must be one of 'sgd', 'momentum', 'adam'"),
    ({"learning_rate": 0}, ValueError, r"'learning_rate' must be a number > 0, got 0"),
    ({"learning_rate": -1.0}, ValueError, r"'learning_rate' must be a number > 0, got -1.0"),
    ({"max_staleness": -1}, ValueError, r"'max_staleness' must be an int >= 0, got -1"),
    ({"max_staleness": 1.5}, TypeError, r"'max_staleness' must be an int, got 1.5"),
    ({"store": "/tmp/x"}, TypeError, r"'store' must be a CheckpointStore, got the path"),
    ({"key": "k"}, ValueError, r"'key' only applies to a parameter server with a 'store'"),
    ({"checkpoint_every": 0}, ValueError, r"'checkpoint_every' must be an int >= 1, got 0"),
    ({"actor_options": {"nmae": "x"}}, ValueError, r"refused by Ray: Invalid option keyword"),
    (
        {"name": "x", "actor_options": {"get_if_exists": True}},
        ValueError,
        r"always creates its shards \(use ParameterServer.attach",
    ),
    (
        {"actor_options": {"name": "x"}},
        ValueError,
        r"'actor_options' may not set 'name': pass name='x' to ParameterServer",
    ),
    ({"name": ""}, ValueError, r"'name' must be a non-empty str"),
    ({"namespace": "ns"}, ValueError, r"'namespace' only applies to a named ParameterServer"),
    ({"timeout": 0}, ValueError, r"'timeout' must be a finite number > 0, got 0.0"),
    ({"timeout": "5"}, TypeError, r"'timeout' must be a number of seconds"),
    ({"optimizer_options": {"beta1": 0.5}}, ValueError, r"which optimizer 'sgd' does not take"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_SERVER_ARGS)
def test_server_bad_arguments(
    no_ray: None, kwargs: dict, error: type[Exception], match: str
) -> None:
    kwargs = {"params": PARAMS, **kwargs}
    with pytest.raises(error, match=match):
        ParameterServer(**kwargs)


def test_server_store_args_are_checked_together(no_ray: None, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'key' must be a non-empty str"):
        ParameterServer(PARAMS, store=DirectoryStore(tmp_path), key="")


MODEL = SoftmaxRegression(2, 2)
X2, Y2 = np.eye(2), np.array([0, 1])


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((object(), X2, Y2), {}, TypeError, r"'model' must have init_params, loss_and_gradients"),
        (
            (MODEL, X2, Y2[:1]),
            {},
            ValueError,
            r"'X' and 'y' must have the same length, got 2 and 1",
        ),
        ((MODEL, X2[:0], Y2[:0]), {}, ValueError, r"must hold at least one sample, got 0"),
        ((MODEL, np.ones(2), Y2), {}, ValueError, r"'X' must be a 2-D array, got 1-D"),
        (
            (MODEL, np.array([["a", "b"]] * 2), Y2),
            {},
            TypeError,
            r"'X' must hold int or float numbers, got an array of dtype <U1",
        ),
        # One rule for arrays in every family: bool refused, a ragged list a ValueError.
        ((MODEL, X2 > 0, Y2), {}, TypeError, r"'X' must hold int or float .* array of bool"),
        ((MODEL, [[1.0], [1.0, 2.0]], Y2), {}, ValueError, r"'X' must be a rectangular array"),
        ((MODEL, X2, Y2 > 0), {}, TypeError, r"'y' must hold int or float .* array of bool"),
        ((MODEL, "X", Y2), {}, TypeError, r"'X' must be an array of numbers, got 'X' \(str\)"),
        ((MODEL, X2 * np.nan, Y2), {}, ValueError, r"'X' must hold finite numbers, got .*nan"),
        ((MODEL, X2, np.eye(2)), {}, ValueError, r"'y' must be a 1-D array, got 2-D"),
        ((MODEL, X2, Y2), {"batch_size": 0}, ValueError, r"'batch_size' must be an int >= 1"),
        ((MODEL, X2, Y2), {"seed": -1}, ValueError, r"'seed' must be an int >= 0"),
        ((MODEL, X2, Y2), {"delay_s": -0.5}, ValueError, r"'delay_s' must be a number >= 0"),
        ((MODEL, X2, Y2), {"actor_options": 3}, TypeError, r"'actor_options' must be a dict"),
        (
            (MODEL, X2, Y2),
            {"actor_options": {"namespace": "n"}},
            ValueError,
            r"'actor_options' may not set 'namespace': pass namespace='n' to GradientWorker",
        ),
        ((MODEL, X2, Y2), {"timeout": -1}, ValueError, r"'timeout' must be a finite number > 0"),
    ],
)
def test_worker_bad_arguments(
    no_ray: None, args: tuple, kwargs: dict, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        GradientWorker(*args, **kwargs)


def _unstarted_facades() -> tuple[ParameterServer, GradientWorker]:
    """Facades with no actor behind them: train must refuse bad arguments before using them."""
    layout = Layout.plan(check_params(PARAMS), 1)
    server = rebuild(ParameterServer, [], layout, None, None, None, 60.0, False)
    config = {"batch_size": None, "seed": 0, "delay_s": 0.0}
    worker = rebuild(GradientWorker, None, MODEL, None, 2, config, None, None, None, 60.0)
    return server, worker


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"server": "ps"}, TypeError, r"'server' must be a ParameterServer, got 'ps' \(str\)"),
        ({"workers": []}, ValueError, r"'workers' must hold at least one GradientWorker"),
        ({"workers": "w"}, TypeError, r"'workers' must be a list of GradientWorker"),
        ({"workers": [object()]}, TypeError, r"'workers' must hold GradientWorker objects"),
        (
            {"mode": "hogwild"},
            ValueError,
            r"'mode' must be one of 'sync', 'async', 'ssp', got 'hogwild'",
        ),
        ({"steps": 0}, ValueError, r"'steps' must be an int >= 1, got 0"),
        ({"mode": "ssp"}, ValueError, r"mode='ssp' needs 'staleness'"),
        ({"mode": "ssp", "staleness": -1}, ValueError, r"'staleness' must be an int >= 0, got -1"),
        ({"mode": "async", "staleness": 2}, ValueError, r"'staleness' only applies to mode='ssp'"),
        ({"eval_data": (X2, Y2[:1])}, ValueError, r"'X' and 'y' must have the same length"),
        ({"eval_data": X2}, TypeError, r"'eval_data' must be a pair \(X, y\)"),
        ({"eval_every": 5}, ValueError, r"'eval_every' only applies with 'eval_data'"),
        ({"eval_data": (X2, Y2), "eval_every": 0}, ValueError, r"'eval_every' must be an int >= 1"),
        ({"timeout": 0}, ValueError, r"'timeout' must be a finite number > 0"),
        ({"budget_s": 0}, ValueError, r"'budget_s' must be a finite number > 0, got 0.0"),
        ({"budget_s": "1"}, TypeError, r"'budget_s' must be a number of seconds"),
        ({"eval_data": (X2 > 0, Y2)}, TypeError, r"'X' must hold int or float .* array of bool"),
    ],
)
def test_train_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    server, worker = _unstarted_facades()
    call = {"server": server, "workers": [worker], "steps": 3, **kwargs}
    with pytest.raises(error, match=match):
        train(**call)


# --- ParameterServerClassifier: bad hyperparameters and data, refused before any actor --------

X_CLF, Y_CLF = np.array([[0.0, 1.0], [1.0, 0.0]] * 4), np.array([0, 1] * 4)

BAD_CLASSIFIER_ARGS = [
    ({"learning_rate": 0}, ValueError, r"'learning_rate' must be a number > 0, got 0"),
    ({"learning_rate": -0.1}, ValueError, r"'learning_rate' must be a number > 0, got -0.1"),
    ({"mode": "hogwild"}, ValueError, r"'mode' must be one of 'sync', 'async', 'ssp', got 'hog"),
    ({"optimizer": "lbfgs"}, ValueError, r"'optimizer' must be one of .*got 'lbfgs'"),
    ({"steps": 0}, ValueError, r"'steps' must be an int >= 1, got 0"),
    ({"staleness": -1}, ValueError, r"'staleness' must be an int >= 0, got -1"),
    ({"n_workers": 0}, ValueError, r"'n_workers' must be an int >= 1, got 0"),
    ({"n_workers": 9}, ValueError, r"'n_workers' must be an int <= 8, got 9"),
    ({"n_shards": 0}, ValueError, r"'n_shards' must be an int >= 1, got 0"),
    ({"batch_size": 0}, ValueError, r"'batch_size' must be an int >= 1, got 0"),
    ({"l2": -1.0}, ValueError, r"'l2' must be a number >= 0"),
    ({"timeout": 0}, ValueError, r"'timeout' must be a finite number > 0"),
    ({"budget_s": -1}, ValueError, r"'budget_s' must be a finite number > 0"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    BAD_CLASSIFIER_ARGS,
    ids=[next(iter(kw)) + "=" + repr(next(iter(kw.values()))) for kw, _, _ in BAD_CLASSIFIER_ARGS],
)
def test_classifier_bad_hyperparameters_fail_at_fit_before_any_actor(
    no_ray: None, kwargs: dict, error: type[Exception], match: str
) -> None:
    from patterns import ParameterServerClassifier

    clf = ParameterServerClassifier(**kwargs)  # scikit-learn's rule: __init__ checks nothing
    with pytest.raises(error, match=match):
        clf.fit(X_CLF, Y_CLF)
    assert not hasattr(clf, "coef_")


def test_classifier_names_x_and_y_when_their_lengths_differ(no_ray: None) -> None:
    from patterns import ParameterServerClassifier

    with pytest.raises(ValueError, match=r"'X' and 'y' .* got 8 rows in X and 7 in y"):
        ParameterServerClassifier().fit(X_CLF, Y_CLF[:7])


def test_classifier_init_does_no_work_and_clones() -> None:
    from sklearn.base import clone
    from sklearn.utils.estimator_checks import check_no_attributes_set_in_init

    from patterns import ParameterServerClassifier

    clf = ParameterServerClassifier(mode="ssp", staleness=1, steps=7, random_state=3)
    check_no_attributes_set_in_init("ParameterServerClassifier", clf)
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == clf.get_params()
    assert twin.set_params(steps=9, optimizer="adam") is twin
    assert (twin.steps, twin.optimizer, clf.steps) == (9, "adam", 7)
    with pytest.raises(ValueError, match="learning_rat"):
        twin.set_params(learning_rat=0.1)  # a misspelt name is refused
