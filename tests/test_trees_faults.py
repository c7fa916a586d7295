"""Kill processes of supervision trees (SIGKILL by PID, hangs, restart storms); check the promises.

One tree serves most tests (starting actors is the expensive part):

    root (one_for_one)
    |-- solo   one_for_one  [a, b]
    |-- all    one_for_all  [a, b]
    `-- rest   rest_for_one [a, b, c]

every leaf a ``Keeper`` (a count with snapshot/restore) under a store, health checks
every 0.3 s. A second, flat tree holds one child per restart type (health checks every
second) for the hang, restart-type and poison tests; the restart storm and the crash of
the root get trees of their own. Each test reads the PIDs it compares at its own start,
so any test runs alone too; the close test comes last. Every wait has a timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patterns import (
    ActorLostError,
    ChildSpec,
    DirectoryStore,
    Supervisor,
    SupervisorSpec,
    TreeFailedError,
)
from tests._trees_children import (
    TIMEOUT,
    Keeper,
    is_dead,
    running,
    sigkill,
    tree_pids,
    wait_until,
)

pytestmark = pytest.mark.fault

INTERVAL = 0.3
# Crashes are seen at the next ping whatever the timeout; only hangs need a short one.
# A busy 2-core host can take a second to answer a ping, so the trees that are not
# testing hangs get a timeout no healthy child misses.
PATIENT = 5.0
HANG_INTERVAL = 2.0
HANG_TIMEOUT = 1.5


def _leaves(*names: str) -> list[ChildSpec]:
    return [ChildSpec(n, Keeper, shutdown_timeout_s=2.0) for n in names]


@pytest.fixture(scope="module")
def tree(ray_cluster: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    options = {
        "health_check_interval_s": INTERVAL,
        "health_check_timeout_s": PATIENT,
        "max_restarts": 5,
        "within_s": 30,
    }
    sup = Supervisor(
        [
            SupervisorSpec("solo", _leaves("a", "b"), strategy="one_for_one", **options),
            SupervisorSpec("all", _leaves("a", "b"), strategy="one_for_all", **options),
            SupervisorSpec("rest", _leaves("a", "b", "c"), strategy="rest_for_one", **options),
        ],
        store=DirectoryStore(tmp_path_factory.mktemp("tree-store")),
        name="faults-tree",
        timeout=TIMEOUT,
        **options,
    )
    with sup:
        yield sup


def _value(tree: Supervisor, sub: str, leaf: str) -> int:
    """The leaf's count (waiting while it, or its supervisor, restarts)."""
    return int(tree.call(f"{sub}/{leaf}", "value"))


def _sub_entries(tree: Supervisor, sub: str) -> list[dict[str, Any]]:
    """The which_children() entries of the middle supervisor ``sub``."""
    entry = next(c for c in tree.tree()["children"] if c["name"] == sub)
    return list(entry["children"])


def _sub_pids(tree: Supervisor, sub: str, names: list[str]) -> dict[str, int] | None:
    """The leaves' pids once they all run under ``sub``."""
    by_name = {e["name"]: e for e in _sub_entries(tree, sub)}
    if all(n in by_name and by_name[n]["state"] == "running" for n in names):
        return {n: by_name[n]["pid"] for n in names}
    return None


def _count_after_snapshot(tree: Supervisor, sub: str, leaf: str, n: int) -> int:
    """Add ``n`` to a leaf, then wait two intervals so a health check saved it."""
    value = tree.call(f"{sub}/{leaf}", "add", n)
    time.sleep(3 * INTERVAL)
    return int(value)


def _saved_count(store: DirectoryStore, path: str) -> int | None:
    """The count in the newest snapshot of the child at ``path`` (its key ends with it)."""
    from urllib.parse import unquote

    for folder in store.path.iterdir():
        key = unquote(folder.name)
        if folder.is_dir() and key.endswith(f"/{path}"):
            checkpoint = store.load(key)
            return None if checkpoint is None else int(checkpoint.state["count"])
    return None


def _kill_leaf_and_wait(
    tree: Supervisor, sub: str, victim: str, names: list[str], changed: set[str]
) -> dict[str, int]:
    before = wait_until(lambda: _sub_pids(tree, sub, names), f"{sub} running")
    sigkill(before[victim])

    def restarted() -> dict[str, int] | None:
        now = _sub_pids(tree, sub, names)
        if now is None or any(now[n] == before[n] for n in changed):
            return None
        return now

    after = wait_until(restarted, f"{sorted(changed)} of {sub} restarted after SIGKILL {victim}")
    for name in names:
        if name in changed:
            assert after[name] != before[name], f"{sub}/{name} was not restarted"
        else:
            assert after[name] == before[name], f"{sub}/{name} was restarted, it should not be"
    return after


