"""Trees of tasks: hierarchical aggregation, and divide and conquer with nested tasks.

`tree_reduce` submits every task from the caller and passes ObjectRefs as arguments,
so no task ever waits for another: Ray starts a combining task once its inputs
exist, and only the root's value travels back to the caller.

`divide_and_conquer` is the other shape: tasks that launch tasks. A task that waits
for its children with ``ray.get`` gives its CPU back to Ray while it waits (so the
children can run), but keeps its worker process; every level of recursion adds
blocked processes. A depth bound (``max_depth``), below which subproblems are solved
in the task's own process, keeps that number at ``fan_out ** max_depth`` whatever
the input size.

Both take a ``budget_s``: the whole computation's bound, every wait inside it included
(`patterns._calls.DEFAULT_TIMEOUT_S` unless given; None waits without a bound). A task
that is stuck surfaces as `patterns.CallTimeoutError` once the budget is spent, and the
tasks still running are cancelled (their processes stopped), so nothing keeps a CPU busy
for a result nobody waits for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import ray

from patterns._calls import DEFAULT_TIMEOUT_S, get
from patterns._checks import check_int, check_positive_float, describe
from patterns.errors import CallTimeoutError, PatternError

__all__ = ["divide_and_conquer", "tree_reduce"]

T = TypeVar("T")
P = TypeVar("P")


@ray.remote
def _combine(fn: Callable[[list[Any]], Any], *values: Any) -> Any:
    return fn(list(values))


def _check_callable(name: str, fn: object) -> None:
    if not callable(fn):
        msg = f"'{name}' must be a callable, got {describe(fn)}"
        raise TypeError(msg)


def _check_task_options(task_options: object) -> dict[str, Any]:
    if task_options is None:
        return {}
    if not isinstance(task_options, Mapping) or not all(isinstance(k, str) for k in task_options):
        msg = f"'task_options' must be a dict of Ray options or None, got {describe(task_options)}"
        raise TypeError(msg)
    options = dict(task_options)
    try:
        _combine.options(**options)  # Ray checks names and values locally
    except (TypeError, ValueError) as exc:
        msg = f"'task_options' were refused by Ray: {exc}"
        raise type(exc)(msg) from exc
    return options


def _check_budget(budget_s: object) -> float | None:
    return None if budget_s is None else check_positive_float("budget_s", budget_s)


def _cancel(refs: Iterable[Any], *, recursive: bool = False) -> None:
    """Cancel tasks that may still run (their workers are stopped); finished ones are left."""
    for ref in refs:
        try:
            ray.cancel(ref, force=True, recursive=recursive)
        except Exception:  # finished, or already cancelled
            pass


def tree_reduce(
    items: Iterable[Any],
    fn: Callable[[list[Any]], T],
    *,
    fan_in: int = 4,
    task_options: Mapping[str, Any] | None = None,
    budget_s: float | None = DEFAULT_TIMEOUT_S,
) -> T:
    """Aggregate ``items`` level by level in a tree of Ray tasks; return the root's value.

    The items (values, or ObjectRefs of values computed elsewhere) are cut into groups
    of ``fan_in``; a task applies ``fn`` to each group, then to groups of those
    results, until one value is left. Every task is submitted at once, with the
    ObjectRefs of the level below as its arguments: no task blocks on another, the
    work spreads over the cluster, and only the root's value is fetched. A flat
    reduction instead brings every item to the caller first.

    ``fn`` must accept a list of 1 to ``fan_in`` values and return a value of the same
    kind (``sum``, ``np.add.reduce`` ...), so that it can combine its own results;
    the tree's shape may differ from a left-to-right fold, so ``fn`` should be
    associative.

    Args:
        items: The leaves: values or ObjectRefs (at least one).
        fn: Combines a list of values into one.
        fan_in: How many values each task combines (>= 2).
        task_options: Ray options for the combining tasks (``num_cpus``, ...).
        budget_s: Seconds the whole reduction may take (default 60; None: no bound).
            Past it, the tasks still running are cancelled.

    Returns:
        ``fn`` applied over the whole tree.

    Raises:
        TypeError: If ``fn`` is not callable or an option has the wrong type.
        ValueError: If ``items`` is empty, ``fan_in < 2`` or ``budget_s`` is not > 0.
        patterns.CallTimeoutError: No result within ``budget_s`` (a task is stuck,
            or the cluster too busy).
        patterns.RemoteCallError: ``fn`` raised (``remote_type`` names the exception),
            or an ObjectRef among ``items`` holds an error.

    Examples:
        >>> tree_reduce(range(10), sum, fan_in=3)
        45
        >>> refs = [ray.put(i) for i in range(4)]
        >>> tree_reduce(refs, max, fan_in=2)
        3
    """
    _check_callable("fn", fn)
    fan_in = check_int("fan_in", fan_in, minimum=2)
    options = _check_task_options(task_options)
    budget = _check_budget(budget_s)
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        msg = f"'items' must be an iterable of values or ObjectRefs, got {describe(items)}"
        raise TypeError(msg)
    level: list[Any] = list(items)
    if not level:
        raise ValueError("'items' must hold at least one value, got none")
    combine = _combine.options(**options) if options else _combine
    fn_ref = ray.put(fn)  # shipped once, not once per task
    submitted: list[Any] = []
    while True:
        level = [
            combine.remote(fn_ref, *level[i : i + fan_in]) for i in range(0, len(level), fan_in)
        ]
        submitted += level
        if len(level) == 1:
            break
    try:
        result: T = get(level[0], timeout=budget, who="tree_reduce", method="fn")
    except CallTimeoutError:
        _cancel(submitted)
        msg = (
            f"tree_reduce: no result within budget_s={budget:g} s ({len(submitted)} tasks; "
            "those still running were cancelled)"
        )
        raise CallTimeoutError(msg) from None
    except PatternError:
        _cancel(submitted)
        raise
    return result


def _solve_here(
    problem: Any,
    split: Callable[[Any], Sequence[Any]],
    solve: Callable[[Any], Any],
    combine: Callable[[list[Any]], Any],
) -> Any:
    parts = split(problem)
    if not parts:
        return solve(problem)
    return combine([_solve_here(part, split, solve, combine) for part in parts])


class _OutOfTime:
    """What a task of `divide_and_conquer` returns when the budget ran out below it.

    A reply, not an exception: the caller may have given up at the same deadline, and
    an error nobody fetches is logged by Ray as unhandled.
    """

    def __init__(self, depth: int, waited_for: int) -> None:
        self.depth, self.waited_for = depth, waited_for


@ray.remote
def _divide(
    problem: Any,
    split: Callable[[Any], Sequence[Any]],
    solve: Callable[[Any], Any],
    combine: Callable[[list[Any]], Any],
    depth: int,
    depth_left: int,
    options: dict[str, Any],
    deadline: float | None,
) -> Any:
    parts = split(problem)
    if not parts:
        return solve(problem)
    if depth_left == 0:
        return _solve_here(problem, split, solve, combine)
    task = _divide.options(**options) if options else _divide
    refs = [
        task.remote(part, split, solve, combine, depth + 1, depth_left - 1, options, deadline)
        for part in parts
    ]
    # Blocking here is safe for tasks: Ray lends this task's CPU out while it waits. The
    # deadline is wall-clock time: the tasks may run on other hosts.
    left = None if deadline is None else max(0.001, deadline - time.time())
    try:
        solutions = ray.get(refs, timeout=left)
    except ray.exceptions.GetTimeoutError:
        _cancel(refs, recursive=True)
        return _OutOfTime(depth, len(refs))
    below = next((s for s in solutions if isinstance(s, _OutOfTime)), None)
    return below if below is not None else combine(solutions)


def divide_and_conquer(
    problem: P,
    *,
    split: Callable[[P], Sequence[P]],
    solve: Callable[[P], T],
    combine: Callable[[list[T]], T],
    max_depth: int = 3,
    task_options: Mapping[str, Any] | None = None,
    budget_s: float | None = DEFAULT_TIMEOUT_S,
) -> T:
    """Solve ``problem`` recursively with nested Ray tasks, at most ``max_depth`` levels deep.

    A task splits its problem; if it gets parts, it launches one task per part,
    waits for their results and combines them; if it gets none (``split`` returns an
    empty list), the problem is small enough and it solves it. Past ``max_depth``
    levels of tasks, the rest of the recursion runs in the task's own process, so the
    number of tasks (and of worker processes blocked waiting for children) is bounded
    by the depth, not by the input size.

    Args:
        problem: The whole problem.
        split: Returns the subproblems, or an empty list when ``problem`` is small
            enough to ``solve`` directly (the base case: without one, the recursion
            never ends).
        solve: Solves a small problem.
        combine: Combines the solutions of the parts, in order.
        max_depth: Levels of tasks below the first (0: one task does everything).
        task_options: Ray options for every task (``num_cpus``, ...).
        budget_s: Seconds the whole recursion may take (default 60; None: no bound).
            Every task waits for its subtasks only until the same deadline (a
            wall-clock time, so hosts' clocks should agree); past it the unfinished
            tasks are cancelled.

    Returns:
        The combined solution.

    Raises:
        TypeError: If ``split``, ``solve`` or ``combine`` is not callable.
        ValueError: If ``max_depth < 0`` or ``budget_s`` is not > 0.
        patterns.CallTimeoutError: No result within ``budget_s`` (a task is stuck, or
            the recursion starved of CPUs).
        patterns.RemoteCallError: ``split``, ``solve`` or ``combine`` raised.

    Examples:
        >>> def halves(xs):
        ...     return [xs[: len(xs) // 2], xs[len(xs) // 2 :]] if len(xs) > 4 else []
        >>> divide_and_conquer(list(range(100)), split=halves, solve=sum, combine=sum, max_depth=2)
        4950
    """
    for name, fn in (("split", split), ("solve", solve), ("combine", combine)):
        _check_callable(name, fn)
    max_depth = check_int("max_depth", max_depth, minimum=0)
    options = _check_task_options(task_options)
    budget = _check_budget(budget_s)
    deadline = None if budget is None else time.time() + budget
    task = _divide.options(**options) if options else _divide
    root = task.remote(problem, split, solve, combine, 0, max_depth, options, deadline)
    result: Any = _OutOfTime(0, 0)
    try:
        result = get(root, timeout=budget, who="divide_and_conquer", method="the recursion")
    except CallTimeoutError:
        _cancel([root], recursive=True)  # result stays "out of time"
    except PatternError:
        _cancel([root], recursive=True)
        raise
    if isinstance(result, _OutOfTime):
        where = (
            f": a task at depth {result.depth} waited for its {result.waited_for} subtasks"
            if result.waited_for
            else ""
        )
        msg = (
            f"divide_and_conquer: no result within budget_s={budget:g} s{where} (the tasks "
            "still running were cancelled)"
        )
        raise CallTimeoutError(msg)
    return result  # type: ignore[no-any-return]
