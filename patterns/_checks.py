"""Argument checks shared by every facade of the project (and by the launcher).

A bad call must fail at the caller's line, before anything reaches a worker, with a
message that names the argument, says what was expected and shows what came:
``'shards' must be an int >= 1, got 0``. Each check returns the value converted to
the plain Python type (a numpy int becomes an ``int``), so callers keep the result.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Mapping, Sequence
from typing import Any

__all__ = [
    "check_array",
    "check_bool",
    "check_choice",
    "check_int",
    "check_name",
    "check_number",
    "check_positive_float",
    "describe",
]


def describe(value: object) -> str:
    """Render a received value for an error message: ``'3' (str)``.

    Examples:
        >>> describe("3")
        "'3' (str)"
    """
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def check_int(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as an int, or raise naming ``name``.

    bool is refused (``True`` is not a count); other integral types (numpy ints) are
    accepted and converted.

    Examples:
        >>> check_int("shards", 3, minimum=1)
        3
        >>> check_int("shards", 0, minimum=1)
        Traceback (most recent call last):
        ...
        ValueError: 'shards' must be an int >= 1, got 0
    """
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            msg = f"'{name}' must be an int, got {describe(value)}"
            raise TypeError(msg)
        value = int(value)
    if minimum is not None and value < minimum:
        msg = f"'{name}' must be an int >= {minimum}, got {value!r}"
        raise ValueError(msg)
    if maximum is not None and value > maximum:
        msg = f"'{name}' must be an int <= {maximum}, got {value!r}"
        raise ValueError(msg)
    return value


