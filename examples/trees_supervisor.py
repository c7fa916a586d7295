"""A supervision tree: start it, kill a leaf, hang one, poison one, watch a subtree give up.

Run it with ``python examples/trees_supervisor.py``; the tutorial page
``tutorials/patterns/actor-trees.md`` shows its sections.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any

from patterns import ActorLostError, ChildSpec, DirectoryStore, Supervisor, SupervisorSpec

TIMEOUT = 120  # seconds: no wait in the examples is unbounded


# --8<-- [start:child]
class Stage:
    """One stage of a pipeline: it counts the items it has seen."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen = 0

    def process(self, items: int) -> int:
        if items < 0:
            os._exit(1)  # a bad input crashes the process, as a native library might
        self.seen += items
        return self.seen

    def snapshot(self) -> dict[str, int]:  # the supervisor saves this at each health check
        return {"seen": self.seen}

    def restore(self, state: dict[str, int]) -> None:  # ... and hands it back after a restart
        self.seen = state["seen"]

    def pid(self) -> int:
        return os.getpid()

    def stall(self) -> None:
        time.sleep(3600)  # a stuck call: the process is alive, but answers nothing


# --8<-- [end:child]


def build(store_dir: str) -> Supervisor:
    # --8<-- [start:tree]
    pipeline = SupervisorSpec(
        "pipeline",
        [
            ChildSpec("reader", Stage, args=("reader",)),
            ChildSpec("parser", Stage, args=("parser",)),  # needs reader
            ChildSpec("writer", Stage, args=("writer",)),  # needs parser
        ],
        strategy="rest_for_one",  # a stage restarts with every stage after it
        max_restarts=5,
        within_s=30,
        health_check_interval_s=0.5,
        health_check_timeout_s=1.5,  # silent that long: hung (a busy host answers slowly)
    )
    flaky = SupervisorSpec(
        "flaky",
        [ChildSpec("unlucky", Stage, args=("unlucky",))],
        max_restarts=0,  # the first crash is one too many: it gives up at once
        health_check_timeout_s=5.0,
    )
    root = Supervisor(
        [pipeline, flaky],
        strategy="one_for_one",
        health_check_interval_s=0.5,  # pings (and snapshots) twice a second
        health_check_timeout_s=5.0,
        store=DirectoryStore(store_dir),  # where the snapshots go
        name="tour",
    )
    # --8<-- [end:tree]
    return root


def branch_pids(root: Supervisor, branch: str) -> dict[str, int | None]:
    """The pid of each child of ``branch`` (None while it restarts)."""
    entry = next(c for c in root.tree()["children"] if c["name"] == branch)
    return {c["name"]: c["pid"] for c in entry["children"]}


