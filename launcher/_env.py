"""Set environment variables for a while and put back exactly what was there before."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


class EnvironmentChanges:
    """Records each variable's value before its first change, so `restore` undoes all.

    Examples:
        >>> changes = EnvironmentChanges()
        >>> changes.set("RAP_DOCTEST_VAR", "1")
        >>> os.environ["RAP_DOCTEST_VAR"]
        '1'
        >>> changes.restore()
        >>> "RAP_DOCTEST_VAR" in os.environ
        False
    """

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, key: str, value: str | None) -> None:
        """Set ``key`` to ``value`` (None removes it), remembering the original value."""
        if key not in self._saved:
            self._saved[key] = os.environ.get(key)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

    def restore(self) -> None:
        """Put every changed variable back as it was before the first change."""
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved = {}


@contextlib.contextmanager
def temporary_environment(overrides: Mapping[str, str]) -> Iterator[None]:
    """Set ``overrides`` inside the block only (e.g. for a JVM that copies them at start)."""
    changes = EnvironmentChanges()
    for key, value in overrides.items():
        changes.set(key, value)
    try:
        yield
    finally:
        changes.restore()