def check_number(
    name: str,
    value: object,
    *,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """Return ``value`` as a finite float, or raise naming ``name``.

    ``positive=True`` asks for ``> 0``; ``minimum``/``maximum`` are inclusive bounds.
    bool is refused; any real number type (int, float, numpy scalars) is accepted.

    Examples:
        >>> check_number("learning_rate", 0.1, positive=True)
        0.1
        >>> check_number("epsilon", 1.5, minimum=0, maximum=1)
        Traceback (most recent call last):
        ...
        ValueError: 'epsilon' must be a number in [0, 1], got 1.5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"'{name}' must be a number, got {describe(value)}"
        raise TypeError(msg)
    number = float(value)
    if not math.isfinite(number):
        msg = f"'{name}' must be a finite number, got {number!r}"
        raise ValueError(msg)
    if positive and not number > 0:
        msg = f"'{name}' must be a number > 0, got {value!r}"
        raise ValueError(msg)
    low_ok = minimum is None or number >= minimum
    high_ok = maximum is None or number <= maximum
    if not (low_ok and high_ok):
        if minimum is not None and maximum is not None:
            wanted = f"in [{minimum:g}, {maximum:g}]"
        elif minimum is not None:
            wanted = f">= {minimum:g}"
        else:
            wanted = f"<= {maximum:g}"
        msg = f"'{name}' must be a number {wanted}, got {value!r}"
        raise ValueError(msg)
    return number


def check_positive_float(name: str, value: object) -> float:
    """Return a duration in seconds as a float > 0, or raise naming ``name``.

    Examples:
        >>> check_positive_float("timeout", 2)
        2.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        msg = f"'{name}' must be a number of seconds (int or float), got {describe(value)}"
        raise TypeError(msg)
    seconds = float(value)
    if not seconds > 0 or seconds == float("inf"):
        msg = f"'{name}' must be a finite number > 0, got {seconds!r}"
        raise ValueError(msg)
    return seconds


def check_name(name: str, value: object) -> str:
    """Return ``value`` if it is a non-empty str, or raise naming ``name``.

    Examples:
        >>> check_name("key", "")
        Traceback (most recent call last):
        ...
        ValueError: 'key' must be a non-empty str, got ''
    """
    if not isinstance(value, str):
        msg = f"'{name}' must be a str, got {describe(value)}"
        raise TypeError(msg)
    if not value:
        msg = f"'{name}' must be a non-empty str, got ''"
        raise ValueError(msg)
    return value


def check_choice(name: str, value: object, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``, or raise naming ``name``.

    Examples:
        >>> check_choice("mode", "ssp", ("sync", "async", "ssp"))
        'ssp'
        >>> check_choice("mode", "turbo", ("sync", "async"))
        Traceback (most recent call last):
        ...
        ValueError: 'mode' must be one of 'sync', 'async', got 'turbo'
    """
    listed = ", ".join(repr(choice) for choice in choices)
    if not isinstance(value, str):
        msg = f"'{name}' must be one of {listed}, got {describe(value)}"
        raise TypeError(msg)
    if value not in choices:
        msg = f"'{name}' must be one of {listed}, got {value!r}"
        raise ValueError(msg)
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, or raise naming ``name`` (1 and "yes" are not bools).

    Examples:
        >>> check_bool("dashboard", False)
        False
    """
    if not isinstance(value, bool):
        msg = f"'{name}' must be a bool, got {describe(value)}"
        raise TypeError(msg)
    return value


def check_constructor_args(
    args_name: str, args: object, kwargs_name: str, kwargs: object
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments for a class the library instantiates later: a sequence and a str-keyed dict.

    >>> check_constructor_args("args", [1], "kwargs", None)
    ((1,), {})
    """
    if not isinstance(args, Sequence) or isinstance(args, str | bytes):
        msg = f"'{args_name}' must be a tuple or list, got {describe(args)}"
        raise TypeError(msg)
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        msg = f"'{kwargs_name}' must be a dict with str keys or None, got {describe(kwargs)}"
        raise TypeError(msg)
    return tuple(args), dict(kwargs)


def check_array(
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
) -> Any:
    """Return ``value`` as a float64 NumPy array of real numbers, or raise naming ``name``.

    The one rule for array arguments in every family:

    - a NumPy array, or a (nested) list/tuple of numbers; anything else (a str, a dict,
      a set) is a ``TypeError``;
    - a ragged nested list is a ``ValueError`` (the values are fine, the shape is not);
    - the dtype must be int, unsigned or float: bool is refused (``TypeError``), as a bool
      scalar is by `check_int`, because ``True`` is not a measurement (convert it with
      ``.astype(float)`` if it is one); complex, str and object dtypes are refused too;
    - ``ndim`` and ``shape`` (None entries match any size) are ``ValueError``s;
    - with ``finite`` (the default), NaN or infinity is a ``ValueError`` naming the index.

    Examples:
        >>> check_array("context", [1, 2.5], ndim=1)
        array([1. , 2.5])
        >>> check_array("X", [[1, 2], [3]])
        Traceback (most recent call last):
        ...
        ValueError: 'X' must be a rectangular array of numbers, got a ragged nested list
        >>> check_array("X", [True, False])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: 'X' must hold int or float numbers, got an array of bool: convert it ...
    """
    import numpy as np

    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, str | bytes) or not isinstance(value, Sequence | np.generic):
        msg = f"'{name}' must be an array of numbers, got {describe(value)}"
        raise TypeError(msg)
    else:
        try:
            array = np.asarray(value)
        except ValueError:
            msg = f"'{name}' must be a rectangular array of numbers, got a ragged nested list"
            raise ValueError(msg) from None
    if array.dtype.kind == "b":
        msg = (
            f"'{name}' must hold int or float numbers, got an array of bool: "
            "convert it with .astype(float)"
        )
        raise TypeError(msg)
    if array.dtype.kind not in "iuf":
        msg = f"'{name}' must hold int or float numbers, got an array of dtype {array.dtype}"
        raise TypeError(msg)
    if ndim is not None and array.ndim != ndim:
        msg = f"'{name}' must be a {ndim}-D array, got {array.ndim}-D with shape {array.shape}"
        raise ValueError(msg)
    if shape is not None:
        fits = len(shape) == array.ndim and all(
            want is None or want == got for want, got in zip(shape, array.shape, strict=True)
        )
        if not fits:
            wanted = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            msg = f"'{name}' must have shape {wanted}, got {array.shape}"
            raise ValueError(msg)
    array = array.astype(np.float64, copy=False)
    if finite and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        where = ", ".join(str(int(i)) for i in bad)
        msg = f"'{name}' must hold finite numbers, got {array[tuple(bad)]!r} at index [{where}]"
        raise ValueError(msg)
    return array
