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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import ray

from patterns._checks import check_int, check_positive_float, describe

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


def tree_reduce(
    items: Iterable[Any],
    fn: Callable[[list[Any]], T],
    *,
    fan_in: int = 4,
    task_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
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
        timeout: Seconds to wait for the root (None waits forever).

    Returns:
        ``fn`` applied over the whole tree.

    Raises:
        TypeError: If ``fn`` is not callable or an option has the wrong type.
        ValueError: If ``items`` is empty or ``fan_in < 2``.
        ray.exceptions.GetTimeoutError: If ``timeout`` passed.

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
    wait = None if timeout is None else check_positive_float("timeout", timeout)
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        msg = f"'items' must be an iterable of values or ObjectRefs, got {describe(items)}"
        raise TypeError(msg)
    level: list[Any] = list(items)
    if not level:
        raise ValueError("'items' must hold at least one value, got none")
    combine = _combine.options(**options) if options else _combine
    fn_ref = ray.put(fn)  # shipped once, not once per task
    while True:
        level = [
            combine.remote(fn_ref, *level[i : i + fan_in]) for i in range(0, len(level), fan_in)
        ]
        if len(level) == 1:
            result: T = ray.get(level[0], timeout=wait)
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


@ray.remote
def _divide(
    problem: Any,
    split: Callable[[Any], Sequence[Any]],
    solve: Callable[[Any], Any],
    combine: Callable[[list[Any]], Any],
    depth_left: int,
    options: dict[str, Any],
    timeout: float | None,
) -> Any:
    parts = split(problem)
    if not parts:
        return solve(problem)
    if depth_left == 0:
        return _solve_here(problem, split, solve, combine)
    task = _divide.options(**options) if options else _divide
    refs = [
        task.remote(part, split, solve, combine, depth_left - 1, options, timeout) for part in parts
    ]
    # Blocking here is safe for tasks: Ray lends this task's CPU out while it waits.
    return combine(ray.get(refs, timeout=timeout))


def divide_and_conquer(
    problem: P,
    *,
    split: Callable[[P], Sequence[P]],
    solve: Callable[[P], T],
    combine: Callable[[list[T]], T],
    max_depth: int = 3,
    task_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
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
        timeout: Seconds any task (and the caller) waits for its children.

    Returns:
        The combined solution.

    Raises:
        TypeError: If ``split``, ``solve`` or ``combine`` is not callable.
        ValueError: If ``max_depth < 0``.

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
    wait = None if timeout is None else check_positive_float("timeout", timeout)
    task = _divide.options(**options) if options else _divide
    result: T = ray.get(
        task.remote(problem, split, solve, combine, max_depth, options, wait), timeout=wait
    )
    return result
