"""The work the engine benchmarks run: plain Python, numpy and scikit-learn, no engine.

Every engine calls the same functions from this module, so a difference in time
is the engine's doing. Spark executors and Ray workers cannot import the
``benchmarks`` package: ``benchmarks/conftest.py`` registers it with each
engine's cloudpickle, so these functions travel with the job by value, as a
notebook's functions would.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

# --- workload 1: sleep, then double ------------------------------------------------------


def double_slowly(x: int, pause_s: float) -> int:
    """Wait ``pause_s`` seconds (standing in for I/O or a remote call), then double ``x``.

    Args:
        x: The input.
        pause_s: Seconds to sleep.

    Returns:
        ``2 * x``.
    """
    time.sleep(pause_s)
    return 2 * x


# --- workload 2: CPU-bound pure Python -----------------------------------------------------


def collatz_steps(first: int, count: int) -> int:
    """Total Collatz steps of ``count`` numbers from ``first``: pure Python, holds the GIL.

    Args:
        first: The first number (at least 1).
        count: How many consecutive numbers to walk.

    Returns:
        The sum over the numbers of the steps each takes to reach 1.
    """
    total = 0
    for start in range(first, first + count):
        n = start
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            total += 1
    return total


class Runner:
    """Runs one function on whatever it is sent: a stateless worker of a Ray actor pool.

    Args:
        fn: The function to run, e.g. ``functools.partial(double_slowly, pause_s=1.0)``.

    Examples:
        >>> Runner(abs).run(-3)
        3
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def run(self, x: Any) -> Any:
        """Call the function on ``x``."""
        return self.fn(x)

    def ready(self) -> bool:
        """Answer once constructed (callers wait on it)."""
        return True


# --- workload 3 (and 5): a model of S MB applied to batches --------------------------------

FEATURES = 4
"""Feature columns of an inference batch; column 0 of a batch is an integer key."""

# Pickled bytes per training point of the k-NN model (4 float64 features, an int64
# label, the k-d tree's int64 index and its node data), measured; the benchmarks
# record the real size of each model they build.
_KNN_BYTES_PER_POINT = 54


def make_batches(batches: int, rows: int, seed: int = 7) -> list[np.ndarray]:
    """Inference inputs: ``batches`` arrays of ``rows`` rows, a key column then features.

    Args:
        batches: Number of batches.
        rows: Rows per batch.
        seed: Random seed.

    Returns:
        A list of float64 arrays of shape ``(rows, 1 + FEATURES)``.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        keys = rng.integers(0, 2**31, size=(rows, 1)).astype(np.float64)
        out.append(np.hstack([keys, rng.random((rows, FEATURES))]))
    return out


def make_numpy_model(size_mb: float, seed: int = 11) -> np.ndarray:
    """An embedding table of ``size_mb`` MB: one float64 row of weights per key bucket.

    Args:
        size_mb: Size of the table in MiB.
        seed: Random seed.

    Returns:
        A float64 array of shape ``(buckets, FEATURES)``.
    """
    buckets = max(1, int(size_mb * 2**20) // (8 * FEATURES))
    return np.random.default_rng(seed).standard_normal((buckets, FEATURES))


def make_sklearn_model(size_mb: float, seed: int = 13) -> Any:
    """A fitted k-nearest-neighbours classifier of about ``size_mb`` MB when pickled.

    Its size is its training set, so it grows with ``size_mb`` while a prediction
    stays cheap (a k-d tree query).

    Args:
        size_mb: Target pickled size in MiB.
        seed: Random seed.

    Returns:
        A fitted ``sklearn.neighbors.KNeighborsClassifier``.
    """
    from sklearn.neighbors import KNeighborsClassifier

    points = max(16, int(size_mb * 2**20) // _KNN_BYTES_PER_POINT)
    rng = np.random.default_rng(seed)
    features = rng.random((points, FEATURES))
    labels = (features.sum(axis=1) * 2.5).astype(np.int64) % 5
    return KNeighborsClassifier(n_neighbors=5, algorithm="kd_tree").fit(features, labels)


def make_model(kind: str, size_mb: float) -> Any:
    """The model of workload 3 by kind: ``"numpy"`` or ``"sklearn"``."""
    if kind == "numpy":
        return make_numpy_model(size_mb)
    if kind == "sklearn":
        return make_sklearn_model(size_mb)
    msg = f"'kind' must be 'numpy' or 'sklearn', got {kind!r}"
    raise ValueError(msg)


def predict(model: Any, batch: np.ndarray) -> np.ndarray:
    """Score one batch: the key's weights dotted with the features, or a k-NN label.

    Args:
        model: An embedding table from :func:`make_numpy_model` or a fitted classifier.
        batch: An array from :func:`make_batches` (key column, then features).

    Returns:
        One float64 score per row.
    """
    keys = batch[:, 0].astype(np.int64)
    features = np.ascontiguousarray(batch[:, 1:], dtype=np.float64)
    if isinstance(model, np.ndarray):
        return (model[keys % len(model)] * features).sum(axis=1)
    return model.predict(features).astype(np.float64)


def pickled_mb(obj: Any) -> float:
    """Size of ``obj`` pickled with protocol 5, in MiB."""
    return len(pickle.dumps(obj, protocol=5)) / 2**20


def save_model(model: Any, path: str) -> None:
    """Write ``model`` to ``path`` (pickle protocol 5), as a model registry would hold it."""
    with open(path, "wb") as handle:
        pickle.dump(model, handle, protocol=5)


def load_model(path: str) -> Any:
    """Read a model written by :func:`save_model`."""
    with open(path, "rb") as handle:
        return pickle.load(handle)


class ModelServer:
    """Loads a model once and scores batches with it (a Ray actor in the benchmarks).

    Args:
        path: Where :func:`save_model` wrote the model.

    Examples:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "m.pkl")
        >>> save_model(make_numpy_model(0.01), path)
        >>> ModelServer(path).predict(make_batches(1, 3)[0]).shape
        (3,)
    """

    def __init__(self, path: str) -> None:
        self.model = load_model(path)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Score one batch with the model held in memory."""
        return predict(self.model, batch)

    def ready(self) -> bool:
        """Answer once the model is loaded (callers wait on it)."""
        return True