def test_one_for_one_restarts_only_the_killed_child_with_its_state(tree: Supervisor) -> None:
    saved = _count_after_snapshot(tree, "solo", "a", 7)
    _kill_leaf_and_wait(tree, "solo", "a", ["a", "b"], changed={"a"})
    assert _value(tree, "solo", "a") == saved
    a = next(e for e in _sub_entries(tree, "solo") if e["name"] == "a")
    assert a["restarts"] >= 1 and "crashed" in a["last_exit"]


def test_one_for_all_restarts_every_child(tree: Supervisor) -> None:
    saved = _count_after_snapshot(tree, "all", "b", 5)
    _kill_leaf_and_wait(tree, "all", "a", ["a", "b"], changed={"a", "b"})
    # b was stopped by its supervisor, which saved its snapshot on the way out.
    assert _value(tree, "all", "b") == saved


def test_rest_for_one_restarts_the_child_and_those_after_it(tree: Supervisor) -> None:
    saved = _count_after_snapshot(tree, "rest", "b", 3)
    _kill_leaf_and_wait(tree, "rest", "b", ["a", "b", "c"], changed={"b", "c"})
    assert _value(tree, "rest", "b") == saved


def test_sigkill_of_a_middle_supervisor_brings_its_subtree_back(tree: Supervisor) -> None:
    wait_until(lambda: running(tree, ["solo", "all", "rest"]), "the middle supervisors")
    saved = _count_after_snapshot(tree, "solo", "b", 11)
    before = wait_until(
        lambda: None not in (p := tree_pids(tree.tree(timeout=TIMEOUT))).values() and p,
        "every actor of the tree running",
    )
    sigkill(before["/solo"])

    def back() -> dict[str, int | None] | None:
        now = tree_pids(tree.tree(timeout=TIMEOUT))
        subtree = ["/solo", "/solo/a", "/solo/b"]
        if any(now.get(p) in (None, before[p]) for p in subtree):
            return None
        return now

    after = wait_until(back, "the subtree of 'solo' restarted")
    for path, pid in before.items():
        if path == "/solo" or path.startswith("/solo/"):
            assert after[path] != pid, f"{path} kept its pid: the subtree did not restart"
        else:
            assert after[path] == pid, f"{path} was restarted: only solo's subtree should be"
    # The new 'solo' restored its children from the store.
    assert _value(tree, "solo", "b") == saved


def test_close_leaves_no_actor_of_the_tree_alive(tree: Supervisor) -> None:
    wait_until(lambda: running(tree, ["solo", "all", "rest"]), "the middle supervisors")
    handles = [tree.actor]
    for sub, leaves in (("solo", "ab"), ("all", "ab"), ("rest", "abc")):
        wait_until(lambda s=sub, ls=leaves: _sub_pids(tree, s, list(ls)), f"{sub} running")
        handles.append(tree.child(sub))
        handles += [tree.child(f"{sub}/{leaf}") for leaf in leaves]
    pids = [pid for pid in tree_pids(tree.tree(timeout=TIMEOUT)).values() if pid]
    assert len(handles) == len(pids) == 11
    tree.close(timeout=TIMEOUT)
    assert all(is_dead(h) for h in handles), "an actor of the tree answered after close()"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.1)  # a killed process may take a moment to be reaped
    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert not alive, f"processes of the tree still alive after close(): {alive}"


# --- a small tree per promise ----------------------------------------------------------


@pytest.fixture(scope="module")
def flat(ray_cluster: dict) -> Iterator[Supervisor]:
    """One level, one child per restart type; pings every 2 s, hung after 1.5 s of silence."""
    sup = Supervisor(
        [
            ChildSpec("worker", Keeper),
            ChildSpec("job", Keeper, restart="transient"),
            ChildSpec("once", Keeper, restart="temporary"),
            ChildSpec("always", Keeper, restart="permanent"),
        ],
        health_check_interval_s=HANG_INTERVAL,
        health_check_timeout_s=HANG_TIMEOUT,
        max_restarts=10,  # the tests below restart children on purpose, quickly
        within_s=30,
        timeout=TIMEOUT,
    )
    with sup:
        yield sup


