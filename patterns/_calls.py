"""Bounded calls: timeouts, Ray's errors turned into the library's, and stops that wait.

Every blocking call of the library waits at most a timeout. The rule, the same in every
family:

- a call's ``timeout=`` wins (seconds > 0, or ``None`` to wait without a bound, which
  must be asked for);
- left out (`DEFAULT`), the facade's own ``timeout`` applies, given when it was
  created;
- left out there too, `DEFAULT_TIMEOUT_S` (60 s).

`get` waits for replies and raises the library's errors (`patterns.errors`): a reply
that does not come in time is a `CallTimeoutError`, a call that died with its actor an
`ActorLostError`, an exception inside the actor a `RemoteCallError`, each naming the
actor and the method.

`stop_actors` is the one way the library stops actors: ``ray.kill`` (a request, not a
wait), then `wait_until_dead` and `wait_until_exited`, so that when a facade's
``close()`` returns Ray reports every actor dead *and* their processes are gone (Ray
marks an actor dead before its process has exited: about 50 ms earlier, seconds earlier
for a process that is stopped or stuck, which the raylet must kill). A replacement then
never runs beside the old process, and nothing a closed facade started holds memory or
CPU. `crash_actors` is the crash simulation used by ``kill()``.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from patterns._checks import check_positive_float
from patterns.errors import ActorLostError, CallTimeoutError, PatternError, RemoteCallError

__all__ = [
    "DEFAULT",
    "DEFAULT_TIMEOUT_S",
    "MAX_TASK_RETRIES",
    "Default",
    "Timeout",
    "check_timeout",
    "crash_actors",
    "get",
    "resolve_timeout",
    "stop_actors",
    "target",
    "wait",
    "wait_until_dead",
    "wait_until_exited",
]

DEFAULT_TIMEOUT_S: Final = 60.0
"""How long a call waits for its reply when neither the call nor its facade says."""

# How often Ray re-sends a call whose actor died under it, for restartable actors. A call
# that crashes its actor on every attempt (a poison call) then fails after 1 + 3 attempts
# with ActorLostError instead of being retried forever; one crash (a SIGKILL, a lost
# host) costs a call one retry. Override per facade with actor_options["max_task_retries"].
MAX_TASK_RETRIES: Final = 3

# How long stop_actors waits for Ray to report killed actors dead, by default.
STOP_TIMEOUT_S: Final = 30.0

_POLL_S = 0.05


class Default(enum.Enum):
    """The type of `DEFAULT`: "the facade's timeout" (see the module docstring)."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = Default.DEFAULT
"""Left-out ``timeout=``: use the facade's timeout (by default `DEFAULT_TIMEOUT_S`)."""

Timeout = float | Default | None


def check_timeout(value: object, name: str = "timeout") -> float | Default | None:
    """Validate a ``timeout`` argument: `DEFAULT`, ``None`` (no bound) or seconds > 0.

    Examples:
        >>> check_timeout(2)
        2.0
        >>> check_timeout(None) is None
        True
        >>> check_timeout(0)
        Traceback (most recent call last):
        ...
        ValueError: 'timeout' must be a finite number > 0, got 0.0
    """
    if value is DEFAULT or value is None:
        return value
    return check_positive_float(name, value)


def resolve_timeout(value: object, default: float | None, name: str = "timeout") -> float | None:
    """The seconds a call waits: ``value`` unless it is `DEFAULT`, then ``default``.

    Examples:
        >>> resolve_timeout(DEFAULT, 60.0), resolve_timeout(5, 60.0), resolve_timeout(None, 60.0)
        (60.0, 5.0, None)
    """
    checked = check_timeout(value, name)
    return default if checked is DEFAULT else checked


def target(kind: str, name: str | None = None, actor: Any = None) -> str:
    """How an error message names an actor: ``Counter 'hits'`` or ``Counter (actor 1a2b3c4d)``.

    Examples:
        >>> target("Counter", "hits")
        "Counter 'hits'"
        >>> target("ShardedCounter")
        'ShardedCounter'
    """
    if name:
        return f"{kind} {name!r}"
    actor_id = getattr(actor, "_actor_id", None)
    if actor_id is not None:
        return f"{kind} (actor {actor_id.hex()[:8]})"
    return kind


def _seconds(timeout: float | None) -> str:
    return f"{timeout:g} s"


def _first_lines(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][:lines]
    return " ".join(kept)


