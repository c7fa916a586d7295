"""Actor trees without Ray: the supervision rules on a fake clock, and the argument checks.

The rules (`patterns.trees._policy`) decide everything a supervisor does after a child
ends; here they are driven by hand, with a clock the test moves. The argument checks
must fail at the caller's line, before any actor exists: the module-scoped
``no_ray`` fixture asserts that none of these tests started or reached Ray.
Behaviour on a cluster is in test_trees_cluster.py, real kills in test_trees_faults.py.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Iterator

import pytest
import ray

from patterns import (
    ChildSpec,
    ChildStartError,
    ChildStateError,
    DuplicateChildError,
    PatternError,
    Supervisor,
    SupervisorSpec,
    TreeError,
    TreeFailedError,
    UnknownChildError,
    divide_and_conquer,
    tree_reduce,
)
from patterns.trees._policy import (
    ABNORMAL,
    NORMAL,
    RESTARTING,
    RUNNING,
    STOPPED,
    Backoff,
    RestartIntensity,
    Supervision,
)
from patterns.trees._specs import SUPERVISOR_SHUTDOWN_MARGIN_S


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rules(
    strategy: str,
    children: list[tuple[str, str]] | None = None,
    *,
    max_restarts: int = 3,
    within_s: float = 5.0,
    backoff: Backoff | None = None,
) -> tuple[Supervision, FakeClock]:
    clock = FakeClock()
    sup = Supervision(
        children or [("a", "permanent"), ("b", "permanent"), ("c", "permanent")],
        strategy=strategy,
        max_restarts=max_restarts,
        within_s=within_s,
        backoff=backoff,
        clock=clock,
    )
    for name in sup.order:
        sup.starting(name)
        sup.started(name)
    return sup, clock


def restart_all_due(sup: Supervision) -> list[str]:
    due = sup.due()
    for name in due:
        sup.starting(name)
        sup.started(name)
    return due


# --- strategies ---------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_failed_child() -> None:
    sup, _ = rules("one_for_one")
    decision = sup.exited("b", ABNORMAL, "crashed")
    assert decision.stop == [] and decision.restart == ["b"] and decision.give_up is None
    assert [sup.records[n].state for n in "abc"] == [RUNNING, RESTARTING, RUNNING]
    assert restart_all_due(sup) == ["b"]
    assert [sup.records[n].restarts for n in "abc"] == [0, 1, 0]


def test_one_for_all_stops_the_others_last_first_then_restarts_all_in_order() -> None:
    sup, _ = rules("one_for_all")
    decision = sup.exited("b", ABNORMAL, "crashed")
    assert decision.stop == ["c", "a"]  # reverse start order, the failed child excluded
    assert decision.restart == ["a", "b", "c"]
    assert restart_all_due(sup) == ["a", "b", "c"]
    assert [sup.records[n].restarts for n in "abc"] == [1, 1, 1]


def test_rest_for_one_restarts_the_failed_child_and_those_after_it() -> None:
    sup, _ = rules("rest_for_one", [(n, "permanent") for n in "abcd"])
    decision = sup.exited("b", ABNORMAL, "crashed")
    assert decision.stop == ["d", "c"]
    assert decision.restart == ["b", "c", "d"]
    assert sup.records["a"].state == RUNNING
    restart_all_due(sup)
    decision = sup.exited("d", ABNORMAL, "crashed")  # the last child: only itself
    assert decision.stop == [] and decision.restart == ["d"]


def test_a_group_restart_also_restarts_children_that_had_stopped() -> None:
    # OTP restarts every non-temporary child of the group, running or not.
    sup, _ = rules("one_for_all", [("a", "transient"), ("b", "permanent")])
    assert sup.exited("a", NORMAL, "done").restart == []
    assert sup.records["a"].state == STOPPED
    decision = sup.exited("b", ABNORMAL, "crashed")
    assert decision.stop == [] and decision.restart == ["a", "b"]


# --- restart types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("restart", "how", "restarted"),
    [
        ("permanent", NORMAL, True),
        ("permanent", ABNORMAL, True),
        ("transient", NORMAL, False),
        ("transient", ABNORMAL, True),
        ("temporary", NORMAL, False),
        ("temporary", ABNORMAL, False),
    ],
)
def test_restart_types(restart: str, how: str, restarted: bool) -> None:
    sup, _ = rules("one_for_one", [("x", restart), ("y", "permanent")])
    decision = sup.exited("x", how, "ended")
    assert (decision.restart == ["x"]) is restarted
    if restart == "temporary":
        assert decision.remove == ["x"] and "x" not in sup.order  # forgotten
    elif not restarted:
        assert sup.records["x"].state == STOPPED and sup.records["x"].last_exit == "ended"


def test_temporary_siblings_are_stopped_and_forgotten_in_a_group_restart() -> None:
    sup, _ = rules("one_for_all", [("a", "permanent"), ("t", "temporary"), ("c", "permanent")])
    decision = sup.exited("a", ABNORMAL, "crashed")
    assert decision.stop == ["c", "t"]
    assert decision.remove == ["t"] and decision.restart == ["a", "c"]
    assert sup.order == ["a", "c"]


def test_a_normal_exit_is_not_counted_against_the_intensity() -> None:
    sup, _ = rules("one_for_one", [("x", "transient")], max_restarts=0)
    assert sup.exited("x", NORMAL, "done").give_up is None


# --- intensity ----------------------------------------------------------------------------


def test_intensity_window_slides() -> None:
    intensity = RestartIntensity(max_restarts=2, within_s=10.0)
    assert [intensity.add(t) for t in (0.0, 4.0)] == [False, False]
    assert intensity.add(9.0) is True  # three within 10 s
    assert intensity.add(15.0) is False  # 0.0 and 4.0 have left the window: 9 and 15
    assert intensity.count(15.0) == 2


def test_more_than_max_restarts_within_the_window_gives_up_with_the_reason() -> None:
    sup, clock = rules("one_for_one", max_restarts=2, within_s=5.0)
    for _ in range(2):
        assert sup.exited("a", ABNORMAL, "crashed").give_up is None
        restart_all_due(sup)
        clock.advance(1.0)
    decision = sup.exited("a", ABNORMAL, "crashed: its process died (SYSTEM_ERROR)")
    assert decision.give_up is not None
    assert "max_restarts=2" in decision.give_up and "within 5 s" in decision.give_up
    assert "'a' crashed: its process died" in decision.give_up
    assert decision.restart == []


def test_restarts_spread_out_over_time_never_give_up() -> None:
    sup, clock = rules("one_for_one", max_restarts=1, within_s=5.0)
    for _ in range(10):
        assert sup.exited("a", ABNORMAL, "crashed").give_up is None
        restart_all_due(sup)
        clock.advance(6.0)


def test_max_restarts_zero_gives_up_at_the_first_restart() -> None:
    sup, _ = rules("one_for_one", max_restarts=0)
    assert sup.exited("c", ABNORMAL, "crashed").give_up is not None


# --- backoff ------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter_within_bounds() -> None:
    backoff = Backoff(0.5, 3.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.delay(n) for n in range(1, 8)]
    assert delays[0] == 0.0  # a first failure restarts at once
    for delay, base in zip(delays[1:], [0.5, 1.0, 2.0, 3.0, 3.0, 3.0], strict=True):
        assert base <= delay < base * 1.2
    assert len({round(d, 9) for d in delays[4:]}) == 3  # jitter: no lockstep at the cap


def test_a_child_that_keeps_failing_backs_off_and_a_stable_one_does_not() -> None:
    sup, clock = rules(
        "one_for_one", max_restarts=100, within_s=5.0, backoff=Backoff(1.0, 8.0, jitter=0.0)
    )
    delays = []
    for _ in range(4):  # fails again right after each restart
        decision = sup.exited("a", ABNORMAL, "crashed")
        delays.append(decision.delay_s)
        assert sup.due() == ([] if decision.delay_s else ["a"])
        clock.advance(decision.delay_s)
        assert restart_all_due(sup) == ["a"]
    assert delays == [0.0, 1.0, 2.0, 4.0]
    clock.advance(5.0)  # a stable run of within_s: the next failure starts over
    assert sup.exited("a", ABNORMAL, "crashed").delay_s == 0.0


def test_next_restart_at_tells_the_loop_when_to_wake() -> None:
    sup, clock = rules("one_for_one", backoff=Backoff(2.0, 8.0, jitter=0.0))
    assert sup.next_restart_at() is None
    sup.exited("a", ABNORMAL, "crashed")
    restart_all_due(sup)
    sup.exited("a", ABNORMAL, "crashed")
    assert sup.next_restart_at() == pytest.approx(clock.now + 2.0)
    assert sup.due() == []


def test_membership() -> None:
    sup, _ = rules("rest_for_one")
    sup.add("d", "temporary")
    assert sup.order == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="a child named 'a' exists already"):
        sup.add("a", "permanent")
    sup.stopped("b")
    assert sup.records["b"].state == STOPPED
    sup.remove("b")
    assert sup.order == ["a", "c", "d"]


# --- argument checks: nothing reaches Ray -------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def no_ray() -> Iterator[None]:
    """These tests run without a cluster: any call that reached Ray would start one."""
    was_connected = ray.is_initialized()
    yield
    if not was_connected:
        assert not ray.is_initialized(), "an argument check reached Ray"


class Worker:
    def ping(self) -> str:
        return "pong"


class Abstract(abc.ABC):
    @abc.abstractmethod
    def work(self) -> None: ...


def a_function() -> None:
    pass


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"strategy": "one_for_some"}, ValueError, "'strategy' must be one of 'one_for_one'"),
        ({"strategy": 1}, TypeError, "'strategy' must be one of"),
        ({"max_restarts": -1}, ValueError, "'max_restarts' must be an int >= 0, got -1"),
        ({"max_restarts": 2.5}, TypeError, "'max_restarts' must be an int"),
        ({"within_s": 0}, ValueError, "'within_s' must be a finite number > 0, got 0.0"),
        ({"health_check_interval_s": -1}, ValueError, "'health_check_interval_s' must be"),
        ({"health_check_timeout_s": 0}, ValueError, "'health_check_timeout_s' must be"),
        ({"backoff_s": 0}, ValueError, "'backoff_s' must be a finite number > 0"),
        ({"backoff_s": (2.0, 1.0)}, ValueError, "'backoff_s' must have max_s >= first_s"),
        ({"backoff_s": (1.0,)}, ValueError, "'backoff_s' must be seconds or"),
        ({"store": "/tmp/snapshots"}, TypeError, "wrap it, e.g. store=DirectoryStore"),
        ({"name": ""}, ValueError, "'name' must be a non-empty str"),
        ({"actor_options": {"num_cpus": "x"}}, (TypeError, ValueError), "actor_options"),
        ({"actor_options": [("num_cpus", 0)]}, TypeError, "'actor_options' must be a dict"),
        (
            {"actor_options": {"name": "root"}},
            ValueError,
            "'actor_options' may not set 'name': pass name='root' to Supervisor(...)",
        ),
        ({"namespace": "ns"}, ValueError, "'namespace' only applies to a named Supervisor"),
        ({"timeout": 0}, ValueError, "'timeout' must be a finite number > 0, got 0.0"),
        ({"timeout": "1"}, TypeError, "'timeout' must be"),
        ({"key": "tree"}, ValueError, "'key' only applies to a supervisor with a 'store'"),
    ],
)
def test_supervisor_refuses_bad_options(
    kwargs: dict, error: type[Exception] | tuple[type[Exception], ...], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        Supervisor([ChildSpec("w", Worker)], **kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("w", Worker), {"restart": "sometimes"}, ValueError, "'restart' must be one of"),
        (("", Worker), {}, ValueError, "'name' must be a non-empty str"),
        (("w", a_function), {}, TypeError, "a function becomes a Ray task, not an actor"),
        (("w", Worker()), {}, TypeError, "pass the class itself, not an instance"),
        (("w", Abstract), {}, TypeError, "cannot become an actor: it is abstract"),
        (("w", Worker), {"args": "abc"}, TypeError, "'args' must be a tuple or list"),
        (("w", Worker), {"kwargs": {1: 2}}, TypeError, "'kwargs' must be a dict with str keys"),
        (("w", Worker), {"shutdown_timeout_s": 0}, ValueError, "'shutdown_timeout_s' must be"),
        (("w", Worker), {"start_timeout_s": -2}, ValueError, "'start_timeout_s' must be"),
        (
            ("w", Worker),
            {"actor_options": {"max_restarts": 3}},
            ValueError,
            "the supervisor restarts its children itself",
        ),
        (
            ("w", Worker),
            {"actor_options": {"lifetime": "detached", "name": "x"}},
            ValueError,
            "must share its supervisor's fate",
        ),
        (("w", Worker), {"actor_options": {"no_such_option": 1}}, ValueError, "refused by Ray"),
        (("team/w", Worker), {}, ValueError, "'name' may not contain '/'"),
    ],
)
def test_child_spec_refuses_bad_arguments(
    args: tuple, kwargs: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ChildSpec(*args, **kwargs)


def test_child_spec_accepts_a_remote_class_and_sees_its_methods() -> None:
    @ray.remote
    class Remote:
        def snapshot(self) -> int:
            return 1

        def restore(self, state: int) -> None:
            pass

    spec = ChildSpec("r", Remote)
    assert spec.actor_class.__name__ == "Remote" and spec.checkpointed
    assert not ChildSpec("w", Worker).checkpointed
    with pytest.raises(TypeError, match=r"got a running actor|must be a class"):
        ChildSpec("w", object())  # type: ignore[arg-type]


def test_duplicate_names_are_refused_at_every_level() -> None:
    with pytest.raises(ValueError, match="two children named 'w'"):
        Supervisor([ChildSpec("w", Worker), ChildSpec("w", Worker)])
    with pytest.raises(ValueError, match="two children named 'x'"):
        SupervisorSpec("team", [ChildSpec("x", Worker), ChildSpec("x", Worker)])
    team = SupervisorSpec("team", [ChildSpec("x", Worker)])
    team.children.append(ChildSpec("x", Worker))  # edited after it was checked
    with pytest.raises(ValueError, match=r"'team\.children' holds two children named 'x'"):
        Supervisor([team])


def test_a_spec_tree_that_contains_itself_is_refused() -> None:
    team = SupervisorSpec("team", [ChildSpec("w", Worker)])
    inner = SupervisorSpec("inner", [ChildSpec("w", Worker)])
    team.children.append(inner)
    inner.children.append(team)
    with pytest.raises(
        ValueError, match="the spec tree contains itself: root > team > inner > team"
    ):
        Supervisor([team], name="root")
    # The same spec in two branches is not a cycle: it is checked, not refused.
    shared = SupervisorSpec("shared", [ChildSpec("w", Worker)])
    from patterns.trees._specs import check_tree

    check_tree([SupervisorSpec("x", [shared]), SupervisorSpec("y", [shared])], root="root")


def test_children_must_be_specs() -> None:
    with pytest.raises(TypeError, match=r"'children\[1\]' must be a ChildSpec or SupervisorSpec"):
        Supervisor([ChildSpec("w", Worker), Worker])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="'children' must be a list of ChildSpec"):
        Supervisor(ChildSpec("w", Worker))  # type: ignore[arg-type]


def test_supervisor_spec_checks_its_options() -> None:
    with pytest.raises(TypeError, match="unknown supervisor option\\(s\\) 'stratgy'"):
        SupervisorSpec("s", [ChildSpec("w", Worker)], stratgy="one_for_all")
    with pytest.raises(ValueError, match="'max_restarts' must be an int >= 0"):
        SupervisorSpec("s", [ChildSpec("w", Worker)], max_restarts=-3)
    with pytest.raises(ValueError, match="its parent restarts it"):
        SupervisorSpec("s", [ChildSpec("w", Worker)], actor_options={"max_restarts": -1})
    spec = SupervisorSpec("s", [ChildSpec("w", Worker, shutdown_timeout_s=2.0)] * 1)
    assert spec.shutdown_timeout_s == 2.0 + SUPERVISOR_SHUTDOWN_MARGIN_S
    assert spec.restart == "permanent" and spec.config.health_check_timeout_s == 1.0


def test_a_supervisor_spec_name_may_not_hold_the_path_separator() -> None:
    with pytest.raises(ValueError, match="'name' may not contain '/'"):
        SupervisorSpec("a/b", [ChildSpec("w", Worker)])


def test_the_tree_errors_are_pattern_errors_and_keep_a_builtin_base_where_it_reads_well() -> None:
    for error in (ChildStartError, ChildStateError, TreeFailedError):
        assert issubclass(error, TreeError) and issubclass(error, PatternError)
    # A name the tree does not know is a lookup that failed; a name it has already is a
    # value that clashes with its state: both still PatternErrors (and RuntimeErrors).
    assert issubclass(UnknownChildError, LookupError) and issubclass(UnknownChildError, TreeError)
    assert issubclass(DuplicateChildError, ValueError)
    assert issubclass(DuplicateChildError, TreeError)
    assert issubclass(TreeError, RuntimeError)


def test_task_helpers_check_their_arguments() -> None:
    with pytest.raises(TypeError, match="'fn' must be a callable"):
        tree_reduce([1, 2], "sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'fan_in' must be an int >= 2, got 1"):
        tree_reduce([1, 2], sum, fan_in=1)
    with pytest.raises(TypeError, match="'task_options' must be a dict"):
        tree_reduce([1, 2], sum, task_options=[("num_cpus", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'combine' must be a callable"):
        divide_and_conquer(1, split=list, solve=abs, combine=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'max_depth' must be an int >= 0"):
        divide_and_conquer(1, split=list, solve=abs, combine=sum, max_depth=-1)
    with pytest.raises(ValueError, match=r"'budget_s' must be a finite number > 0, got 0\.0"):
        tree_reduce([1, 2], sum, budget_s=0)
    with pytest.raises(TypeError, match="'budget_s' must be"):
        divide_and_conquer(1, split=list, solve=abs, combine=sum, budget_s="60")
