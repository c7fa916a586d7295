"""Actor trees on the shared cluster: start and stop order, the calls, aggregation, nested tasks.

Faults (SIGKILLs, hangs, restart storms, poison calls) are in test_trees_faults.py.
"""

from __future__ import annotations

import atexit
import gc
import os
import pickle
import signal
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import ray
import ray.cloudpickle

from patterns import (
    CallTimeoutError,
    ChildSpec,
    ChildStartError,
    ChildStateError,
    DirectoryStore,
    DuplicateChildError,
    FacadeClosedError,
    RemoteCallError,
    Supervisor,
    SupervisorSpec,
    UnknownChildError,
    divide_and_conquer,
    tree_reduce,
)
from tests._trees_children import TIMEOUT, Keeper, Plain, is_dead, wait_until


class Logged:
    """Appends 'start name' when created and 'stop name' when its process exits cleanly.

    With ``linger_s``, its exit takes that long before it logs the stop (a clean-up
    that needs time, such as flushing a buffer to disk).
    """

    def __init__(self, name: str, path: str, linger_s: float = 0.0) -> None:
        self._write(path, f"start {name}")
        atexit.register(self._stop, path, name, linger_s)

    @staticmethod
    def _write(path: str, line: str) -> None:
        with open(path, "a") as f:
            f.write(line + "\n")

    @classmethod
    def _stop(cls, path: str, name: str, linger_s: float) -> None:
        time.sleep(linger_s)
        cls._write(path, f"stop {name}")

    def pid(self) -> int:
        return os.getpid()

    def fail(self) -> None:
        raise KeyError("no such entry")


class Broken:
    def __init__(self) -> None:
        raise ValueError("no database")


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _logged(name: str, path: Path) -> ChildSpec:
    return ChildSpec(name, Logged, args=(name, str(path)), shutdown_timeout_s=10)


