"""Argument checks whose messages name the argument, what was expected and what came."""

from __future__ import annotations

from typing import Any


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(name: str, value: Any, *, minimum: int | None = None) -> None:
    """Raise ``TypeError`` unless ``value`` is an int (not bool); ``ValueError`` if too small."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{name}' must be an int, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"'{name}' must be >= {minimum}, got {value}")


def check_number(name: str, value: Any, *, positive: bool) -> None:
    """Raise unless ``value`` is a real number, > 0 when ``positive`` else >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"'{name}' must be a number, got {_describe(value)}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"'{name}' must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"'{name}' must be > 0, got {value}")
    if not positive and value < 0:
        raise ValueError(f"'{name}' must be >= 0, got {value}")
