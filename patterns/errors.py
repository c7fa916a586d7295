"""The library's runtime errors: one family; each message names the actor, the call, the cause.

Bad arguments are ``TypeError``/``ValueError`` raised at the caller's line before anything
is sent (see `patterns._checks`). Everything that goes wrong *after* a call was sent is a
`PatternError`:

- `CallTimeoutError`: no reply within the call's timeout (the actor is alive but slow or
  stuck, or its host is gone and Ray has not noticed yet). Also a ``TimeoutError``.
- `ActorLostError`: the actor's process died while it ran the call and Ray gave up on it:
  every attempt crashed it (a poison call), or the actor cannot be restarted.
- `RemoteCallError`: the call raised inside the actor (user code: an estimator, a child
  class, a store); ``remote_type`` names the exception and ``__cause__`` is Ray's error.
- `FacadeClosedError`: a call on a facade after its `close()`.

Each message reads ``"<Kind> <name or actor id>: <method> <what happened>"``, so a log line
says which actor, which call and why without a traceback.
"""

from __future__ import annotations

__all__ = [
    "ActorLostError",
    "CallTimeoutError",
    "FacadeClosedError",
    "PatternError",
    "RemoteCallError",
]


class PatternError(RuntimeError):
    """Base of every runtime error the library raises (bad arguments stay TypeError/ValueError).

    Examples:
        >>> issubclass(CallTimeoutError, PatternError), issubclass(PatternError, RuntimeError)
        (True, True)
    """


class CallTimeoutError(PatternError, TimeoutError):
    """A call got no reply within its timeout; the call may still be applied later.

    Examples:
        >>> isinstance(CallTimeoutError("Counter 'hits': value timed out after 5 s"), TimeoutError)
        True
    """


class ActorLostError(PatternError):
    """The actor died while it ran the call and the call will not complete.

    Either every attempt of the call crashed the actor's process (a poison call: it fails
    after ``max_task_retries`` retries, and the actor, restarted, serves other calls), or
    the actor cannot be restarted (no restarts left, stopped, its node gone for good).
    The call may or may not have been applied; calls acknowledged before it are kept.

    Examples:
        >>> issubclass(ActorLostError, PatternError)
        True
    """


class RemoteCallError(PatternError):
    """The call raised an exception inside the actor (in user code, a model or a store).

    Attributes:
        remote_type: The name of the exception raised remotely (``"ValueError"``).

    Examples:
        >>> error = RemoteCallError("LearningAgent 'a': receive_feedback raised ...", "ValueError")
        >>> error.remote_type
        'ValueError'
    """

    def __init__(self, message: str, remote_type: str = "Exception") -> None:
        super().__init__(message)
        self.remote_type = remote_type

    def __reduce__(self) -> tuple[type[RemoteCallError], tuple[str, str]]:
        return (type(self), (str(self), self.remote_type))


class FacadeClosedError(PatternError):
    """A call on a facade after `close()`: its actors are stopped (or released).

    Examples:
        >>> issubclass(FacadeClosedError, PatternError)
        True
    """
