"""scikit-learn's digits (shipped with it: nothing downloaded), standardised, one fixed split.

The parameter-server tests train on it and compare with `LogisticRegression` fitted on
the same split. Computed once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Digits:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    baseline: float  # LogisticRegression's test accuracy on this split

    @property
    def bar(self) -> float:
        """The acceptance bar: within 2 points of the baseline."""
        return self.baseline - 0.02

    def partitions(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The training rows cut into ``n`` contiguous, near-equal partitions."""
        return [
            (self.X_train[rows], self.y_train[rows])
            for rows in np.array_split(np.arange(len(self.y_train)), n)
        ]


@functools.cache
def digits() -> Digits:
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
    baseline = LogisticRegression(max_iter=1000).fit(X_train, y_train).score(X_test, y_test)
    return Digits(X_train, y_train, X_test, y_test, float(baseline))
