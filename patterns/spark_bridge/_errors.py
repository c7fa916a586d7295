"""The errors of a bridge run whose arguments were fine: the pool, a batch, a result."""

from __future__ import annotations

from typing import Any

from patterns.errors import ActorLostError, PatternError

__all__ = [
    "BridgeActorLostError",
    "BridgeBatchError",
    "BridgeError",
    "BridgeSchemaError",
    "describe_key",
]


def describe_key(key: object) -> str:
    """How a batch is named in messages: its group key, or its place in the input."""
    if isinstance(key, tuple):
        return f"key {key!r}"
    return str(key)


class BridgeError(PatternError):
    """A Spark bridge run failed after its arguments were accepted.

    The base class of the bridge's own errors (a `patterns.errors.PatternError`): the
    actor pool could not start, or (see the subclasses) a batch failed on its actor or
    crashed it on every attempt. A pool actor that answers nothing within the run's
    ``timeout`` is a `patterns.errors.CallTimeoutError`; a call on a closed
    `BridgePool` a `patterns.errors.FacadeClosedError`.

    Examples:
        >>> raise BridgeError("the pool's 2 actors did not start within 120 s")
        Traceback (most recent call last):
        ...
        patterns.spark_bridge._errors.BridgeError: the pool's 2 actors did not start within 120 s
    """

    # Raised inside actors and sent back by Ray: pickling keeps every attribute.
    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[BridgeError], args: tuple[Any, ...], state: dict[str, Any]) -> BridgeError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class BridgeBatchError(BridgeError):
    """A batch (or group) failed on its actor: which one, where, and the remote error.

    Raised by `map_batches_with_actors` and `map_groups_with_actors` in place of a
    remote traceback, on the driver, for the first batch that failed. The actor's own
    traceback is kept in `remote_traceback`.

    Attributes:
        key: The group key (a tuple) for per-group work; for batches, a description
            of the batch's place in the input (``"partition 3, batch 2"``).
        actor: The index of the pool actor that ran it (None if it never reached one).
        remote_type: The name of the exception class raised remotely.
        remote_message: Its message.
        remote_traceback: The remote traceback, as text ("" if there was none).

    Examples:
        >>> error = BridgeBatchError.from_remote(
        ...     ("store-1", 7), actor=1, remote_type="ValueError", remote_message="no rows"
        ... )
        >>> print(error)
        batch for key ('store-1', 7) failed on actor 1: ValueError: no rows
        >>> error.key, error.remote_type
        (('store-1', 7), 'ValueError')
    """

    key: object
    actor: int | None
    remote_type: str
    remote_message: str
    remote_traceback: str

    def __init__(
        self,
        message: str,
        *,
        key: object = None,
        actor: int | None = None,
        remote_type: str = "",
        remote_message: str = "",
        remote_traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.actor = actor
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback

    @classmethod
    def from_remote(
        cls,
        key: object,
        *,
        actor: int | None,
        remote_type: str,
        remote_message: str,
        remote_traceback: str = "",
    ) -> BridgeBatchError:
        """The error for ``key`` from what the remote side raised.

        Args:
            key: The group key, or a description of the batch.
            actor: The pool actor's index (None if unknown).
            remote_type: The remote exception's class name.
            remote_message: Its message.
            remote_traceback: Its traceback as text.

        Returns:
            A `BridgeBatchError` whose message names the batch, the actor and the error.
        """
        where = f" on actor {actor}" if actor is not None else ""
        message = f"batch for {describe_key(key)} failed{where}: {remote_type}: {remote_message}"
        return cls(
            message,
            key=key,
            actor=actor,
            remote_type=remote_type,
            remote_message=remote_message,
            remote_traceback=remote_traceback,
        )


class BridgeSchemaError(BridgeBatchError):
    """A batch's result does not match ``output_schema``: the column, expected and got.

    Attributes:
        column: The offending column (None when the result is not a DataFrame at all).
        expected: What ``output_schema`` asks for.
        got: What the result held.

    Examples:
        >>> error = BridgeSchemaError.mismatch(
        ...     ("s1",), actor=0, column="yhat", expected="double", got="object ('high')"
        ... )
        >>> print(error)  # doctest: +NORMALIZE_WHITESPACE
        result for key ('s1',) does not match output_schema:
        column 'yhat' must be double, got object ('high')
        >>> error.column
        'yhat'
    """

    column: str | None
    expected: str
    got: str

    @classmethod
    def mismatch(
        cls, key: object, *, actor: int | None, column: str | None, expected: str, got: str
    ) -> BridgeSchemaError:
        """The error for a result of ``key`` whose ``column`` holds ``got``, not ``expected``.

        Args:
            key: The group key, or a description of the batch.
            actor: The pool actor's index.
            column: The column at fault (None: the result as a whole).
            expected: What the schema asks for.
            got: What came.

        Returns:
            A `BridgeSchemaError` naming the column, what was expected and what came.
        """
        what = f"column {column!r}" if column is not None else "the result"
        detail = f"{what} must be {expected}, got {got}"
        message = f"result for {describe_key(key)} does not match output_schema: {detail}"
        error = cls(
            message,
            key=key,
            actor=actor,
            remote_type=cls.__name__,
            remote_message=detail,
        )
        error.column = column
        error.expected = expected
        error.got = got
        return error


class BridgeActorLostError(BridgeBatchError, ActorLostError):
    """A batch (or group) crashed its pool actor on every attempt: a poison batch.

    Ray re-sends the call of a killed pool actor to the restarted actor at most
    ``MAX_TASK_RETRIES`` (3) times, and the bridge sends it once more (a call that only
    queued behind a crashing one then runs); a batch that kills its actor every time
    (an out-of-memory on one input, a native crash) then fails with this error, which
    names the pool, the actor, the method and Ray's cause. The restarted actor
    serves the other batches. Also an `patterns.errors.ActorLostError`.

    Examples:
        >>> error = BridgeActorLostError.lost(
        ...     "partition 0, batch 0 (rows 0-9)", who="BridgePool 'scores'", actor=1,
        ...     method="run_batch", cause="ActorDiedError: the actor died unexpectedly",
        ...     attempts=5,
        ... )
        >>> print(error)  # doctest: +NORMALIZE_WHITESPACE
        BridgePool 'scores': run_batch of partition 0, batch 0 (rows 0-9) lost actor 1 on
        every attempt (5): ActorDiedError: the actor died unexpectedly
        >>> isinstance(error, ActorLostError), error.actor
        (True, 1)
    """

    @classmethod
    def lost(
        cls, key: object, *, who: str, actor: int, method: str, cause: str, attempts: int = 5
    ) -> BridgeActorLostError:
        """The error for ``key`` whose call crashed ``actor`` until Ray gave up.

        Args:
            key: The group key, or a description of the batch.
            who: The pool, as messages name it (``"BridgePool 'scores'"``).
            actor: The pool actor's index.
            method: The actor method (``run_batch`` or ``run_groups``).
            cause: Ray's error, one line.
            attempts: How many times the call was sent (1 + ``max_task_retries``, + 1
                when the bridge sent it once more).

        Returns:
            A `BridgeActorLostError` naming the pool, the actor, the method and the cause.
        """
        message = (
            f"{who}: {method} of {describe_key(key)} lost actor {actor} on every attempt "
            f"({attempts}): {cause}"
        )
        remote_type, _, remote_message = cause.partition(": ")
        return cls(
            message, key=key, actor=actor, remote_type=remote_type,
            remote_message=remote_message or cause,
        )  # fmt: skip