def test_a_hung_child_is_detected_within_two_intervals(flat: Supervisor) -> None:
    siblings = ["job", "once", "always"]
    before = wait_until(lambda: running(flat, ["worker", *siblings]), "the children")
    sent = time.time()
    flat.call_async("worker", "hang")  # alive, silent from now on
    after = wait_until(
        lambda: (p := running(flat, ["worker"])) and p["worker"] != before["worker"] and p,
        "the hung child replaced",
    )
    entry = next(c for c in flat.which_children(timeout=TIMEOUT) if c["name"] == "worker")
    assert entry["last_exit"].startswith("hung")
    # The bound: two intervals from the hang (the call was sent a bit before it).
    assert entry["exited_at"] - sent <= 2 * HANG_INTERVAL, entry["exited_at"] - sent
    assert running(flat, siblings) == {n: before[n] for n in siblings}  # one_for_one
    assert after["worker"] != before["worker"]
    assert flat.call("worker", "value") == 0  # no store


def test_transient_and_temporary_children(flat: Supervisor) -> None:
    first = wait_until(lambda: running(flat, ["job", "once", "always"]), "the children")
    # An abnormal exit restarts a transient child...
    sigkill(first["job"])
    wait_until(
        lambda: (p := running(flat, ["job"])) and p["job"] != first["job"],
        "the transient child restarted after a crash",
    )
    # ... a normal exit does not.
    flat.call_async("job", "finish", "work done")
    job = wait_until(
        lambda: next(
            c for c in flat.which_children() if c["name"] == "job" and c["state"] == "stopped"
        ),
        "the transient child stopped",
    )
    assert job["last_exit"] == "exited normally: work done" and job["pid"] is None
    # A temporary child is never restarted, even after a crash: it is forgotten.
    sigkill(first["once"])
    wait_until(
        lambda: "once" not in [c["name"] for c in flat.which_children()],
        "the temporary child forgotten",
    )
    # A permanent child comes back even from a normal exit.
    flat.call_async("always", "finish")
    wait_until(
        lambda: (p := running(flat, ["always"])) and p["always"] != first["always"],
        "the permanent child restarted after a normal exit",
    )
    time.sleep(2 * HANG_INTERVAL)  # nothing else happens later
    states = {c["name"]: c["state"] for c in flat.which_children()}
    assert states == {"worker": "running", "job": "stopped", "always": "running"}


def test_a_poison_call_fails_with_the_librarys_error_and_the_tree_keeps_serving(
    flat: Supervisor,
) -> None:
    before = wait_until(lambda: running(flat, ["worker", "always"]), "the children")
    # What the caller sees: the library's error, at once, naming the tree, the child,
    # the method and the cause; the call is not sent again.
    with pytest.raises(
        ActorLostError,
        match=r"Supervisor \(actor [0-9a-f]{8}\): call\('worker', 'explode'\) did not "
        r"complete: the actor died under it",
    ) as lost:
        flat.call("worker", "explode")
    assert "The supervisor restarts the child" in str(lost.value)
    # What the supervisor sees: a crash, and a restart (it was told by the failed call).
    entry = next(c for c in flat.which_children() if c["name"] == "worker")
    assert entry["state"] != "running" or entry["pid"] != before["worker"]
    assert entry["last_exit"] == "crashed: its process died (SYSTEM_ERROR)"
    # The tree keeps serving: the next call reaches the new process, the sibling untouched.
    assert flat.call("worker", "add", 2) == 2
    assert flat.call("worker", "pid") != before["worker"]
    assert running(flat, ["always"]) == {"always": before["always"]}


def test_poison_calls_in_a_row_exhaust_the_intensity_and_the_supervisor_gives_up(
    ray_cluster: dict,
) -> None:
    with Supervisor(
        [ChildSpec("victim", Keeper)],
        max_restarts=1,
        within_s=60,
        health_check_interval_s=INTERVAL,
        health_check_timeout_s=PATIENT,
        timeout=TIMEOUT,
    ) as sup:
        for _ in range(2):  # the second crash is one restart too many
            with pytest.raises(ActorLostError, match=r"call\('victim', 'explode'\)"):
                sup.call("victim", "explode")
        status = wait_until(
            lambda: (s := sup.status())["state"] == "failed" and s, "the supervisor giving up"
        )
        assert "max_restarts=1" in status["reason"] and "'victim' crashed" in status["reason"]
        with pytest.raises(TreeFailedError, match=r"call\('victim', 'value'\) refused: the "):
            sup.call("victim", "value")


