"""Argument checks of the agents family: contexts, actions, rewards.

Every facade runs these before anything is sent to an actor, so a bad call fails at
the caller's line with a message naming the argument, what was expected and what
came. Each check returns the value in the form the actors use (float64 arrays,
plain ints and floats), so nothing is converted twice.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from patterns._checks import check_array, check_int, describe

__all__ = [
    "check_action",
    "check_actions",
    "check_context",
    "check_contexts",
    "check_n_actions",
    "check_reward",
    "check_rewards",
]


def check_n_actions(value: object) -> int:
    """``n_actions`` is an int >= 2: with one action there is nothing to choose.

    Examples:
        >>> check_n_actions(1)
        Traceback (most recent call last):
        ...
        ValueError: 'n_actions' must be an int >= 2, got 1
    """
    return check_int("n_actions", value, minimum=2)


def _as_real_array(name: str, value: object) -> np.ndarray:
    # The library's one rule for arrays (bool arrays refused, ragged lists a ValueError);
    # shapes and finiteness are checked by the callers, with messages of their own.
    array: np.ndarray = check_array(name, value, finite=False)
    return array


def _check_finite(name: str, array: np.ndarray) -> None:
    check_array(name, array)  # a float64 array already: only the finiteness check runs


def check_context(value: object, n_features: int | None, name: str = "context") -> np.ndarray:
    """A context is a 1-D array of ``n_features`` finite real numbers (float64 out).

    ``n_features=None`` accepts any length >= 1 (an agent that learns it on first use).

    Examples:
        >>> check_context([1, 2.5], 2)
        array([1. , 2.5])
        >>> check_context([1.0, float("nan")], 2)
        Traceback (most recent call last):
        ...
        ValueError: 'context' must hold finite numbers, got np.float64(nan) at index [1]
        >>> check_context([[1.0, 2.0]], 2)
        Traceback (most recent call last):
        ...
        ValueError: 'context' must be a 1-D array of 2 numbers, got shape (1, 2)
    """
    if (
        type(value) is np.ndarray
        and value.dtype == np.float64
        and value.ndim == 1
        and (value.shape[0] == n_features or (n_features is None and value.shape[0] > 0))
        and np.isfinite(value).all()
    ):
        return value  # the common case, checked in one pass
    array = _as_real_array(name, value)
    wanted = "any number of" if n_features is None else str(n_features)
    if array.ndim != 1 or array.shape[0] == 0 or (n_features not in (None, array.shape[0])):
        msg = f"'{name}' must be a 1-D array of {wanted} numbers, got shape {array.shape}"
        raise ValueError(msg)
    _check_finite(name, array)
    return array


def check_contexts(value: object, n_features: int | None, name: str = "contexts") -> np.ndarray:
    """A batch of contexts: a 2-D array of shape ``(n, n_features)`` (float64 out).

    Examples:
        >>> check_contexts([[1, 2], [3, 4]], 2).shape
        (2, 2)
        >>> check_contexts([1, 2], 2)
        Traceback (most recent call last):
        ...
        ValueError: 'contexts' must be a 2-D array of shape (n, 2), got shape (2,)
    """
    array = _as_real_array(name, value)
    wanted = "n_features" if n_features is None else str(n_features)
    if array.ndim != 2 or (n_features is not None and array.shape[1] != n_features):
        msg = f"'{name}' must be a 2-D array of shape (n, {wanted}), got shape {array.shape}"
        raise ValueError(msg)
    if n_features is None and array.shape[1] == 0 and array.shape[0] > 0:
        msg = f"'{name}' must have at least one feature, got shape {array.shape}"
        raise ValueError(msg)
    _check_finite(name, array)
    return array


def check_action(value: object, n_actions: int, name: str = "action") -> int:
    """An action is an int in ``range(n_actions)``.

    Examples:
        >>> check_action(3, 3)
        Traceback (most recent call last):
        ...
        ValueError: 'action' must be an int in range(3), got 3
    """
    if type(value) is int and 0 <= value < n_actions:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        msg = f"'{name}' must be an int in range({n_actions}), got {describe(value)}"
        raise TypeError(msg)
    action = int(value)
    if not 0 <= action < n_actions:
        msg = f"'{name}' must be an int in range({n_actions}), got {action!r}"
        raise ValueError(msg)
    return action


def check_actions(value: object, n_actions: int, count: int) -> np.ndarray:
    """A batch of ``count`` actions, each in ``range(n_actions)`` (int64 array out).

    Examples:
        >>> check_actions([0, 2], 3, 2)
        array([0, 2])
        >>> check_actions([0, 5], 3, 2)
        Traceback (most recent call last):
        ...
        ValueError: 'actions' must hold ints in range(3), got 5 at index 1
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        msg = f"'actions' must be a sequence of ints, got {describe(value)}"
        raise TypeError(msg)
    try:
        array = np.asarray(value)
    except ValueError:  # a ragged nested list
        msg = "'actions' must be a rectangular array of numbers, got a ragged nested list"
        raise ValueError(msg) from None
    if array.ndim != 1 or array.shape[0] != count:
        msg = (
            f"'actions' must be a 1-D sequence of {count} ints (one per context), "
            f"got shape {array.shape}"
        )
        raise ValueError(msg)
    if count and array.dtype.kind not in "iu":
        msg = f"'actions' must hold ints, got an array of dtype {array.dtype}"
        raise TypeError(msg)
    array = array.astype(np.int64, copy=False)
    bad = np.flatnonzero((array < 0) | (array >= n_actions))
    if bad.size:
        msg = (
            f"'actions' must hold ints in range({n_actions}), "
            f"got {int(array[bad[0]])} at index {int(bad[0])}"
        )
        raise ValueError(msg)
    return array


