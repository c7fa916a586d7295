"""The training loop: `train` in sync, async or stale synchronous parallel mode, bounded."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import ray
from ray import ObjectRef

from patterns._calls import DEFAULT, STOP_TIMEOUT_S, check_timeout, get, resolve_timeout
from patterns._checks import check_choice, check_int, check_positive_float, describe
from patterns.errors import ActorLostError, CallTimeoutError
from patterns.parameter_servers._history import TrainingEvent, TrainingHistory, TrainingRecord
from patterns.parameter_servers._models import check_data
from patterns.parameter_servers._server import ParameterServer
from patterns.parameter_servers._worker import GradientWorker

__all__ = ["MAX_REPLACEMENTS", "MODES", "train"]

MODES = ("sync", "async", "ssp")

# A worker that keeps failing (dying for good, or not answering within the timeout) is
# given up on after this many replacements in one `train` call: something is wrong
# with it (its data, its model, its node), not bad luck. Ray's own retries of a call
# whose process died (patterns._calls.MAX_TASK_RETRIES) come before any replacement.
MAX_REPLACEMENTS = 3

T = TypeVar("T")


def _check_train_args(
    server: object,
    workers: object,
    mode: object,
    steps: object,
    staleness: object,
    eval_data: object,
    eval_every: object,
    timeout: object,
    budget_s: object,
) -> tuple[list[GradientWorker], str, int, int | None, tuple[np.ndarray, np.ndarray] | None]:
    if not isinstance(server, ParameterServer):
        msg = f"'server' must be a ParameterServer, got {describe(server)}"
        raise TypeError(msg)
    if not isinstance(workers, Sequence) or isinstance(workers, str):
        msg = f"'workers' must be a list of GradientWorker, got {describe(workers)}"
        raise TypeError(msg)
    if not workers:
        msg = "'workers' must hold at least one GradientWorker, got []"
        raise ValueError(msg)
    for worker in workers:
        if not isinstance(worker, GradientWorker):
            msg = f"'workers' must hold GradientWorker objects, got {describe(worker)}"
            raise TypeError(msg)
    mode = check_choice("mode", mode, MODES)
    steps = check_int("steps", steps, minimum=1)
    if staleness is not None:
        staleness = check_int("staleness", staleness, minimum=0)
        if mode != "ssp":
            msg = f"'staleness' only applies to mode='ssp', got mode={mode!r}"
            raise ValueError(msg)
    elif mode == "ssp":
        msg = "mode='ssp' needs 'staleness' (how many steps the fastest worker may lead)"
        raise ValueError(msg)
    data = None
    if eval_data is not None:
        if not isinstance(eval_data, tuple | list) or len(eval_data) != 2:
            msg = f"'eval_data' must be a pair (X, y), got {describe(eval_data)}"
            raise TypeError(msg)
        data = check_data(*eval_data)
    if eval_every is not None:
        check_int("eval_every", eval_every, minimum=1)
        if data is None:
            msg = "'eval_every' only applies with 'eval_data', got eval_data=None"
            raise ValueError(msg)
    check_timeout(timeout)
    if budget_s is not None:
        check_positive_float("budget_s", budget_s)
    return list(workers), mode, steps, staleness, data


class _Run:
    """The state of one `train` call: clocks, bounds, records, evaluation, replacements."""

    def __init__(
        self,
        server: ParameterServer,
        workers: list[GradientWorker],
        mode: str,
        steps: int,
        data: tuple[np.ndarray, np.ndarray] | None,
        eval_every: int | None,
        timeout: float | None,
        budget_s: float | None,
    ) -> None:
        self.server = server
        self.workers = workers
        self.model = workers[0].model
        self.data = data
        self.eval_every = eval_every
        self.timeout = timeout
        self.budget_s = budget_s
        begun = time.monotonic()
        self.deadline = None if budget_s is None else begun + budget_s
        self.history = TrainingHistory(mode, n_workers=len(workers), steps=steps)
        self.started = time.perf_counter()
        self.update = 0
        self.version = 0
        self.replaced = [0] * len(workers)
        self.budget_spent = False

    # --- bounds -------------------------------------------------------------------------

    def budget_error(self) -> CallTimeoutError:
        self.budget_spent = True
        return CallTimeoutError(
            f"train: the budget of {self.budget_s:g} s ran out after {self.update} update(s) "
            "(budget_s bounds the whole call: raise it, or lower 'steps')"
        )

    def bound(self, at_least: float = 0.0) -> tuple[float | None, bool]:
        """The bound of the next wait, and whether the budget (not the timeout) sets it.

        ``at_least`` raises the timeout's part (not the budget's) for waits that take
        Ray a while whatever the caller's timeout (stopping a process that is stuck).
        """
        timeout = None if self.timeout is None else max(self.timeout, at_least)
        if self.deadline is None:
            return timeout, False
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.budget_error()
        if timeout is None or left < timeout:
            return left, True
        return timeout, False

    def bounded(self, call: Callable[[float | None], T], at_least: float = 0.0) -> T:
        """Run ``call(seconds)``; a timeout that the budget set is the budget's error."""
        seconds, by_budget = self.bound(at_least)
        try:
            return call(seconds)
        except CallTimeoutError as error:
            if by_budget:
                raise self.budget_error() from error
            raise

    # --- records ------------------------------------------------------------------------

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def accuracy(self, params: Mapping[str, np.ndarray]) -> float | None:
        if self.data is None:
            return None
        X, y = self.data
        return float(np.mean(self.model.predict(params, X) == y))

    def due(self, last: bool) -> bool:
        if self.data is None:
            return False
        return last or (self.eval_every is not None and self.update % self.eval_every == 0)

    # --- calls --------------------------------------------------------------------------

    def pull(self) -> tuple[dict[str, np.ndarray], int]:
        return self.bounded(
            lambda seconds: self.server._pull_with_version(timeout=seconds, method="pull")
        )

    def start(self) -> tuple[dict[str, np.ndarray], int]:
        # Actors start in the background: wait for every one, so that the clock
        # measures training, not process start-up.
        for worker in self.workers:
            self.bounded(functools.partial(_started, worker))
        params, self.version = self.pull()
        self.started = time.perf_counter()
        if self.data is not None:
            self.history.records.append(
                TrainingRecord(0, self.version, 0.0, None, self.accuracy(params))
            )
        return params, self.version

    def gradients(self, index: int, ref: ObjectRef[Any]) -> tuple[float, dict[str, np.ndarray]]:
        """Wait (bounded) for worker ``index``'s gradients."""
        worker = self.workers[index]
        result: tuple[float, dict[str, np.ndarray]] = self.bounded(
            lambda seconds: get(ref, timeout=seconds, who=worker._who, method="compute_gradients")
        )
        return result

    def push(
        self,
        gradients: Mapping[str, np.ndarray],
        version: int,
        loss: float,
        worker: int | None,
    ) -> bool:
        staleness = max(0, self.version - version)
        applied = self.bounded(
            lambda seconds: self.server.push(gradients, version=version, timeout=seconds)
        )
        self.update += 1
        if applied:
            self.version += 1
        self.history.records.append(
            TrainingRecord(
                self.update, self.version, self.seconds(), loss, None, worker, staleness, applied
            )
        )
        return applied

    def evaluate(self, params: Mapping[str, np.ndarray]) -> None:
        """Put the accuracy of ``params`` into the latest record."""
        last = self.history.records[-1]
        self.history.records[-1] = TrainingRecord(
            last.update,
            last.version,
            last.elapsed_s,
            last.loss,
            self.accuracy(params),
            last.worker,
            last.staleness,
            last.applied,
        )

    def replace(self, index: int, error: CallTimeoutError | ActorLostError) -> None:
        """Replace worker ``index`` after ``error``, or give up with the same kind of error."""
        self.replaced[index] += 1
        worker = self.workers[index]
        if self.replaced[index] > MAX_REPLACEMENTS:
            msg = (
                f"train: worker {index} ({worker._who}) failed {self.replaced[index]} times "
                f"in this run, giving up (last: {error})"
            )
            raise type(error)(msg) from error
        # Ray kills a process that does not answer after 5 s (kill_worker_timeout_milliseconds):
        # the stop gets the library's stop bound even when the call timeout is shorter.
        self.bounded(lambda seconds: worker.replace(timeout=seconds), at_least=STOP_TIMEOUT_S)
        self.history.events.append(
            TrainingEvent(
                self.update, self.seconds(), "worker_replaced", index, type(error).__name__
            )
        )

    def finish(self) -> TrainingHistory:
        self.history.duration_s = self.seconds()
        return self.history


