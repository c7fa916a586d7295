"""The facade contract as a test you can run on your own patterns: `check_facade`.

Every facade of this library passes the same contract (``tests/test_contract.py`` runs
it on each one); a pattern of your own built on the same rules can run it too, as
scikit-learn's ``check_estimator`` does for estimators:

1. **Bad arguments** are refused with ``TypeError``/``ValueError`` before any actor starts.
2. **``with``** leaves no actor alive: ``close()`` stops the actors and returns once Ray
   reports them dead; a second ``close()`` does nothing; a call after it raises
   `patterns.errors.FacadeClosedError`.
3. **A hung actor** (its process stopped with SIGSTOP: alive, but answering nothing)
   gives `patterns.errors.CallTimeoutError` within the call's timeout.
4. **A poison call** (one that crashes its actor on every attempt) gives a
   `patterns.errors.PatternError` within a bound, and the restarted actor serves the
   next call.
5. **Copies and attach** do not own the actors: a pickled copy (as a task receives it)
   and an attached facade work, and their ``close()`` leaves the actors running.
6. **``repr`` and ``stats()``**: a readable repr; ``stats()`` (and ``stats_async()``)
   hold the common keys (``kind``, ``name``, ``namespace``, ``actors``, ``owned``,
   ``closed``, ``timeout_s``).

It needs a connected Ray whose actors run on this machine (a local Ray or the embedded
Ray-on-Spark cluster): the hang check stops the actors' processes by PID.

Examples:
    >>> from patterns import Counter
    >>> report = check_facade(
    ...     lambda: Counter(),
    ...     call=lambda counter, timeout: counter.value(timeout=timeout),
    ...     bad_arguments=[(lambda: Counter(start=-1), ValueError)],
    ... )  # doctest: +SKIP
    >>> report.hang_s < 2.0 + 5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from patterns._facade import BASE_STATS
from patterns._ray_internals import actor_id_hex, actor_states, actor_table_ids
from patterns.errors import CallTimeoutError, FacadeClosedError, PatternError

__all__ = ["ContractReport", "check_facade"]

F = TypeVar("F")

# How long a refused construction is watched for an actor it may have started anyway
# (Ray registers a new actor with its control store asynchronously).
_SETTLE_S = 1.0
# Slack on top of a call's own timeout before the hang check calls it a hang.
_HANG_SLACK_S = 5.0


@dataclass
class ContractReport:
    """What `check_facade` measured on one facade (seconds).

    Attributes:
        kind: The facade's kind.
        checks: The checks that ran and passed, in order.
        close_s: How long ``close()`` took to stop the actors and see them dead.
        hang_s: How long a call to a stopped (SIGSTOP) actor took to raise
            `CallTimeoutError` (its timeout was ``hang_timeout_s``).
        poison_s: How long the poison call took to fail (None: no poison call given).
    """

    kind: str
    checks: list[str] = field(default_factory=list)
    close_s: float | None = None
    hang_s: float | None = None
    poison_s: float | None = None


def _actor_ids(facade: Any) -> set[str]:
    return {actor_id_hex(actor) for actor in facade._facade_actors}


def _new_actors_after(before: set[str]) -> set[str]:
    deadline = time.monotonic() + _SETTLE_S
    while True:
        new = actor_table_ids() - before
        if new or time.monotonic() >= deadline:
            return new
        time.sleep(0.1)


def _fail(kind: str, check: str, message: str) -> AssertionError:
    return AssertionError(f"{kind}: contract check '{check}' failed: {message}")


def _check_bad_arguments(
    kind: str, bad_arguments: Sequence[tuple[Callable[[], Any], type[Exception]]]
) -> None:
    """Each ``build()`` raises its ``expected`` error, and none of them starts an actor.

    An actor's registration reaches the control store shortly after ``.remote()``
    returns, so "no actor" needs a settle wait: one for all the cases together, and a
    case at a time (to name the culprit) only when some actor did appear.
    """
    before = actor_table_ids()
    for index, (build, expected) in enumerate(bad_arguments):
        _expect_refusal(kind, index, build, expected)
    if not bad_arguments or not _new_actors_after(before):
        return
    for index, (build, expected) in enumerate(bad_arguments):
        before = actor_table_ids()
        _expect_refusal(kind, index, build, expected)
        started = _new_actors_after(before)
        if started:
            raise _fail(kind, "bad arguments", f"case {index} started {len(started)} actor(s)")
    raise _fail(kind, "bad arguments", "an actor was started while the cases were refused")


def _expect_refusal(
    kind: str, index: int, build: Callable[[], Any], expected: type[Exception]
) -> None:
    try:
        build()
    except expected as exc:
        if not str(exc):
            raise _fail(kind, "bad arguments", f"case {index}: an empty message") from exc
    except Exception as exc:
        raise _fail(
            kind, "bad arguments", f"case {index} raised {exc!r}, not {expected.__name__}"
        ) from exc
    else:
        raise _fail(kind, "bad arguments", f"case {index} raised nothing")


def _check_all_dead(kind: str, check: str, ids: set[str]) -> None:
    states = actor_states(ids)
    alive = {actor_id: state for actor_id, state in states.items() if state != "DEAD"}
    if alive:
        raise _fail(kind, check, f"actors still alive after close(): {alive}")


def _check_none_dead(kind: str, check: str, ids: set[str]) -> None:
    states = actor_states(ids)
    dead = [actor_id for actor_id, state in states.items() if state == "DEAD"]
    if dead:
        raise _fail(
            kind, check, f"{len(dead)} actor(s) were stopped by a facade that did not own them"
        )


def _check_stats(kind: str, facade: Any) -> None:
    import ray

    stats = facade.stats()
    missing = [key for key in BASE_STATS if key not in stats]
    if missing:
        raise _fail(kind, "stats", f"stats() lacks {missing}")
    if stats["kind"] != facade.kind or stats["actors"] < 1 or stats["closed"]:
        raise _fail(kind, "stats", f"unexpected common entries: {stats}")
    from_twin = ray.get(facade.stats_async(), timeout=60)
    if set(from_twin) != set(stats):
        raise _fail(kind, "stats", "stats_async() and stats() hold different keys")


def _check_repr(kind: str, facade: Any) -> None:
    text = repr(facade)
    if not text.startswith(f"{type(facade).__name__}(") or " object at 0x" in text:
        raise _fail(kind, "repr", f"not a readable repr: {text}")


def _check_hang(
    kind: str, facade: Any, call: Callable[[Any, float | None], Any], timeout: float
) -> float:
    """SIGSTOP the actors, call with ``timeout``: `CallTimeoutError` must come in time.

    The call runs in a thread, so a facade that ignores its timeout fails the check
    instead of hanging it; the actors are resumed (SIGCONT) whatever happens.
    """
    pids = facade.pids()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call(facade, timeout)
            outcome.append(None)
        except BaseException as exc:  # inspected below
            outcome.append(exc)

    stopped: list[int] = []
    worker = threading.Thread(target=run, daemon=True)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        started = time.monotonic()
        worker.start()
        worker.join(timeout + _HANG_SLACK_S)
        elapsed = time.monotonic() - started
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    if not outcome:
        worker.join(60)  # resumed: let the call finish before the facade is closed
        raise _fail(kind, "hang", f"no CallTimeoutError within {timeout} s + {_HANG_SLACK_S} s")
    error = outcome[0]
    if error is None:
        raise _fail(kind, "hang", "a call to stopped actors returned")
    if not isinstance(error, CallTimeoutError):
        raise _fail(kind, "hang", f"raised {error!r}, not CallTimeoutError") from error
    return elapsed


def _check_poison(
    kind: str,
    facade: Any,
    call: Callable[[Any, float | None], Any],
    poison: Callable[[Any, float | None], Any],
    bound: float,
) -> float:
    started = time.monotonic()
    try:
        poison(facade, bound)
    except CallTimeoutError as exc:
        raise _fail(kind, "poison", f"no answer within {bound} s: the call was retried on") from exc
    except PatternError:
        elapsed = time.monotonic() - started
    except Exception as exc:
        raise _fail(kind, "poison", f"raised {exc!r}, not a PatternError") from exc
    else:
        raise _fail(kind, "poison", "the poison call returned")
    try:
        call(facade, bound)
    except Exception as exc:
        raise _fail(kind, "poison", f"the next call failed: {exc!r}") from exc
    return elapsed


def check_facade(
    make: Callable[[], F],
    *,
    call: Callable[[F, float | None], Any],
    bad_arguments: Sequence[tuple[Callable[[], Any], type[Exception]]] = (),
    poison: Callable[[F, float | None], Any] | None = None,
    attach: Callable[[F], F] | None = None,
    hang_timeout_s: float = 2.0,
    poison_bound_s: float = 120.0,
) -> ContractReport:
    """Run the facade contract (see the module docstring) on the facades ``make`` builds.

    Args:
        make: Builds a new facade that starts its own actors (called several times).
        call: A cheap request/response call: ``call(facade, timeout)`` must pass
            ``timeout`` on as the call's ``timeout=``.
        bad_arguments: ``(build, expected)`` pairs: ``build()`` must raise ``expected``
            (a ``TypeError`` or ``ValueError`` subclass) and start no actor.
        poison: A call that crashes its actor's process on every attempt:
            ``poison(facade, timeout)``. None for facades that run no user code.
        attach: Makes a facade for the same actors as the given one (e.g.
            ``lambda f: Counter.attach(f.name)``; ``make`` must then name its actors).
        hang_timeout_s: The timeout of the call sent to stopped actors.
        poison_bound_s: The bound on the poison call.

    Returns:
        What was measured.

    Raises:
        AssertionError: A check failed; the message names the facade and the check.
    """
    kind = "facade"
    report: ContractReport | None = None
    _check_bad_arguments(kind, bad_arguments)

    with make() as facade:  # type: ignore[attr-defined]
        kind = facade.kind
        report = ContractReport(kind, checks=["bad arguments"])
        ids = _actor_ids(facade)
        _check_repr(kind, facade)
        _check_stats(kind, facade)
        report.checks += ["repr", "stats"]

        copy = pickle.loads(pickle.dumps(facade))
        if copy.owned:
            raise _fail(kind, "copy", "an unpickled copy owns the actors")
        call(copy, None)
        copy.close()
        _check_none_dead(kind, "copy", ids)
        call(facade, None)
        report.checks.append("copy")

        if attach is not None:
            attached = attach(facade)
            if attached.owned:  # type: ignore[attr-defined]
                raise _fail(kind, "attach", "an attached facade owns the actors")
            call(attached, None)
            attached.close()  # type: ignore[attr-defined]
            _check_none_dead(kind, "attach", ids)
            report.checks.append("attach")

        report.hang_s = _check_hang(kind, facade, call, hang_timeout_s)
        report.checks.append("hang")
        if poison is not None:
            report.poison_s = _check_poison(kind, facade, call, poison, poison_bound_s)
            report.checks.append("poison")
        started = time.monotonic()
    report.close_s = time.monotonic() - started
    if not facade.closed:
        raise _fail(kind, "close", "the facade is not closed after its with block")
    _check_all_dead(kind, "close", ids)
    facade.close()  # a second close does nothing
    try:
        call(facade, None)
    except FacadeClosedError:
        pass
    except Exception as exc:
        raise _fail(kind, "close", f"a call after close raised {exc!r}") from exc
    else:
        raise _fail(kind, "close", "a call after close() returned")
    report.checks.append("close")
    return report