def _events(path: Path, kind: str) -> list[str]:
    """The names logged with ``kind`` ('start' or 'stop'), in the order they happened."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1] for line in lines if line.startswith(kind + " ")]


@pytest.fixture(scope="module")
def logged_tree(
    ray_cluster: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Supervisor, Path]]:
    """a, b, then a supervisor of c and d; every start and clean stop logged to a file."""
    log = tmp_path_factory.mktemp("order") / "events"
    sup = Supervisor(
        [
            _logged("a", log),
            _logged("b", log),
            SupervisorSpec("team", [_logged("c", log), _logged("d", log)]),
        ],
        name="order-test",
        health_check_timeout_s=10.0,  # a restart would add log lines: no false alarm
    )
    with sup:
        yield sup, log


def test_children_start_in_order_and_the_tree_shows_them(
    logged_tree: tuple[Supervisor, Path],
) -> None:
    sup, log = logged_tree
    assert _events(log, "start") == ["a", "b", "c", "d"]
    tree = sup.tree(timeout=TIMEOUT)
    keys = {"name", "kind", "state", "pid", "restarts", "children", "restart", "last_exit"}
    assert keys <= set(tree) and tree["name"] == "order-test" and tree["restarts"] is None
    assert [c["name"] for c in tree["children"]] == ["a", "b", "team"]
    team = tree["children"][2]
    assert team["kind"] == "supervisor" and [c["name"] for c in team["children"]] == ["c", "d"]
    assert all(keys <= set(c) for c in [*tree["children"], *team["children"]])
    assert all(c["state"] == "running" and c["pid"] for c in team["children"])
    # A child of the nested supervisor, by its path.
    assert sup.call("team/d", "pid") == team["children"][1]["pid"]


def test_attached_and_copied_facades_release_the_tree(
    logged_tree: tuple[Supervisor, Path],
) -> None:
    sup, _ = logged_tree
    attached = Supervisor.attach("order-test")
    copy = pickle.loads(pickle.dumps(sup))
    assert (sup.owned, attached.owned, copy.owned) == (True, False, False)
    assert attached.pids() == copy.pids() == sup.pids()
    assert [c["name"] for c in copy.which_children()] == ["a", "b", "team"]
    attached.close()
    copy.close()
    with pytest.raises(FacadeClosedError, match="which_children called after close"):
        copy.which_children()
    assert sup.status()["state"] == "running"  # released, not stopped
    assert sup.call("a", "pid") > 0
    stats = sup.stats()
    assert stats["kind"] == "Supervisor" and stats["name"] == "order-test"
    assert stats["children"] == 3 and stats["state"] == "running" and stats["owned"]


def test_dynamic_children_and_their_errors(logged_tree: tuple[Supervisor, Path]) -> None:
    sup, _ = logged_tree
    names = [c["name"] for c in sup.which_children()]
    entry = sup.start_child(ChildSpec("extra", Plain))
    assert entry["name"] == "extra" and entry["state"] == "running" and entry["pid"]
    assert [c["name"] for c in sup.which_children()] == [*names, "extra"]
    with pytest.raises(
        DuplicateChildError,
        match="Supervisor 'order-test': start_child refused: a child named 'extra' exists",
    ):
        sup.start_child(ChildSpec("extra", Plain))
    with pytest.raises(
        ChildStartError,
        match=r"start_child failed: child 'db' failed to start: its constructor raised "
        r"\(ValueError: no database\)",
    ):
        sup.start_child(ChildSpec("db", Broken))
    assert [c["name"] for c in sup.which_children()] == [*names, "extra"]

    extra = sup.child("extra")
    sup.terminate_child("extra")
    assert is_dead(extra)
    stopped = sup.which_children()[-1]
    assert stopped["state"] == "stopped" and stopped["pid"] is None
    with pytest.raises(ChildStateError, match="child refused: child 'extra' is stopped"):
        sup.child("extra")
    with pytest.raises(ChildStateError, match=r"restart_child\(\) starts a stopped child"):
        sup.restart_child("a")
    again = sup.restart_child("extra")
    assert again["state"] == "running" and again["pid"] != entry["pid"]
    with pytest.raises(ChildStateError, match=r"terminate_child\(\) it first"):
        sup.delete_child("extra")
    sup.terminate_child("extra")
    sup.delete_child("extra")
    assert [c["name"] for c in sup.which_children()] == names
    with pytest.raises(UnknownChildError, match="there is no child 'nope'") as unknown:
        sup.child("nope")
    assert isinstance(unknown.value, LookupError)
    with pytest.raises(UnknownChildError, match=r"no child 'team/x' \(the children of 'team'"):
        sup.call("team/x", "pid")
    with pytest.raises(UnknownChildError, match="'a' is a worker, not a supervisor"):
        sup.child("a/b")
    with pytest.raises(TypeError, match="'spec' must be a ChildSpec or SupervisorSpec"):
        sup.start_child(Plain)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'path' must be child names joined by '/'"):
        sup.child("team//c")
    assert sup.status()["state"] == "running"


def test_call_returns_the_result_and_names_what_failed(
    logged_tree: tuple[Supervisor, Path],
) -> None:
    sup, _ = logged_tree
    assert ray.get(sup.call_async("b", "pid"), timeout=TIMEOUT) == sup.call("b", "pid")
    with pytest.raises(RemoteCallError, match=r"call\('a', 'fail'\) raised KeyError") as raised:
        sup.call("a", "fail")
    assert raised.value.remote_type == "KeyError"
    with pytest.raises(ValueError, match="'method' must be a method of the child at 'a'"):
        sup.call("a", "no_such_method")
    with pytest.raises(TypeError, match="'method' must be the name of a method"):
        sup.call("a", 3)  # type: ignore[arg-type]


def test_chained_calls_on_a_returned_handle_keep_working(
    logged_tree: tuple[Supervisor, Path],
) -> None:
    # Some Ray versions hold the handle of `sup.child("a").m` only weakly: the facade
    # keeps the handles it returned, and returns the same object for the same actor.
    sup, _ = logged_tree
    pid = ray.get(sup.child("a").pid.remote(), timeout=TIMEOUT)
    handle = weakref.ref(sup.child("a"))
    gc.collect()
    assert handle() is not None and sup.child("a") is handle()
    assert ray.get(sup.child("team/c").pid.remote(), timeout=TIMEOUT) != pid


def test_timeouts_follow_the_call_then_the_facade(logged_tree: tuple[Supervisor, Path]) -> None:
    sup, _ = logged_tree
    assert sup.timeout == 60.0
    impatient = Supervisor.attach("order-test", timeout=1.5)
    (pid,) = impatient.pids()
    os.kill(pid, signal.SIGSTOP)  # the root is alive but answers nothing
    try:
        with pytest.raises(
            CallTimeoutError, match=r"Supervisor 'order-test': status got no reply within 1\.5 s"
        ):
            impatient.status()
        with pytest.raises(CallTimeoutError, match=r"within 0\.5 s"):
            impatient.call("a", "pid", timeout=0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert impatient.status(timeout=None)["state"] == "running"
    impatient.close()


def test_close_stops_children_before_parents_last_started_first(
    logged_tree: tuple[Supervisor, Path],
) -> None:
    sup, log = logged_tree
    handles = [sup.child(path) for path in ("a", "b", "team", "team/c", "team/d")]
    sup.close(timeout=TIMEOUT)
    assert all(is_dead(h) for h in [sup.actor, *handles])  # reported dead when close returns
    stops = wait_until(lambda: len(_events(log, "stop")) == 4 and _events(log, "stop"), "4 stops")
    assert stops == ["d", "c", "b", "a"]
    sup.close()  # a second close does nothing
    with pytest.raises(FacadeClosedError):
        sup.call("a", "pid")


def test_close_gives_a_child_added_later_its_own_shutdown_time(
    ray_cluster: dict, tmp_path: Path
) -> None:
    # The orderly stop's budget is the tree's at close time: a child added with
    # start_child that needs longer to end than the first children gets it (the
    # budget used to be fixed at the start, and the child was killed mid-exit).
    log = tmp_path / "events"
    with Supervisor([ChildSpec("quick", Plain, shutdown_timeout_s=0.5)]) as sup:
        slow = ChildSpec("slow", Logged, args=("slow", str(log), 7.0), shutdown_timeout_s=20)
        sup.start_child(slow)
    assert _events(log, "stop") == ["slow"]  # its exit ran to the end before close returned


def test_a_tree_whose_child_cannot_start_is_not_started(ray_cluster: dict, tmp_path: Path) -> None:
    log = tmp_path / "events"
    with pytest.raises(
        ChildStartError,
        match="Supervisor 'broken-tree': start failed: child 'db' failed to start: "
        "its constructor raised",
    ):
        Supervisor([_logged("cache", log), ChildSpec("db", Broken)], name="broken-tree")
    # The child started before it was stopped again, and the supervisor is gone.
    wait_until(lambda: _events(log, "stop") == ["cache"], "cache stopped")
    assert _events(log, "start") == ["cache"]
    with pytest.raises(ValueError, match="no live Supervisor actor named 'broken-tree'"):
        Supervisor.attach("broken-tree")


def test_children_restore_what_was_saved_under_the_key_layout(
    ray_cluster: dict, tmp_path: Path
) -> None:
    # The layout is the library's (member_key): {key}/{child}, and {key}/{team}/{child}
    # below a nested supervisor, as it always was for trees: older checkpoints restore.
    store = DirectoryStore(tmp_path)
    store.save("shop/cache", {"count": 7}, 1)
    store.save("shop/team/ledger", {"count": 11}, 4)
    with Supervisor(
        [ChildSpec("cache", Keeper), SupervisorSpec("team", [ChildSpec("ledger", Keeper)])],
        store=store,
        key="shop",
    ) as sup:
        assert sup.key == "shop"
        assert sup.call("cache", "value") == 7 and sup.call("team/ledger", "value") == 11
        sup.call("cache", "add", 1)
    assert store.load("shop/cache").state == {"count": 8}  # snapshotted on its way out


def test_a_restarting_child_is_waited_for_within_the_timeout(ray_cluster: dict) -> None:
    with Supervisor(
        [ChildSpec("slow", Keeper)],
        backoff_s=(3.0, 3.0),  # the second failure in a row waits 3 s before its restart
        health_check_interval_s=0.3,
        health_check_timeout_s=5.0,
    ) as sup:
        for _ in range(2):
            pid = sup.call("slow", "pid")
            os.kill(pid, signal.SIGKILL)
            wait_until(
                lambda p=pid: (
                    sup.which_children()[0]["state"] != "running"
                    or sup.which_children()[0]["pid"] != p
                ),
                "the crash noticed",
            )
        with pytest.raises(CallTimeoutError, match=r"call\('slow', 'value'\)"):
            sup.call("slow", "value", timeout=0.5)  # restarting: not back within 0.5 s
        assert sup.call("slow", "value", timeout=TIMEOUT) == 0  # waited for, then answered


@pytest.fixture(scope="module")
def arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    # Integers held as floats: every order of summation gives the exact same result.
    return [rng.integers(-1000, 1000, size=64).astype(np.float64) for _ in range(1000)]


@pytest.mark.parametrize("fan_in", [2, 4, 16])
def test_tree_reduce_equals_the_flat_sum(
    ray_cluster: dict, arrays: list[np.ndarray], fan_in: int
) -> None:
    refs = [ray.put(a) for a in arrays]
    flat = np.sum(arrays, axis=0)
    result = tree_reduce(refs, lambda xs: np.sum(xs, axis=0), fan_in=fan_in, budget_s=TIMEOUT)
    np.testing.assert_array_equal(result, flat)
    # Plain values work too, and one item is one call of fn.
    assert tree_reduce([3], sum, budget_s=TIMEOUT) == 3


def test_tree_reduce_keeps_order_for_an_associative_fn(ray_cluster: dict) -> None:
    words = [chr(ord("a") + i) for i in range(26)]
    assert tree_reduce(words, "".join, fan_in=3, budget_s=TIMEOUT) == "".join(words)
    with pytest.raises(ValueError, match="at least one value"):
        tree_reduce([], sum)


def _halves(xs: list[int]) -> list[list[int]]:
    return [xs[: len(xs) // 2], xs[len(xs) // 2 :]] if len(xs) > 8 else []


@pytest.mark.parametrize("max_depth", [0, 2])
def test_divide_and_conquer_matches_the_local_result(ray_cluster: dict, max_depth: int) -> None:
    problem = list(range(200))
    result = divide_and_conquer(
        problem, split=_halves, solve=sum, combine=sum, max_depth=max_depth, budget_s=TIMEOUT
    )
    assert result == sum(problem)


class _Stuck:
    """``fn`` for the task trees: writes its pid to a file, then never returns on ``trap``."""

    def __init__(self, path: str, trap: int) -> None:
        self.path, self.trap = path, trap

    def __call__(self, values: list[int]) -> int:
        if self.trap in values:
            Path(self.path).write_text(str(os.getpid()))
            time.sleep(3600)
        return sum(values)


def _process_gone(pid_file: Path) -> bool:
    try:
        return psutil.Process(int(pid_file.read_text())).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_stuck_task_in_tree_reduce_is_a_timeout_and_is_cancelled(
    ray_cluster: dict, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(CallTimeoutError, match=r"tree_reduce: no result within budget_s=3 s"):
        tree_reduce(range(8), _Stuck(str(pid_file), trap=5), fan_in=2, budget_s=3)
    assert time.monotonic() - started < 3 + 30  # the budget, and the cancel's slack
    assert pid_file.exists(), "the stuck task never ran: nothing was checked"
    wait_until(lambda: _process_gone(pid_file), "the stuck task's process stopped")
    assert tree_reduce(range(8), sum, fan_in=2, budget_s=TIMEOUT) == 28  # the CPU is free


def test_a_stuck_task_in_divide_and_conquer_is_a_timeout_and_is_cancelled(
    ray_cluster: dict, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    # Whichever gives up first at the deadline, the waiting task (which then names its
    # depth) or the caller, the caller gets CallTimeoutError.
    with pytest.raises(CallTimeoutError, match=r"divide_and_conquer: no result within budget_s=5"):
        divide_and_conquer(
            list(range(40)),
            split=_halves,
            solve=_Stuck(str(pid_file), trap=7),
            combine=sum,
            max_depth=1,  # three tasks: the one that gets stuck starts well within the budget
            budget_s=5,
        )
    assert pid_file.exists(), "the stuck task never ran: nothing was checked"
    wait_until(lambda: _process_gone(pid_file), "the stuck task's process stopped")
    with pytest.raises(RemoteCallError, match="divide_and_conquer: the recursion raised"):
        divide_and_conquer(3, split=lambda n: [], solve=lambda n: 1 / 0, combine=sum)
