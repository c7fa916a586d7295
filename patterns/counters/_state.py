"""A counter's state: the count and the memory of applied requests. Plain Python, no Ray."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from patterns._requests import Request, RequestLog

__all__ = ["CounterState"]

_SNAPSHOT_FORMAT = 1


class CounterState:
    """The count and the memory of applied requests (`patterns._requests.RequestLog`).

    Args:
        start: The initial value.

    Examples:
        >>> state = CounterState(start=5)
        >>> state.increment(2, request=(1, 1))
        7
        >>> state.increment(2, request=(1, 1))  # the same request again: not applied
        7
        >>> CounterState.from_snapshot(state.snapshot()).value
        7
    """

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.changes = 0  # applied mutations, so the actor knows when to checkpoint
        self.requests = RequestLog()

    def _first_time(self, request: Request) -> bool:
        return request is None or self.requests.first_time(*request)

    def increment(self, n: int = 1, request: Request = None) -> int:
        """Add ``n`` unless ``request`` was applied before; return the value."""
        if self._first_time(request):
            self.value += n
            self.changes += 1
        return self.value

    def reset(self, request: Request = None) -> None:
        """Set the value to 0 unless ``request`` was applied before."""
        if self._first_time(request):
            self.value = 0
            self.changes += 1

    def snapshot(self) -> dict[str, Any]:
        """A plain, picklable copy of the state."""
        return {
            "format": _SNAPSHOT_FORMAT,
            "value": self.value,
            "requests": self.requests.snapshot(),
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> CounterState:
        """Rebuild the state from `snapshot()` output."""
        if snapshot.get("format") != _SNAPSHOT_FORMAT:
            msg = f"unknown counter snapshot format {snapshot.get('format')!r}"
            raise ValueError(msg)
        state = cls(snapshot["value"])
        state.requests = RequestLog.from_snapshot(snapshot["requests"])
        return state