def test_kill_crashes_the_root_and_ray_brings_the_tree_back_from_the_store(
    ray_cluster: dict, tmp_path: Path
) -> None:
    store = DirectoryStore(tmp_path)
    with Supervisor(
        [SupervisorSpec("team", _leaves("a")), *_leaves("b")],
        store=store,
        health_check_interval_s=INTERVAL,
        health_check_timeout_s=PATIENT,
        timeout=TIMEOUT,
    ) as sup:
        saved = _count_after_snapshot(sup, "team", "a", 4)
        # The snapshot is taken at a health check: on a busy machine three intervals
        # may not hold one, so wait until the store has it.
        wait_until(lambda: _saved_count(store, "team/a") == saved, "team/a's snapshot saved")
        # A poison call two levels down: reported through the middle supervisor, the
        # leaf restarts from its snapshot and serves the next call.
        with pytest.raises(ActorLostError, match=r"call\('team/a', 'explode'\)"):
            sup.call("team/a", "explode")
        assert sup.call("team/a", "value") == saved
        before = tree_pids(sup.tree())
        sup.kill()  # the crash simulation: the root's process dies, its tree with it

        def back() -> dict[str, int | None] | None:
            now = tree_pids(sup.tree())
            fresh = all(now.get(path) not in (None, pid) for path, pid in before.items())
            return now if fresh else None

        wait_until(back, "every actor of the tree in a new process")
        assert sup.call("team/a", "value") == saved  # restored by the new tree
        assert not sup.closed and sup.owned


def test_a_restart_storm_escalates_to_the_parent_which_restarts_the_subtree(
    ray_cluster: dict,
) -> None:
    storm = SupervisorSpec(
        "storm",
        [ChildSpec("flaky", Keeper)],
        max_restarts=1,
        within_s=60,
        health_check_interval_s=INTERVAL,
        health_check_timeout_s=PATIENT,
    )
    with Supervisor(
        [storm, ChildSpec("bystander", Keeper)],
        strategy="one_for_one",
        health_check_interval_s=INTERVAL,
        health_check_timeout_s=PATIENT,
        timeout=TIMEOUT,
    ) as sup:
        first = wait_until(lambda: running(sup, ["storm", "bystander"]), "the tree")
        (root_pid,) = sup.pids()
        seen: set[int] = set()
        for _ in range(2):  # the second kill is one restart too many for max_restarts=1

            def flaky_pid() -> int | None:
                entries = _sub_entries(sup, "storm")
                pid = entries[0]["pid"] if entries[0]["state"] == "running" else None
                return pid if pid not in seen else None

            pid = wait_until(flaky_pid, "flaky running")
            seen.add(pid)
            sigkill(pid)

        def escalated() -> dict[str, Any] | None:
            entry = next(c for c in sup.which_children(timeout=TIMEOUT) if c["name"] == "storm")
            fresh = entry["state"] == "running" and entry["pid"] != first["storm"]
            return entry if fresh and entry["restarts"] == 1 else None

        entry = wait_until(escalated, "the parent restarting the supervisor that gave up")
        assert entry["last_exit"].startswith("gave up")
        assert "max_restarts=1" in entry["last_exit"] and "'flaky'" in entry["last_exit"]
        assert sup.pids() == [root_pid]
        assert running(sup, ["bystander"]) == {"bystander": first["bystander"]}
        # The restarted supervisor started its child again, with a fresh budget.
        entries = wait_until(
            lambda: (e := _sub_entries(sup, "storm")) and e[0]["state"] == "running" and e,
            "flaky restarted by the new supervisor",
        )
        assert entries[0]["pid"] not in seen and entries[0]["restarts"] == 0
        assert sup.status(timeout=TIMEOUT)["state"] == "running"


def test_a_root_that_gives_up_stops_its_children_and_says_why(ray_cluster: dict) -> None:
    with Supervisor(
        [ChildSpec("only", Keeper), ChildSpec("other", Keeper)],
        max_restarts=0,
        health_check_interval_s=INTERVAL,
        health_check_timeout_s=PATIENT,
        timeout=TIMEOUT,
    ) as sup:
        first = wait_until(lambda: running(sup, ["only", "other"]), "the children")
        other = sup.child("other")
        sigkill(first["only"])
        status = wait_until(
            lambda: (s := sup.status(timeout=TIMEOUT))["state"] == "failed" and s,
            "the root giving up",
        )
        assert "max_restarts=0" in status["reason"] and "'only' crashed" in status["reason"]
        assert {c["name"]: c["state"] for c in sup.which_children()} == {
            "only": "stopped",
            "other": "stopped",
        }
        assert is_dead(other)  # its sibling was stopped, not left behind
        with pytest.raises(
            TreeFailedError, match="start_child refused: the supervisor is failed: more than"
        ):
            sup.start_child(ChildSpec("late", Keeper))
        with pytest.raises(TreeFailedError, match="max_restarts=0"):
            sup.call("other", "value")