def check_reward(value: object, binary: bool, name: str = "reward") -> float:
    """A reward is a finite real number (0 or 1 when ``binary``).

    A bool is not a number here (``True`` is refused, as `check_int` refuses it): a
    binary reward is the number 0 or 1, e.g. ``float(clicked)``.

    Examples:
        >>> check_reward(0.5, False)
        0.5
        >>> check_reward(0.5, True)
        Traceback (most recent call last):
        ...
        ValueError: 'reward' must be 0 or 1 for a classifier, got 0.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"'{name}' must be a number, got {describe(value)}"
        raise TypeError(msg)
    reward = float(value)
    if not math.isfinite(reward):
        msg = f"'{name}' must be a finite number, got {reward!r}"
        raise ValueError(msg)
    if binary and reward not in (0.0, 1.0):
        msg = f"'{name}' must be 0 or 1 for a classifier, got {value!r}"
        raise ValueError(msg)
    return reward


def check_rewards(value: object, count: int, binary: bool) -> np.ndarray:
    """A batch of ``count`` finite rewards (float64 array out).

    Binary rewards are numbers 0 and 1; an array of bool is refused (pass
    ``clicked.astype(float)``), as every array argument of the library refuses one.

    Examples:
        >>> check_rewards([1, 0.5], 2, False)
        array([1. , 0.5])
        >>> check_rewards([1.0], 2, False)
        Traceback (most recent call last):
        ...
        ValueError: 'rewards' must be a 1-D sequence of 2 numbers (one per context), got shape (1,)
        >>> check_rewards(np.array([True, False]), 2, True)
        Traceback (most recent call last):
        ...
        TypeError: 'rewards' must hold int or float numbers, got an array of bool: convert it ...
        >>> check_rewards(np.array([1, 0]), 2, True)  # 0/1 as numbers: fine
        array([1., 0.])
    """
    array = _as_real_array("rewards", value)
    if array.ndim != 1 or array.shape[0] != count:
        msg = (
            f"'rewards' must be a 1-D sequence of {count} numbers (one per context), "
            f"got shape {array.shape}"
        )
        raise ValueError(msg)
    _check_finite("rewards", array)
    if binary and count and not np.isin(array, (0.0, 1.0)).all():
        bad = int(np.flatnonzero(~np.isin(array, (0.0, 1.0)))[0])
        msg = f"'rewards' must be 0 or 1 for a classifier, got {array[bad]!r} at index {bad}"
        raise ValueError(msg)
    return array


def as_list_of_ints(actions: Any) -> list[int]:
    """Actions as plain ints (what the facades return)."""
    return [int(a) for a in actions]
