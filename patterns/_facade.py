"""The base of every facade that starts actors: one lifecycle, one timeout rule, one error family.

What every facade of the library does the same way (CONTRIBUTING.md, "Conventions"):

- **Lifecycle.** ``close()`` is the one verb for "I am done with these actors": it
  flushes what the facade buffers, stops the actors it started and waits until Ray
  reports them dead (bounded by its timeout). It is idempotent and is what ``with``
  does. A facade that did not start its actors (one from ``attach``, a copy unpickled
  in a task or an actor) *releases* them instead: ``close()`` flushes and leaves them
  running (``owned`` says which). ``kill()`` is the crash simulation: it kills the
  processes as a crash would, and Ray restarts those that are restartable.
- **Timeouts.** Every blocking call takes ``timeout=``: seconds, or ``None`` for no
  bound (which must be asked for). Left out, the facade's own ``timeout`` applies
  (given at creation; `patterns._calls.DEFAULT_TIMEOUT_S` by default).
- **Errors.** Failures after a call was sent are `patterns.errors` errors naming the
  facade's kind, its name or actor id, and the method; a call on a closed facade is a
  `FacadeClosedError`.
- **Inspection.** ``stats()`` returns at least ``kind``, ``name``, ``namespace``,
  ``actors``, ``owned``, ``closed`` and ``timeout_s``; ``pids()`` the actors' process
  ids. Each has an ``*_async`` twin, like every request/response method.

A facade subclass calls `ActorFacade._init_facade` from its ``_setup`` and sends its
calls through ``_get``/``_wait``, which check that it is open and bound the wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Final

import ray
from ray import ObjectRef

from patterns._calls import (
    DEFAULT,
    DEFAULT_TIMEOUT_S,
    crash_actors,
    get,
    resolve_timeout,
    stop_actors,
    target,
    wait,
)
from patterns._checks import check_positive_float
from patterns.errors import FacadeClosedError

__all__ = ["BASE_STATS", "ActorFacade", "check_facade_timeout", "gather"]

BASE_STATS: Final = ("kind", "name", "namespace", "actors", "owned", "closed", "timeout_s")
"""The keys every facade's ``stats()`` holds, whatever its family adds."""


def check_facade_timeout(value: object) -> float | None:
    """A facade's ``timeout=`` argument: `DEFAULT` gives `DEFAULT_TIMEOUT_S`, None no bound.

    Examples:
        >>> check_facade_timeout(DEFAULT), check_facade_timeout(5), check_facade_timeout(None)
        (60.0, 5.0, None)
    """
    if value is DEFAULT:
        return DEFAULT_TIMEOUT_S
    if value is None:
        return None
    return check_positive_float("timeout", value)


@ray.remote(num_cpus=0)
def gather(*values: Any) -> list[Any]:
    """A task that resolves to the list of its arguments (the ``*_async`` twin of a fan-out)."""
    return list(values)


@ray.remote(num_cpus=0)
def _merged(base: dict[str, Any], family: dict[str, Any]) -> dict[str, Any]:
    return {**family, **base}