def wait_for(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except Exception:
            pass  # a call racing with a restart: ask again
        time.sleep(0.2)
    raise TimeoutError(f"gave up waiting for {what}")


def show_tree(root: Supervisor) -> None:
    # --8<-- [start:show]
    def show(entry: dict[str, Any], depth: int = 0) -> None:
        print(
            f"{'  ' * depth}{entry['name']:<10} {entry['state']:<8} pid={entry['pid']} "
            f"restarts={entry['restarts']}"
        )
        for child in entry["children"]:
            show(child, depth + 1)

    show(root.tree())
    # tour       running  pid=5101 restarts=None
    #   pipeline running  pid=5122 restarts=0
    #     reader running  pid=5140 restarts=0
    #     ...
    # --8<-- [end:show]


def crash(root: Supervisor) -> None:
    # --8<-- [start:crash]
    root.call("pipeline/parser", "process", 40)  # a child of a child: its path
    time.sleep(1.5)  # a health check or two: the count is in the store now

    before = branch_pids(root, "pipeline")
    os.kill(before["parser"], signal.SIGKILL)  # no goodbye, no clean-up

    def restarted() -> dict[str, int | None] | None:
        now = branch_pids(root, "pipeline")
        moved = now["parser"] not in (None, before["parser"])
        return now if moved and now["writer"] not in (None, before["writer"]) else None

    after = wait_for(restarted, "parser and writer back")
    assert after["reader"] == before["reader"]  # before the crash in start order: untouched
    assert root.call("pipeline/parser", "process", 0) == 40  # the new process, restored
    # --8<-- [end:crash]
    print(f"parser and writer restarted, reader kept pid {after['reader']}; parser restored 40")


def hang(root: Supervisor) -> None:
    # --8<-- [start:hang]
    before = branch_pids(root, "pipeline")
    root.call_async("pipeline/writer", "stall")  # sent, never answered: Ray would never notice
    sent = time.time()
    wait_for(
        lambda: branch_pids(root, "pipeline")["writer"] not in (None, before["writer"]),
        "the stalled writer replaced",
    )
    pipeline = next(c for c in root.tree()["children"] if c["name"] == "pipeline")
    writer = next(e for e in pipeline["children"] if e["name"] == "writer")
    print(f"{writer['last_exit']!r}, {writer['exited_at'] - sent:.1f} s after the stall")
    # 'hung: no answer to a health check within 1.5 s, killed', 1.9 s after the stall
    # --8<-- [end:hang]
    assert writer["last_exit"].startswith("hung")
    assert branch_pids(root, "pipeline")["parser"] == before["parser"]  # the last stage: alone


def poison(root: Supervisor) -> None:
    before = branch_pids(root, "pipeline")
    # --8<-- [start:poison]
    try:
        root.call("pipeline/writer", "process", -1)  # the input that crashes the writer
    except ActorLostError as error:
        print(error)
    # Supervisor 'tour': call('pipeline/writer', 'process') did not complete: the actor
    # died under it and Ray will not retry it (...) The supervisor restarts the child as
    # its restart type says; the call is not sent again.
    assert root.call("pipeline/writer", "process", 5) == 5  # a new writer serves the next
    # --8<-- [end:poison]
    after = branch_pids(root, "pipeline")
    assert after["writer"] != before["writer"] and after["parser"] == before["parser"]


def escalate(root: Supervisor) -> None:
    # --8<-- [start:escalate]
    first = {c["name"]: c for c in root.which_children()}
    os.kill(branch_pids(root, "flaky")["unlucky"], signal.SIGKILL)

    def restarted_by_root() -> dict[str, Any] | None:
        entry = {c["name"]: c for c in root.which_children()}["flaky"]
        return entry if entry["restarts"] == 1 and entry["state"] == "running" else None

    flaky = wait_for(restarted_by_root, "the root restarting 'flaky'")
    print(flaky["last_exit"])
    # gave up (more than max_restarts=0 restarts within 5 s (1); the last: child
    # 'unlucky' crashed: its process died (SYSTEM_ERROR))
    assert flaky["pid"] != first["flaky"]["pid"]  # a new supervisor process...
    assert wait_for(lambda: branch_pids(root, "flaky")["unlucky"], "unlucky back")  # ... and child
    # --8<-- [end:escalate]
    pipeline = {c["name"]: c for c in root.which_children()}["pipeline"]
    assert pipeline["pid"] == first["pipeline"]["pid"]  # the other branch never noticed


def tour(root: Supervisor) -> None:
    show_tree(root)
    crash(root)
    hang(root)
    poison(root)
    escalate(root)
    show_tree(root)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="trees-example-") as store_dir:
        # --8<-- [start:close]
        with build(store_dir) as root:  # root.close() when the block ends, even on an error
            tour(root)
        # close() stopped the children before their parents, the last started first, then
        # the root, and returned once Ray reported every actor of the tree dead.
        # --8<-- [end:close]
        assert root.closed


if __name__ == "__main__":
    # --8<-- [start:script-main]
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
    # --8<-- [end:script-main]