def _started(worker: GradientWorker, seconds: float | None) -> list[int]:
    """Wait until ``worker``'s actor answers (its process has started)."""
    return worker.pids(timeout=seconds)


def _gather(run: _Run, params_ref: ObjectRef[Any]) -> list[tuple[float, dict[str, np.ndarray]]]:
    """Every worker's gradients on the same parameters; failed workers replaced and re-asked."""
    refs = [worker.compute_gradients_async(params_ref) for worker in run.workers]
    results: list[tuple[float, dict[str, np.ndarray]]] = []
    for index, ref in enumerate(refs):
        while True:
            try:
                results.append(run.gradients(index, ref))
                break
            except (ActorLostError, CallTimeoutError) as error:
                if run.budget_spent:
                    raise
                run.replace(index, error)
                ref = run.workers[index].compute_gradients_async(params_ref)
    return results


def _train_sync(run: _Run, steps: int) -> None:
    params, version = run.start()
    n = len(run.workers)
    for step in range(steps):
        results = _gather(run, ray.put(params))
        # Summed in worker order, then divided: the same arithmetic on every run.
        mean: dict[str, np.ndarray] = {
            name: np.asarray(sum(g[name] for _, g in results)) / n for name in results[0][1]
        }
        loss = sum(loss for loss, _ in results) / n
        run.push(mean, version, loss, None)
        params, version = run.pull()
        if run.due(last=step == steps - 1):
            run.evaluate(params)


