"""Child classes for the actor-tree tests, and helpers to watch a tree change.

Ray workers cannot import the ``tests`` package: the classes here are shipped by
value (``register_pickle_by_value``), as the examples' classes are.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import ray
import ray.cloudpickle

from patterns import Supervisor, exit_normally
from patterns._ray_internals import ready_ref

TIMEOUT = 60.0  # seconds, for every single wait


class Keeper:
    """A child with state worth restoring: a count, snapshot() and restore()."""

    def __init__(self, start: int = 0) -> None:
        self.count = start

    def add(self, n: int = 1) -> int:
        self.count += n
        return self.count

    def value(self) -> int:
        return self.count

    def snapshot(self) -> dict[str, int]:
        return {"count": self.count}

    def restore(self, state: dict[str, int]) -> None:
        self.count = state["count"]

    def pid(self) -> int:
        return os.getpid()

    def hang(self) -> None:
        time.sleep(3600)  # alive, but answers nothing any more

    def finish(self, reason: str = "done") -> None:
        exit_normally(reason)

    def explode(self) -> None:
        os._exit(1)  # a poison call: its process dies on every attempt


class Plain:
    """A child without state: pings only."""

    def pid(self) -> int:
        return os.getpid()

    def finish(self) -> None:
        exit_normally("done")


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def pids(sup: Supervisor) -> dict[str, int | None]:
    """Every child's pid, by name, one level."""
    return {c["name"]: c["pid"] for c in sup.which_children(timeout=TIMEOUT)}


def tree_pids(tree: dict[str, Any], prefix: str = "") -> dict[str, int | None]:
    """Every pid in a tree() result, by path (the root is '')."""
    found = {prefix: tree["pid"]}
    for child in tree["children"]:
        found.update(tree_pids(child, f"{prefix}/{child['name']}"))
    return found


def wait_until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # a call racing with a restart: ask again
            last_error = exc
        else:
            if result:
                return result
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout:g} s waiting for {what} (last error: {last_error!r})"
    )


def sigkill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def running(sup: Supervisor, names: list[str]) -> dict[str, int] | None:
    """The pids of ``names`` if they all run, else None."""
    entries = {c["name"]: c for c in sup.which_children(timeout=TIMEOUT)}
    if all(entries.get(n, {}).get("state") == "running" for n in names):
        return {n: entries[n]["pid"] for n in names}
    return None


def is_dead(handle: Any) -> bool:
    """True if the actor behind ``handle`` is gone for good."""
    try:
        ray.get(ready_ref(handle), timeout=TIMEOUT)
    except ray.exceptions.RayActorError:
        return True
    return False