def translate(exc: BaseException, *, who: str, method: str, timeout: float | None) -> BaseException:
    """The library's error for a Ray error raised while waiting for ``who``'s ``method``.

    Errors that are not Ray's come back unchanged.
    """
    from ray import exceptions as rex

    if isinstance(exc, PatternError):
        return exc
    if isinstance(exc, rex.GetTimeoutError):
        return CallTimeoutError(
            f"{who}: {method} got no reply within {_seconds(timeout)} (the actor is busy, "
            "stuck or unreachable; the call may still be applied)"
        )
    if isinstance(exc, rex.RayActorError):
        return ActorLostError(
            f"{who}: {method} did not complete: the actor died under it and Ray will not "
            f"retry it ({_first_lines(str(exc))})"
        )
    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else None
        remote_type = type(cause).__name__ if cause is not None else "Exception"
        detail = str(cause) if cause is not None else _first_lines(str(exc))
        return RemoteCallError(f"{who}: {method} raised {remote_type}: {detail}", remote_type)
    if isinstance(exc, rex.RayError):
        return PatternError(f"{who}: {method} failed: {_first_lines(str(exc))}")
    return exc


def get(refs: Any, *, timeout: float | None, who: str, method: str) -> Any:
    """``ray.get(refs, timeout=timeout)`` with Ray's errors turned into the library's.

    Args:
        refs: An ObjectRef or a list of them.
        timeout: Seconds to wait (None: no bound).
        who: The actor, as `target` names it (for the message).
        method: The facade method that waits (for the message).

    Raises:
        CallTimeoutError: No reply within ``timeout``.
        ActorLostError: The actor died under the call and Ray gave up on it.
        RemoteCallError: The call raised inside the actor.
        PatternError: Any other failure Ray reports.
    """
    import ray

    try:
        return ray.get(refs, timeout=timeout)
    except Exception as exc:
        translated = translate(exc, who=who, method=method, timeout=timeout)
        if translated is exc:
            raise
        raise translated from exc


def wait(
    refs: Sequence[Any],
    *,
    num_returns: int,
    timeout: float | None,
    who: str,
    method: str,
) -> tuple[list[Any], list[Any]]:
    """``ray.wait`` that raises `CallTimeoutError` when fewer than ``num_returns`` finish in time.

    For back-pressure: a sender that waits for room must not wait forever on an actor
    that is alive but stuck.
    """
    import ray

    done, pending = ray.wait(list(refs), num_returns=num_returns, timeout=timeout)
    if len(done) < num_returns:
        raise CallTimeoutError(
            f"{who}: {method} waited {_seconds(timeout)} for {num_returns} earlier call(s) "
            f"to finish and {num_returns - len(done)} did not (the actor is busy or stuck)"
        )
    return done, pending


def wait_until_dead(actors: Iterable[Any], *, timeout: float | None) -> list[Any]:
    """Wait until Ray reports each of ``actors`` dead; return those still alive at ``timeout``.

    ``ray.kill`` only asks for a kill: the process may answer a call after it returned.
    An actor counts as dead once a call to it fails for good (``ActorDiedError``);
    ``ActorUnavailableError`` (being killed, restarting) means not yet.
    """
    import ray
    from ray import exceptions as rex

    alive = list(actors)
    deadline = None if timeout is None else time.monotonic() + timeout
    while alive:
        if not ray.is_initialized():
            return []  # the cluster connection is gone: so are its actors, for this process
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return alive
        # No retries: a probe of a killed restartable actor would log "N retries remaining".
        probes = {
            actor.__ray_ready__.options(max_task_retries=0).remote(): actor for actor in alive
        }
        done, _ = ray.wait(
            list(probes), num_returns=len(probes), timeout=min(1.0, left) if left else 1.0
        )
        still = []
        for ref, actor in probes.items():
            if ref not in done:
                still.append(actor)  # no answer yet: ask again
                continue
            try:
                ray.get(ref)
                still.append(actor)  # answered: the kill has not happened yet
            except rex.ActorUnavailableError:
                still.append(actor)
            except rex.RayActorError:
                pass  # dead
            except Exception:
                pass  # Ray is shutting down, or the handle is unusable: nothing to wait for
        alive = still
        if alive:
            time.sleep(_POLL_S)
    return []


