"""Models: the `GradientModel` protocol, `SoftmaxRegression`, and the checks of models and data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from patterns._checks import check_array, check_int, check_number, describe

__all__ = ["GradientModel", "SoftmaxRegression", "check_data", "check_model"]


@runtime_checkable
class GradientModel(Protocol):
    """What `GradientWorker` and `train` need from a model: any object with these methods.

    The model object holds no parameters: they live in the `ParameterServer`, and
    each method receives them as a dict of arrays. Keep it small and picklable; it is
    sent to every worker.

    Examples:
        >>> isinstance(SoftmaxRegression(4, 3), GradientModel)
        True
    """

    def init_params(self) -> dict[str, np.ndarray]:
        """The initial parameters: name -> array."""
        ...

    def loss_and_gradients(
        self, params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The loss on ``(X, y)`` and its gradient for each parameter array."""
        ...

    def predict(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Predicted labels for the rows of ``X``."""
        ...


class SoftmaxRegression:
    """Multinomial logistic regression in numpy: ``softmax(X @ W + b)``.

    Parameters ``W`` (``n_features x n_classes``) and ``b`` (``n_classes``); the loss
    is the mean cross-entropy plus ``l2 / 2 * ||W||^2``. Labels are class indices
    ``0 .. n_classes - 1``. It implements the `GradientModel` protocol.

    Args:
        n_features: Columns of ``X``.
        n_classes: Number of classes (>= 2).
        l2: L2 penalty on ``W`` (>= 0).
        seed: Seed of the small random initial ``W`` (``b`` starts at 0).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_features < 1``, ``n_classes < 2`` or ``l2 < 0``.

    Examples:
        >>> import numpy as np
        >>> model = SoftmaxRegression(n_features=2, n_classes=2)
        >>> params = {"W": np.array([[1.0, -1.0], [0.0, 0.0]]), "b": np.zeros(2)}
        >>> model.predict(params, np.array([[3.0, 0.0], [-3.0, 0.0]])).tolist()
        [0, 1]
        >>> loss, grads = model.loss_and_gradients(params, np.array([[3.0, 0.0]]), np.array([0]))
        >>> round(loss, 4), grads["W"].shape
        (0.0025, (2, 2))
    """

    def __init__(self, n_features: int, n_classes: int, *, l2: float = 0.0, seed: int = 0):
        self.n_features = check_int("n_features", n_features, minimum=1)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.l2 = check_number("l2", l2, minimum=0.0)
        self.seed = check_int("seed", seed, minimum=0)

    def __repr__(self) -> str:
        return (
            f"SoftmaxRegression(n_features={self.n_features}, n_classes={self.n_classes}, "
            f"l2={self.l2:g}, seed={self.seed})"
        )

    def init_params(self) -> dict[str, np.ndarray]:
        """Small random ``W`` (normal, scale 0.01, from ``seed``) and zero ``b``."""
        rng = np.random.default_rng(self.seed)
        return {
            "W": rng.normal(0.0, 0.01, size=(self.n_features, self.n_classes)),
            "b": np.zeros(self.n_classes),
        }

    def predict_proba(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per sample."""
        logits = np.asarray(X, dtype=np.float64) @ params["W"] + params["b"]
        logits -= logits.max(axis=1, keepdims=True)  # exp() of the largest logit is 1
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return np.asarray(probs)

    def loss_and_gradients(
        self, params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy (+ L2) on ``(X, y)`` and its gradients for ``W`` and ``b``."""
        X = np.asarray(X, dtype=np.float64)
        rows = np.arange(len(y))
        probs = self.predict_proba(params, X)
        loss = float(-np.log(np.maximum(probs[rows, y], 1e-300)).mean())
        probs[rows, y] -= 1.0  # d(loss)/d(logits), times n
        probs /= len(y)
        grad_w = X.T @ probs
        if self.l2:
            loss += 0.5 * self.l2 * float(np.sum(params["W"] * params["W"]))
            grad_w += self.l2 * params["W"]
        return loss, {"W": grad_w, "b": probs.sum(axis=0)}

    def predict(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """The most likely class index of each row of ``X``."""
        logits = np.asarray(X, dtype=np.float64) @ params["W"] + params["b"]
        return np.asarray(np.argmax(logits, axis=1))


def check_model(model: object) -> GradientModel:
    """``model`` if it has the three `GradientModel` methods, else a TypeError naming them."""
    missing = [
        name
        for name in ("init_params", "loss_and_gradients", "predict")
        if not callable(getattr(model, name, None))
    ]
    if missing:
        msg = (
            f"'model' must have init_params, loss_and_gradients and predict "
            f"(the GradientModel protocol); {describe(model)} lacks {', '.join(missing)}"
        )
        raise TypeError(msg)
    return model  # type: ignore[return-value]


def check_data(X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a 2-D float array and ``y`` as a 1-D array of the same length.

    Both follow the library's one rule for arrays (`patterns._checks.check_array`: bool
    refused, a ragged list a ValueError, finite values). ``y`` keeps its own numeric
    dtype (class indices stay integers).

    Examples:
        >>> X, y = check_data([[1, 2], [3, 4]], [0, 1])
        >>> X.dtype, y.dtype.kind
        (dtype('float64'), 'i')
    """
    X_array = check_array("X", X, ndim=2)
    check_array("y", y, ndim=1)
    y_array = y if isinstance(y, np.ndarray) else np.asarray(y)
    if len(X_array) != len(y_array):
        msg = f"'X' and 'y' must have the same length, got {len(X_array)} and {len(y_array)}"
        raise ValueError(msg)
    if len(X_array) == 0:
        msg = "'X' and 'y' must hold at least one sample, got 0"
        raise ValueError(msg)
    return X_array, y_array
