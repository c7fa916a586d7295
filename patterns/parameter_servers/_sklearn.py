"""`ParameterServerClassifier`: a scikit-learn estimator trained through a parameter server.

This module imports scikit-learn, which takes seconds; `patterns` and
`patterns.parameter_servers` load it only when the classifier is first asked for, so
the actor processes (which import `patterns` to run a shard or a worker) never do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import ray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from patterns._calls import DEFAULT_TIMEOUT_S, check_timeout
from patterns._checkpointer import check_store, member_key
from patterns._checks import check_choice, check_int, check_number, check_positive_float
from patterns._sharded import shard_member
from patterns.parameter_servers._history import TrainingHistory
from patterns.parameter_servers._loop import MODES, train
from patterns.parameter_servers._models import SoftmaxRegression
from patterns.parameter_servers._server import ParameterServer
from patterns.parameter_servers._state import OPTIMIZERS
from patterns.parameter_servers._worker import GradientWorker

__all__ = ["ParameterServerClassifier"]


def _close_all(facades: list[Any]) -> list[Exception]:
    """Close every facade (each one, whatever the others do); the errors, in order."""
    errors = []
    for facade in facades:
        try:
            facade.close()
        except Exception as error:
            errors.append(error)
    return errors


def _check_same_length(X: Any, y: Any) -> None:
    """Name both arguments and both lengths (scikit-learn's own message names neither)."""
    try:
        n_x, n_y = len(X), len(y)
    except TypeError:
        return  # not sized: scikit-learn's validation says what is wrong
    if n_x != n_y:
        msg = f"'X' and 'y' must have the same number of rows, got {n_x} rows in X and {n_y} in y"
        raise ValueError(msg)


class ParameterServerClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A scikit-learn classifier (softmax regression) trained on Ray through a parameter server.

    ``fit(X, y)`` splits the rows over ``n_workers`` `GradientWorker` actors, keeps the
    weights of a `SoftmaxRegression` in a `ParameterServer` with ``n_shards`` shards,
    runs `train` in ``mode``, copies the learned weights into ``coef_`` and
    ``intercept_``, and closes every actor it made, waiting until Ray reports them
    dead (also when fitting fails). It trains on the Ray cluster this process is
    connected to. Every wait inside is bounded by ``timeout``, and the whole fit by
    ``budget_s`` when it is given (see `train`).

    A scikit-learn estimator like any other: hyperparameters are stored by
    ``__init__`` as given and checked by ``fit``; ``get_params``, ``set_params``,
    ``clone``, pipelines and grid searches work; ``score`` is the accuracy. The
    defaults train well on small, standardised tabular data (scale the features, e.g.
    with ``StandardScaler``).

    Args:
        n_workers: Gradient workers (each gets about ``1 / n_workers`` of the rows).
        n_shards: Server shards.
        mode: ``"sync"``, ``"async"`` or ``"ssp"`` (see `train`).
        staleness: The bound of ``mode="ssp"`` (ignored by the other modes).
        optimizer: ``"sgd"``, ``"momentum"`` or ``"adam"``.
        learning_rate: The optimizer's step size.
        steps: Gradient steps per worker.
        batch_size: Rows per gradient on each worker (None: its whole partition).
        l2: L2 penalty on the weights.
        random_state: Seeds the row split, the initial weights and the minibatches.
        store: A checkpoint store for the server's shards (see `ParameterServer`);
            its snapshots are deleted after the fit when the store has ``delete``.
        timeout: Seconds any one wait of the fit may take (a worker's gradients, a
            pull, a push; see `train`); None: no bound.
        budget_s: Seconds the whole training may take, actors' start included (None:
            no overall bound).

    Attributes:
        classes_: The class labels, in the order of the columns of `predict_proba`.
        coef_: Weights, one row per class (``n_classes x n_features``, also for two
            classes).
        intercept_: One bias per class.
        history_: The `TrainingHistory` of the fit.
        n_features_in_: Number of features seen in ``fit``.

    Examples:
        >>> import numpy as np
        >>> X = np.array([[0.0, 1.0], [1.0, 0.0]] * 20); y = np.array(["a", "b"] * 20)
        >>> clf = ParameterServerClassifier(steps=20, random_state=0).fit(X, y)
        >>> clf.predict([[0.0, 1.0], [1.0, 0.0]]).tolist(), clf.score(X, y)
        (['a', 'b'], 1.0)
        >>> clf.coef_.shape, clf.history_.updates
        ((2, 2), 20)
    """

    def __init__(
        self,
        *,
        n_workers: int = 2,
        n_shards: int = 1,
        mode: str = "sync",
        staleness: int = 2,
        optimizer: str = "sgd",
        learning_rate: float = 0.1,
        steps: int = 200,
        batch_size: int | None = None,
        l2: float = 0.0,
        random_state: int | np.random.RandomState | None = None,
        store: Any = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        budget_s: float | None = None,
    ) -> None:
        self.n_workers = n_workers
        self.n_shards = n_shards
        self.mode = mode
        self.staleness = staleness
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.steps = steps
        self.batch_size = batch_size
        self.l2 = l2
        self.random_state = random_state
        self.store = store
        self.timeout = timeout
        self.budget_s = budget_s

    def _check_hyperparameters(self, n_samples: int) -> None:
        check_int("n_workers", self.n_workers, minimum=1, maximum=n_samples)
        check_int("n_shards", self.n_shards, minimum=1)
        check_choice("mode", self.mode, MODES)
        check_int("staleness", self.staleness, minimum=0)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("learning_rate", self.learning_rate, positive=True)
        check_int("steps", self.steps, minimum=1)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, minimum=1)
        check_number("l2", self.l2, minimum=0.0)
        check_store(self.store)
        check_timeout(self.timeout)
        if self.budget_s is not None:
            check_positive_float("budget_s", self.budget_s)

    def fit(self, X: Any, y: Any) -> ParameterServerClassifier:
        """Train on ``(X, y)`` on the connected Ray cluster; every actor is stopped after.

        Args:
            X: Features, ``n_samples x n_features`` (numeric, finite).
            y: Class labels, ``n_samples`` of them (at least two classes).

        Returns:
            The fitted classifier (``self``).

        Raises:
            ValueError: If a hyperparameter is out of range (``n_workers`` larger than
                the number of rows, ``learning_rate <= 0``, an unknown ``mode``, ...),
                ``X`` and ``y`` differ in length, or they are not a valid
                classification problem. Raised before any actor starts.
            RuntimeError: If this process is not connected to a Ray cluster.
            patterns.errors.PatternError: If training failed on the cluster: the budget
                ran out or a shard did not answer in time
                (`patterns.errors.CallTimeoutError`), a worker kept failing, ... (see
                `train`).
        """
        _check_same_length(X, y)
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            msg = f"'y' must hold at least two classes, got only {classes[0]!r}"
            raise ValueError(msg)
        self._check_hyperparameters(len(X))
        if not ray.is_initialized():
            msg = (
                "ParameterServerClassifier.fit trains on a Ray cluster: connect to one first "
                "(ray.init(), or start launcher.RayOnSpark)"
            )
            raise RuntimeError(msg)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        parts = np.array_split(rng.permutation(len(X)), self.n_workers)
        model = SoftmaxRegression(X.shape[1], len(classes), l2=self.l2, seed=seed)
        server: ParameterServer | None = None
        workers: list[GradientWorker] = []
        timeout = self.timeout
        try:
            server = ParameterServer(
                model.init_params(),
                n_shards=self.n_shards,
                optimizer=self.optimizer,
                learning_rate=self.learning_rate,
                store=self.store,
                timeout=timeout,
            )
            for i, rows in enumerate(parts):  # one by one: each is closed if a later one fails
                workers.append(
                    GradientWorker(
                        model,
                        X[rows],
                        encoded[rows],
                        batch_size=self.batch_size,
                        seed=seed + i,
                        timeout=timeout,
                    )
                )
            history = train(
                server,
                workers,
                mode=self.mode,
                steps=self.steps,
                staleness=self.staleness if self.mode == "ssp" else None,
                budget_s=self.budget_s,
            )
            params = server.pull()
        except BaseException:
            # Every actor is closed; the fit's own error is the one raised.
            _close_all([*workers, *([server] if server is not None else [])])
            if server is not None:
                self._forget_checkpoints(server)
            raise
        errors = _close_all([*workers, server])
        self._forget_checkpoints(server)
        if errors:
            raise errors[0]
        self.classes_ = classes
        self.coef_ = np.ascontiguousarray(params["W"].T)
        self.intercept_ = params["b"].copy()
        self.history_: TrainingHistory = history
        return self

    def _forget_checkpoints(self, server: ParameterServer) -> None:
        delete = getattr(self.store, "delete", None)
        if server.key is None or not callable(delete):
            return
        for index in range(server.n_shards):
            try:
                delete(member_key(server.key, shard_member(index, server.n_shards)))
            except Exception:  # best effort: the fit's result does not depend on it
                pass

    def decision_function(self, X: Any) -> np.ndarray:
        """The logits ``X @ coef_.T + intercept_``, one column per class."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.asarray(X @ self.coef_.T + self.intercept_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        logits = self.decision_function(X)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return np.asarray(probs)

    def predict(self, X: Any) -> np.ndarray:
        """The most likely class label of each row of ``X``."""
        return np.asarray(self.classes_[np.argmax(self.decision_function(X), axis=1)])