class ActorFacade:
    """Base class of the library's facades (see the module docstring for the rules)."""

    _kind: ClassVar[str] = ""
    """The name errors and ``stats()`` use (default: the class name)."""

    _facade_actors: list[Any]
    _facade_name: str | None
    _facade_namespace: str | None
    _facade_owned: bool
    _facade_closed: bool
    _facade_timeout: float | None

    def _init_facade(
        self,
        actors: Sequence[Any],
        *,
        name: str | None,
        namespace: str | None,
        owned: bool,
        timeout: float | None,
    ) -> None:
        """Set up the lifecycle of ``actors`` (the ones ``close()`` stops when ``owned``)."""
        self._facade_actors = list(actors)
        self._facade_name = name
        self._facade_namespace = namespace
        self._facade_owned = owned
        self._facade_closed = False
        self._facade_timeout = timeout

    # ---------------------------------------------------------------- identity
    @property
    def kind(self) -> str:
        """The facade's kind, as errors and ``stats()`` name it."""
        return self._kind or type(self).__name__

    @property
    def name(self) -> str | None:
        """The name its actors were given (None: unnamed)."""
        return self._facade_name

    @property
    def namespace(self) -> str | None:
        """The Ray namespace of its named actors (None: the job's)."""
        return self._facade_namespace

    @property
    def owned(self) -> bool:
        """True if ``close()`` stops the actors: this facade started them (or attached with
        ``own=True``). A copy or an attached facade releases them instead."""
        return self._facade_owned

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._facade_closed

    @property
    def timeout(self) -> float | None:
        """Seconds a call waits when it is given no ``timeout=`` (None: no bound)."""
        return self._facade_timeout

    @property
    def _who(self) -> str:
        first = self._facade_actors[0] if self._facade_actors else None
        return target(self.kind, self._facade_name, first)

    # ---------------------------------------------------------------- calls
    def _seconds(self, timeout: object) -> float | None:
        """The bound of one call: its ``timeout=``, else the facade's."""
        return resolve_timeout(timeout, self._facade_timeout)

    def _check_open(self, method: str) -> None:
        if self._facade_closed:
            msg = f"{self._who}: {method} called after close(); create or attach a new facade"
            raise FacadeClosedError(msg)

    def _get(self, refs: Any, *, timeout: object, method: str) -> Any:
        """Wait for ``refs`` within the call's bound, with the library's errors."""
        seconds = self._seconds(timeout)
        self._check_open(method)
        return get(refs, timeout=seconds, who=self._who, method=method)

    def _wait(
        self, refs: Sequence[Any], *, num_returns: int, timeout: object, method: str
    ) -> tuple[list[Any], list[Any]]:
        """``ray.wait`` within the call's bound; `CallTimeoutError` if too few finish."""
        seconds = self._seconds(timeout)
        return wait(refs, num_returns=num_returns, timeout=seconds, who=self._who, method=method)

    # ---------------------------------------------------------------- lifecycle
    def _release(self, timeout: float | None) -> None:
        """Flush what the facade buffers before ``close()`` (override; default: nothing)."""

    def close(self, *, timeout: object = DEFAULT) -> None:
        """Be done with the actors: flush, stop those this facade owns and wait until they are dead.

        A facade that does not own its actors (``owned`` is False: attached, or a copy
        unpickled in a task) flushes and releases them; they keep running. Calling
        ``close()`` again does nothing. Calls after it raise `FacadeClosedError`.

        Args:
            timeout: Seconds for the flush and for Ray to report the actors dead
                (default: the facade's timeout; None: no bound).

        Raises:
            CallTimeoutError: The flush, or the stop, did not finish in time (the
                facade is closed all the same).
        """
        if self._facade_closed:
            return
        seconds = self._seconds(timeout)
        try:
            self._release(seconds)
        finally:
            self._facade_closed = True
            if self._facade_owned:
                stop_actors(self._facade_actors, timeout=seconds, who=self._who)

    def kill(self) -> None:
        """Crash the actors, as a SIGKILL would: nothing is flushed or saved.

        The crash simulation of the fault demos: Ray restarts actors that are
        restartable (those with a store, from their checkpoint); the others are gone.
        To stop actors, use ``close()``.
        """
        crash_actors(self._facade_actors)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------- inspection
    def _base_stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self._facade_name,
            "namespace": self._facade_namespace,
            "actors": len(self._facade_actors),
            "owned": self._facade_owned,
            "closed": self._facade_closed,
            "timeout_s": self._facade_timeout,
        }

    def _stats_async(self) -> ObjectRef[dict[str, Any]] | None:
        """The family's part of ``stats()`` as a ref (override; default: none)."""
        return None

    def stats_async(self) -> ObjectRef[dict[str, Any]]:
        """Ask for `stats` and return at once: an ObjectRef to the same dict."""
        self._check_open("stats_async")
        family = self._stats_async()
        if family is None:
            return ray.put(self._base_stats())
        return _merged.remote(self._base_stats(), family)

    def stats(self, *, timeout: object = DEFAULT) -> dict[str, Any]:
        """What the facade and its actors report: the common keys and the family's own.

        Every facade's dict holds ``kind``, ``name``, ``namespace``, ``actors`` (how
        many), ``owned``, ``closed`` and ``timeout_s``; the family adds its figures.

        Args:
            timeout: Seconds to wait (default: the facade's timeout).
        """
        self._check_open("stats")
        family = self._stats_async()
        base = self._base_stats()
        if family is None:
            return base
        return {**self._get(family, timeout=timeout, method="stats"), **base}

    def pids_async(self) -> ObjectRef[list[int]]:
        """Ask for `pids` and return at once: an ObjectRef to the same list."""
        self._check_open("pids_async")
        ref: ObjectRef[list[int]] = gather.remote(*[a.pid.remote() for a in self._facade_actors])
        return ref

    def pids(self, *, timeout: object = DEFAULT) -> list[int]:
        """The process id of each actor, in the facade's order (for crash demos and fault tests).

        Args:
            timeout: Seconds to wait (default: the facade's timeout).
        """
        refs = [actor.pid.remote() for actor in self._facade_actors]
        result: list[int] = self._get(refs, timeout=timeout, method="pids")
        return result