def _train_async(run: _Run, steps: int, staleness: int | None) -> None:
    """Async (``staleness=None``) or stale synchronous parallel (a bound on the lead)."""
    params, version = run.start()
    n = len(run.workers)
    clocks = [0] * n  # gradients each worker has had pushed
    # Each call in flight: its worker, the version its parameters had, and when it is
    # overdue (None without a timeout).
    pending: dict[ObjectRef[Any], tuple[int, int, float | None]] = {}
    waiting: list[int] = []  # workers held back by the staleness bound
    params_ref = ray.put(params)

    def submit(index: int) -> None:
        overdue = None if run.timeout is None else time.monotonic() + run.timeout
        ref = run.workers[index].compute_gradients_async(params_ref)
        pending[ref] = (index, version, overdue)

    for index in range(n):
        submit(index)
    while pending:
        seconds, _ = run.bound()  # raises once the budget is spent
        deadlines = [due for _, _, due in pending.values() if due is not None]
        if deadlines:
            until_overdue = max(0.0, min(deadlines) - time.monotonic())
            seconds = until_overdue if seconds is None else min(seconds, until_overdue)
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=seconds)
        if not ready:
            now = time.monotonic()
            for ref, (index, _, due) in list(pending.items()):
                if due is not None and due <= now:
                    del pending[ref]
                    who = run.workers[index]._who
                    stuck = CallTimeoutError(
                        f"{who}: compute_gradients got no reply within {run.timeout:g} s "
                        "(the worker is busy, stuck or unreachable)"
                    )
                    run.replace(index, stuck)
                    params, version = run.pull()
                    params_ref = ray.put(params)
                    submit(index)
            continue
        index, computed_on, _ = pending.pop(ready[0])
        try:
            loss, gradients = run.gradients(index, ready[0])
        except ActorLostError as error:
            run.replace(index, error)
            params, version = run.pull()
            params_ref = ray.put(params)
            submit(index)
            continue
        run.push(gradients, computed_on, loss, index)
        clocks[index] += 1
        if clocks[index] < steps:
            waiting.append(index)
        # SSP (Ho et al. 2013): a worker may start its next step only while it leads
        # the slowest worker by at most `staleness` steps; async has no bound.
        slowest = min(clocks)
        starting = [
            held for held in waiting if staleness is None or clocks[held] - slowest <= staleness
        ]
        evaluate = run.due(last=sum(clocks) == n * steps)
        if starting or evaluate:
            params, version = run.pull()  # the parameters right after this push
            params_ref = ray.put(params)
        if evaluate:
            run.evaluate(params)
        for held in starting:
            waiting.remove(held)
            submit(held)