# --- workload 4: online learning, predict -> feedback -> partial_fit ------------------------


@dataclass(frozen=True)
class StreamSpec:
    """The online-learning loop's sizes.

    Attributes:
        cycles: Predict/feedback/learn cycles per run.
        rows: Contexts per cycle.
        features: Hashed feature space (the model holds ``classes x features`` weights).
        classes: Actions the model chooses between.
        nonzeros: Non-zero features per context.
        seed: Random seed of the environment.
    """

    cycles: int
    rows: int = 64
    features: int = 2**14
    classes: int = 8
    nonzeros: int = 20
    seed: int = 5


def make_stream(spec: StreamSpec) -> list[tuple[Any, np.ndarray]]:
    """The environment's contexts and, as feedback, the right action for each.

    A hidden linear rule decides the right action; the learner only sees it
    through the feedback, one cycle after it acted.

    Args:
        spec: The loop's sizes.

    Returns:
        ``cycles + 1`` pairs ``(contexts, right_actions)``: sparse CSR contexts
        and int64 actions. The first pair initialises the learner.
    """
    from scipy import sparse

    rng = np.random.default_rng(spec.seed)
    hidden = rng.standard_normal((spec.features, spec.classes))
    stream = []
    for _ in range(spec.cycles + 1):
        rows = np.repeat(np.arange(spec.rows), spec.nonzeros)
        cols = rng.integers(0, spec.features, size=spec.rows * spec.nonzeros)
        values = rng.standard_normal(spec.rows * spec.nonzeros)
        contexts = sparse.csr_matrix((values, (rows, cols)), shape=(spec.rows, spec.features))
        right = np.asarray(contexts @ hidden).argmax(axis=1).astype(np.int64)
        stream.append((contexts, right))
    return stream


def new_learner(spec: StreamSpec, first: tuple[Any, np.ndarray]) -> Any:
    """An ``SGDClassifier`` that has seen the first batch (so it can predict)."""
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(random_state=0, shuffle=False)
    model.partial_fit(first[0], first[1], classes=np.arange(spec.classes))
    return model


def choose(model: Any, contexts: Any) -> np.ndarray:
    """The model's action for each context."""
    return np.asarray(model.predict(contexts), dtype=np.int64)


def learn(model: Any, contexts: Any, right: np.ndarray) -> Any:
    """One ``partial_fit`` step on the feedback; returns the updated model."""
    model.partial_fit(contexts, right)
    return model


def learn_copy(model: Any, contexts: Any, right: np.ndarray) -> Any:
    """:func:`learn` on a copy: a task must not change its input (Ray's is read-only)."""
    import copy

    return learn(copy.deepcopy(model), contexts, right)


def to_arrays(contexts: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split CSR contexts into per-row index and value arrays (a DataFrame's array columns)."""
    indices, values = [], []
    for i in range(contexts.shape[0]):
        row = contexts.getrow(i)
        indices.append(row.indices.astype(np.int32))
        values.append(row.data.astype(np.float64))
    return indices, values


def from_arrays(indices: Any, values: Any, features: int) -> Any:
    """Rebuild CSR contexts from per-row index and value arrays."""
    from scipy import sparse

    lengths = [len(ix) for ix in indices]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat_ix = np.concatenate([np.asarray(ix, dtype=np.int32) for ix in indices])
    flat_values = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    return sparse.csr_matrix((flat_values, flat_ix, indptr), shape=(len(indices), features))


class OnlineAgent:
    """A learner kept in memory between calls: a Dask actor or a Ray actor in the benchmarks.

    Args:
        model_bytes: The starting model, pickled.

    Examples:
        >>> spec = StreamSpec(cycles=1, features=64)
        >>> stream = make_stream(spec)
        >>> agent = OnlineAgent(pickle.dumps(new_learner(spec, stream[0])))
        >>> agent.act(stream[1][0]).shape
        (64,)
    """

    def __init__(self, model_bytes: bytes) -> None:
        self.model = pickle.loads(model_bytes)

    def ready(self) -> bool:
        """Answer once constructed (callers wait on it)."""
        return True

    def reset(self, model_bytes: bytes) -> bool:
        """Start again from ``model_bytes`` (between benchmark rounds)."""
        self.model = pickle.loads(model_bytes)
        return True

    def act(self, contexts: Any) -> np.ndarray:
        """Choose an action for each context."""
        return choose(self.model, contexts)

    def feedback(self, contexts: Any, right: np.ndarray) -> int:
        """Learn from the right actions; returns the number of examples learned."""
        learn(self.model, contexts, right)
        return int(right.shape[0])
