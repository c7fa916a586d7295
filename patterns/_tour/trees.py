"""The actor-trees step of ``make demo``: a small tree, a leaf SIGKILLed, the supervisor's view."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from typing import Any

TIMEOUT_S = 120.0


class _Tally:
    """A leaf with a count the supervisor snapshots and restores."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> int:
        self.count += n
        return self.count

    def snapshot(self) -> int:
        return self.count

    def restore(self, state: int) -> None:
        self.count = state


def _line(entry: dict[str, Any], depth: int) -> str:
    return (
        f"{'  ' * depth}{entry['name']:<8} {entry['state']:<8} pid {entry['pid']!s:<7} "
        f"restarts {entry['restarts']}"
    )


def _show(tree: dict[str, Any], depth: int = 0) -> list[str]:
    lines = [_line(tree, depth)]
    for child in tree["children"]:
        lines += _show(child, depth + 1)
    return lines


def step(spark: Any, *, quick: bool) -> None:
    """Start a two-level tree, SIGKILL one leaf, print the tree before and after."""
    del spark, quick  # the same small tree either way
    import ray.cloudpickle

    from patterns import ChildSpec, DirectoryStore, Supervisor, SupervisorSpec

    # The leaves' class travels by value: workers need not import the launcher for it.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    with (
        tempfile.TemporaryDirectory(prefix="demo-tree-") as path,
        Supervisor(
            [
                SupervisorSpec(
                    "team",
                    [ChildSpec("left", _Tally), ChildSpec("right", _Tally)],
                    strategy="one_for_one",
                    health_check_interval_s=0.5,
                    health_check_timeout_s=5.0,
                ),
            ],
            health_check_interval_s=0.5,
            health_check_timeout_s=5.0,  # only crashes here: no false alarm on a busy host
            store=DirectoryStore(path),
            name="demo-tree",
            timeout=TIMEOUT_S,
        ) as sup,
    ):
        assert sup.call("team/left", "add", 42) == 42
        time.sleep(1.5)  # a health check or two: the count is in the store
        before = sup.tree()
        print("\n".join(_show(before)))
        pids = {c["name"]: c["pid"] for c in before["children"][0]["children"]}
        os.kill(pids["left"], signal.SIGKILL)
        print(f"SIGKILL left (pid {pids['left']}); Ray logs it as a worker that died")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            after = sup.tree()
            leaves = {c["name"]: c for c in after["children"][0]["children"]}
            if leaves["left"]["state"] == "running" and leaves["left"]["pid"] != pids["left"]:
                break
            assert time.monotonic() < deadline, "the supervisor did not restart 'left'"
            time.sleep(0.2)
        print("\n".join(_show(after)))
        restored = sup.call("team/left", "add", 0)
        assert leaves["right"]["pid"] == pids["right"]  # one_for_one: the sibling is untouched
        assert leaves["left"]["restarts"] == 1 and restored == 42
        print(
            f"the supervisor restarted left (restarts 1) and restored its count: {restored}; "
            f"right kept pid {pids['right']}"
        )