def train(
    server: ParameterServer,
    workers: Sequence[GradientWorker],
    *,
    mode: str = "sync",
    steps: int,
    staleness: int | None = None,
    eval_data: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    timeout: Any = DEFAULT,
    budget_s: float | None = None,
) -> TrainingHistory:
    """Train the model of ``workers`` on ``server``: each worker takes ``steps`` steps.

    The loop runs in the calling process; the workers compute, the server applies.

    - ``"sync"`` (bulk synchronous): each step, every worker computes gradients on
      the same parameters; the loop waits for all of them, averages and pushes once.
      ``steps`` pushes; the slowest worker sets the pace.
    - ``"async"``: each worker's gradients are pushed as soon as they arrive (a
      ``ray.wait`` loop) and that worker goes on with freshly pulled parameters while
      the others are still computing. ``steps * len(workers)`` pushes, each
      computed on parameters that may be a few versions old.
    - ``"ssp"`` (stale synchronous parallel, Ho et al. 2013): as async, but a worker
      may be at most ``staleness`` steps ahead of the slowest one; it waits otherwise.
      ``staleness=0`` is lock-step; a large bound is async.

    The server's own ``max_staleness`` still applies: pushes it drops are recorded
    with ``applied=False``.

    **Bounds and failures.** Every wait inside is bounded by ``timeout``, and the whole
    call by ``budget_s`` when it is given:

    - a worker whose process dies is restarted by Ray, which re-sends its step (the
      run does not notice); one that does not answer within ``timeout``, or that Ray
      gave up on (`patterns.errors.ActorLostError`: its call killed it on every
      attempt, or it cannot be restarted), is *replaced*: its actor is stopped, a new
      one starts on the same partition once the old process is gone
      (`GradientWorker.replace`), its step is computed again and the history records a
      `TrainingEvent`. After 3 replacements of one worker in a run, `train` gives up
      with the worker's last error;
    - a server shard cannot be replaced (it holds the weights): one that does not
      answer within ``timeout`` ends the run with `patterns.errors.CallTimeoutError`.
      A shard whose process dies comes back by itself if the server has a checkpoint
      store; without one, the push fails and so does `train`;
    - the model raising an exception ends the run with
      `patterns.errors.RemoteCallError`.

    `train` assumes it is the only client pushing to ``server`` while it runs (the
    versions it records are counted on that basis).

    Args:
        server: The `ParameterServer` holding the model's parameters.
        workers: One or more `GradientWorker` objects sharing one model (the facades
            that created them: only those can replace their actors).
        mode: ``"sync"``, ``"async"`` or ``"ssp"``.
        steps: Gradient steps per worker (>= 1).
        staleness: For ``"ssp"`` only, and required there: the bound (>= 0).
        eval_data: ``(X, y)`` to measure accuracy on, with the model's ``predict``.
        eval_every: Measure accuracy every this many updates (and after the last);
            without it, only at the start and the end.
        timeout: Seconds any one wait may take: for a worker's gradients, a pull, a
            push (default: the server's timeout, itself 60 s unless it was given one;
            None: no bound). A worker that exceeds it is replaced, a shard that exceeds
            it ends the run. Replacing a worker may wait up to 30 s, or ``timeout`` if
            longer, for the old process to be gone (Ray kills a process that does not
            answer after about 5 s).
        budget_s: Seconds the whole call may take, start-up included (None: no overall
            bound; every wait is still bounded by ``timeout``).

    Returns:
        The `TrainingHistory` of the run.

    Raises:
        TypeError: If ``server`` or ``workers`` has the wrong type.
        ValueError: If ``mode`` is unknown, ``steps < 1``, ``staleness < 0``,
            ``staleness`` is missing for ``"ssp"`` (or given for another mode),
            ``eval_data``'s ``X`` and ``y`` differ in length, or ``timeout`` or
            ``budget_s`` is not > 0. Raised before anything is sent.
        patterns.errors.CallTimeoutError: The budget ran out, a shard did not answer
            within ``timeout``, or a worker kept not answering.
        patterns.errors.ActorLostError: A worker kept dying (or a shard without a
            store died).
        patterns.errors.RemoteCallError: The model raised.

    Examples:
        >>> import numpy as np
        >>> from patterns import GradientWorker, ParameterServer, SoftmaxRegression
        >>> X = np.array([[1.0, 0.0], [0.0, 1.0]] * 10); y = np.array([0, 1] * 10)
        >>> model = SoftmaxRegression(2, 2)
        >>> server = ParameterServer(model.init_params(), learning_rate=0.5)
        >>> workers = [GradientWorker(model, X[:10], y[:10]), GradientWorker(model, X[10:], y[10:])]
        >>> history = train(server, workers, steps=5, eval_data=(X, y), budget_s=120)
        >>> history.updates, server.version(), history.final_accuracy
        (5, 5, 1.0)
        >>> for actor_facade in [server, *workers]:
        ...     actor_facade.close()
    """
    worker_list, mode, steps, staleness, data = _check_train_args(
        server, workers, mode, steps, staleness, eval_data, eval_every, timeout, budget_s
    )
    seconds = resolve_timeout(timeout, server.timeout)
    budget = None if budget_s is None else float(budget_s)
    every = None if eval_every is None else int(eval_every)
    run = _Run(server, worker_list, mode, steps, data, every, seconds, budget)
    if mode == "sync":
        _train_sync(run, steps)
    else:
        _train_async(run, steps, staleness)
    return run.finish()