def _process_running(pid: int) -> bool:
    """True if process ``pid`` on this machine runs (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces).
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _running(pids: list[int]) -> list[int]:
    """The ``pids`` that run on this machine (the body of the probe task)."""
    return [pid for pid in pids if _process_running(pid)]


_probe: Any = None


def _running_on_node(node_id: str, pids: list[int]) -> Any:
    """An ObjectRef to the ``pids`` still running on node ``node_id`` (a pinned probe task)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    global _probe
    if _probe is None:  # made on first use: importing this module does not import Ray
        _probe = ray.remote(num_cpus=0, max_retries=0)(_running)
    strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return _probe.options(scheduling_strategy=strategy).remote(pids)


def _running_here(pids: list[int]) -> list[int]:
    import psutil

    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.Error:  # gone
            pass
    return running


def wait_until_exited(
    processes: Sequence[tuple[str, str, int]], *, timeout: float | None
) -> list[tuple[str, str, int]]:
    """Wait until each ``(node id, node IP, pid)`` has exited; return those left at ``timeout``.

    A pid means something only on its own machine: processes on this machine's address
    are checked here; on another host, a small task pinned to the node asks. A node that
    is gone, or cannot run the probe, counts as exited.
    """
    import ray

    here = ray.util.get_node_ip_address()
    running = list(processes)
    deadline = None if timeout is None else time.monotonic() + timeout
    while running:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        local = [pid for _, ip, pid in running if ip == here]
        still = [p for p in running if p[1] == here and p[2] in _running_here(local)]
        remote: dict[tuple[str, str], list[int]] = {}
        for node, ip, pid in running:
            if ip != here:
                remote.setdefault((node, ip), []).append(pid)
        if remote:
            probes = {
                _running_on_node(node, pids): (node, ip) for (node, ip), pids in remote.items()
            }
            # Asked at least once, even with no time left (a process that is gone is gone).
            wait_s = 5.0 if left is None else min(5.0, max(left, 1.0))
            done, _ = ray.wait(list(probes), num_returns=len(probes), timeout=wait_s)
            for ref, (node, ip) in probes.items():
                if ref not in done:
                    still += [(node, ip, pid) for pid in remote[(node, ip)]]  # ask again
                    continue
                try:
                    still += [(node, ip, pid) for pid in ray.get(ref)]
                except Exception:
                    pass  # the node is gone (or cannot run the probe): nothing runs there
        running = still
        if running and deadline is not None and time.monotonic() >= deadline:
            return running
        if running:
            time.sleep(_POLL_S)
    return []


def stop_actors(
    actors: Sequence[Any],
    *,
    timeout: float | None = STOP_TIMEOUT_S,
    who: str = "actors",
    until_exited: bool = True,
) -> None:
    """Stop ``actors`` for good (no restart); wait until Ray reports them dead and they exited.

    Args:
        actors: The handles.
        timeout: Seconds for the whole stop (None: no bound).
        who: The facade, as `target` names it (for the message).
        until_exited: Also wait until the actors' processes have exited (the default:
            Ray reports an actor dead before its process is gone, ~50 ms earlier, or
            seconds earlier when the process is stopped or stuck and the raylet has to
            kill it).

    Raises:
        CallTimeoutError: Some actor was still reported alive (or, with
            ``until_exited``, its process still ran) after ``timeout``.
    """
    import ray

    if not actors or not ray.is_initialized():
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    processes = []
    if until_exited:
        from patterns._ray_internals import actor_processes

        processes = actor_processes(list(actors))
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # already gone, or not killable from here: probed below
            pass
    alive = wait_until_dead(actors, timeout=timeout)
    if alive:
        raise CallTimeoutError(
            f"{who}: close stopped {len(actors)} actor(s) but {len(alive)} were still "
            f"reported alive after {_seconds(timeout)}"
        )
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    running = wait_until_exited(processes, timeout=left) if processes else []
    if running:
        raise CallTimeoutError(
            f"{who}: stopped {len(actors)} actor(s), but {len(running)} process(es) "
            f"(pid {', '.join(str(pid) for _, _, pid in running)}) still ran after "
            f"{_seconds(timeout)}"
        )


def crash_actors(actors: Sequence[Any]) -> None:
    """Kill ``actors``' processes as a crash would: Ray restarts those that are restartable.

    The crash simulation behind every facade's ``kill()``: nothing is flushed or saved,
    and it returns without waiting (a restartable actor comes back from its checkpoint).
    """
    import ray

    if not ray.is_initialized():
        return
    for actor in actors:
        try:
            ray.kill(actor, no_restart=False)
        except Exception:  # already gone
            pass
