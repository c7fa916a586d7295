"""Actor trees on the shared cluster: start and stop order, the calls, aggregation, nested tasks.

Faults (SIGKILLs, hangs, restart storms) are in test_trees_faults.py.
"""

from __future__ import annotations

import atexit
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
import ray.cloudpickle

from patterns import ChildSpec, Supervisor, SupervisorSpec, divide_and_conquer, tree_reduce
from tests._trees_children import TIMEOUT, Plain, is_dead, wait_until


class Logged:
    """Appends 'start name' when created and 'stop name' when its process exits cleanly."""

    def __init__(self, name: str, path: str) -> None:
        self._write(path, f"start {name}")
        atexit.register(self._write, path, f"stop {name}")

    @staticmethod
    def _write(path: str, line: str) -> None:
        with open(path, "a") as f:
            f.write(line + "\n")

    def pid(self) -> int:
        return os.getpid()


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
    try:
        yield sup, log
    finally:
        sup.shutdown()


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
    # Attach by name, and a facade pickled into another process: the same tree.
    assert Supervisor.attach("order-test").pid() == sup.pid()
    copy = pickle.loads(pickle.dumps(sup))
    assert [c["name"] for c in copy.which_children()] == ["a", "b", "team"]


def test_dynamic_children_and_their_errors(logged_tree: tuple[Supervisor, Path]) -> None:
    sup, _ = logged_tree
    names = [c["name"] for c in sup.which_children()]
    entry = sup.start_child(ChildSpec("extra", Plain))
    assert entry["name"] == "extra" and entry["state"] == "running" and entry["pid"]
    assert [c["name"] for c in sup.which_children()] == [*names, "extra"]
    with pytest.raises(ValueError, match="has a child named 'extra' already"):
        sup.start_child(ChildSpec("extra", Plain))
    with pytest.raises(RuntimeError, match="child 'db' failed to start: its constructor"):
        sup.start_child(ChildSpec("db", Broken))
    assert [c["name"] for c in sup.which_children()] == [*names, "extra"]

    extra = sup.child("extra")
    sup.terminate_child("extra")
    assert is_dead(extra)
    stopped = sup.which_children()[-1]
    assert stopped["state"] == "stopped" and stopped["pid"] is None
    with pytest.raises(RuntimeError, match="child 'extra' is not running"):
        sup.child("extra")
    with pytest.raises(RuntimeError, match=r"restart_child\(\) starts a stopped child"):
        sup.restart_child("a")
    again = sup.restart_child("extra")
    assert again["state"] == "running" and again["pid"] != entry["pid"]
    with pytest.raises(RuntimeError, match="terminate it first"):
        sup.delete_child("extra")
    sup.terminate_child("extra")
    sup.delete_child("extra")
    assert [c["name"] for c in sup.which_children()] == names
    with pytest.raises(ValueError, match="has no child named 'nope'"):
        sup.child("nope")
    with pytest.raises(TypeError, match="'spec' must be a ChildSpec or SupervisorSpec"):
        sup.start_child(Plain)  # type: ignore[arg-type]
    assert sup.status()["state"] == "running"


def test_shutdown_stops_children_before_parents_last_started_first(
    logged_tree: tuple[Supervisor, Path],
) -> None:
    sup, log = logged_tree
    sup.shutdown(timeout=TIMEOUT)
    assert is_dead(sup.actor)
    stops = wait_until(lambda: len(_events(log, "stop")) == 4 and _events(log, "stop"), "4 stops")
    assert stops == ["d", "c", "b", "a"]


def test_a_tree_whose_child_cannot_start_is_not_started(ray_cluster: dict, tmp_path: Path) -> None:
    log = tmp_path / "events"
    with pytest.raises(RuntimeError, match="child 'db' failed to start: its constructor raised"):
        Supervisor([_logged("cache", log), ChildSpec("db", Broken)], name="broken-tree")
    # The child started before it was stopped again, and the supervisor is gone.
    wait_until(lambda: _events(log, "stop") == ["cache"], "cache stopped")
    assert _events(log, "start") == ["cache"]

    def gone() -> bool:
        try:
            Supervisor.attach("broken-tree")
        except ValueError:
            return True
        return False

    wait_until(gone, "the supervisor of the broken tree gone")


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
    result = tree_reduce(refs, lambda xs: np.sum(xs, axis=0), fan_in=fan_in, timeout=TIMEOUT)
    np.testing.assert_array_equal(result, flat)
    # Plain values work too, and one item is one call of fn.
    assert tree_reduce([3], sum, timeout=TIMEOUT) == 3


def test_tree_reduce_keeps_order_for_an_associative_fn(ray_cluster: dict) -> None:
    words = [chr(ord("a") + i) for i in range(26)]
    assert tree_reduce(words, "".join, fan_in=3, timeout=TIMEOUT) == "".join(words)
    with pytest.raises(ValueError, match="at least one value"):
        tree_reduce([], sum)


def _halves(xs: list[int]) -> list[list[int]]:
    return [xs[: len(xs) // 2], xs[len(xs) // 2 :]] if len(xs) > 8 else []


@pytest.mark.parametrize("max_depth", [0, 2])
def test_divide_and_conquer_matches_the_local_result(ray_cluster: dict, max_depth: int) -> None:
    problem = list(range(200))
    result = divide_and_conquer(
        problem, split=_halves, solve=sum, combine=sum, max_depth=max_depth, timeout=TIMEOUT
    )
    assert result == sum(problem)
