"""Client-side batching: buffer small calls, send them as one, bound what is in flight.

A facade that takes many tiny calls (an increment, a gradient, a feedback) spends
almost all its time on the per-call round trip. A `ClientBatcher` buffers the items
on the client and hands them to ``send`` as one list when

- the buffer holds ``batch_size`` items, or
- its oldest item is ``flush_interval_s`` seconds old (a daemon thread watches), or
- the facade calls `ClientBatcher.flush` (or `send_buffer`, or `close`).

``send`` returns a pending handle (a Ray ``ObjectRef``) and does not wait. The batcher
keeps at most ``max_pending`` sends in flight (back-pressure: the caller waits for the
oldest ones), and `flush` waits for all of them: when it returns, everything added
before it was acknowledged. Every send is checked once it is done, whoever waited for
it: an error from a send the timer thread waited for has no caller to go to, so it is
kept and raised by the next `add` or `flush`.

Every wait is bounded: by the call's ``timeout``, else the batcher's (the facade's
timeout). A receiver that is alive but stuck gives `patterns.errors.CallTimeoutError`
naming the facade and the call; the sends stay pending (they may still be applied) and
the next `flush` waits for them again. Ray's errors become the library's
(`patterns._calls.translate`).

How a pending handle is waited for is a `Waiter`: Ray's by default (`RAY_WAITER`),
`FUTURE_WAITER` for ``concurrent.futures`` (which is how this module is tested
without Ray).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from patterns._calls import DEFAULT, DEFAULT_TIMEOUT_S, resolve_timeout, translate
from patterns.errors import CallTimeoutError, FacadeClosedError

__all__ = ["FUTURE_WAITER", "RAY_WAITER", "ClientBatcher", "Waiter"]

T = TypeVar("T")

# How long checking a send that is already done may take (its result is local by then).
_CHECK_S: Final = 30.0


@dataclass(frozen=True)
class Waiter:
    """How to wait for pending sends: split off finished ones, and get results.

    Attributes:
        wait: ``wait(pending, num_returns, timeout=None) -> (done, not_done)``: blocks
            until ``num_returns`` are done or ``timeout`` seconds pass (None: no bound),
            and then returns fewer than ``num_returns`` done.
        get: ``get(pending, timeout)``: wait for all, raise the first error, raise
            ``timeout_error`` when ``timeout`` seconds pass.
        timeout_error: The exception ``get`` raises on a timeout.
    """

    wait: Callable[..., tuple[list[Any], list[Any]]]
    get: Callable[[list[Any], float | None], Any]
    timeout_error: type[BaseException]


def _ray_wait(
    pending: list[Any], num_returns: int, timeout: float | None = None
) -> tuple[list[Any], list[Any]]:
    import ray

    return ray.wait(pending, num_returns=num_returns, timeout=timeout)


def _ray_get(pending: list[Any], timeout: float | None) -> Any:
    import ray

    return ray.get(pending, timeout=timeout)


def _ray_timeout_error() -> type[BaseException]:
    from ray.exceptions import GetTimeoutError

    return GetTimeoutError


RAY_WAITER = Waiter(_ray_wait, _ray_get, _ray_timeout_error())


def _futures_wait(
    pending: list[Any], num_returns: int, timeout: float | None = None
) -> tuple[list[Any], list[Any]]:
    deadline = None if timeout is None else time.monotonic() + timeout
    done = [f for f in pending if f.done()][:num_returns]
    while len(done) < num_returns:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        waiting = [f for f in pending if not f.done()]
        concurrent.futures.wait(
            waiting, timeout=left, return_when=concurrent.futures.FIRST_COMPLETED
        )
        done = [f for f in pending if f.done()][:num_returns]
    return done, [f for f in pending if f not in done]


def _futures_get(pending: list[Any], timeout: float | None) -> list[Any]:
    deadline = None if timeout is None else time.monotonic() + timeout
    results = []
    for future in pending:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        results.append(future.result(timeout=left))
    return results


FUTURE_WAITER = Waiter(_futures_wait, _futures_get, concurrent.futures.TimeoutError)


class _Deadline:
    """The end of one call's bound (None: no bound), shared by the waits inside it."""

    __slots__ = ("_end", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._end = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())


class ClientBatcher(Generic[T]):
    """Buffer items on the client and send them in batches, with bounded sends in flight.

    Args:
        send: Called with a non-empty list of items (under the batcher's lock, so sends
            keep the order of ``add`` calls); returns a pending handle, without waiting.
        batch_size: Send when the buffer holds this many items (None: no size trigger).
        flush_interval_s: Send when the oldest buffered item is this many seconds old
            (None: no timer thread).
        max_pending: At most this many sends in flight; more waits for the oldest.
        timeout: Seconds any one call waits (for room, for the lock, for the replies)
            when it is given no ``timeout=``, and what the timer thread waits for room
            (None: no bound). A facade passes its own timeout.
        who: The facade, as errors name it (``ShardedCounter 'hits'``).
        adds: The facade method that adds items (``increment``), for error messages.
        waiter: How to wait for pending handles (default: Ray's).

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> pool, sent = ThreadPoolExecutor(1), []
        >>> batcher = ClientBatcher(
        ...     lambda items: pool.submit(sent.append, sum(items)),
        ...     batch_size=3, flush_interval_s=None, max_pending=2, waiter=FUTURE_WAITER,
        ... )
        >>> for n in range(5):
        ...     batcher.add(n)
        >>> batcher.close()
        >>> sent
        [3, 7]
    """

    def __init__(
        self,
        send: Callable[[list[T]], Any],
        *,
        batch_size: int | None,
        flush_interval_s: float | None,
        max_pending: int,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        who: str = "batcher",
        adds: str = "add",
        waiter: Waiter = RAY_WAITER,
    ) -> None:
        self._send = send
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending
        self._timeout = timeout
        self._who = who
        self._adds = adds
        self._waiter = waiter
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer: list[T] = []
        self._since = 0.0  # when the oldest buffered item arrived
        self._pending: list[Any] = []  # sends not yet known to be applied
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def closed(self) -> bool:
        """True after `close` or `discard`."""
        return self._closed

    @property
    def buffered(self) -> int:
        """How many items wait in the buffer."""
        return len(self._buffer)

    @property
    def pending(self) -> int:
        """How many sends are out and not yet known to be applied."""
        return len(self._pending)

    @property
    def thread(self) -> threading.Thread | None:
        """The timer thread, once started (it exits after `close`)."""
        return self._thread

    # ---------------------------------------------------------------- plumbing
    def _deadline(self, timeout: object) -> _Deadline:
        return _Deadline(resolve_timeout(timeout, self._timeout))

    @contextmanager
    def _locked(self, deadline: _Deadline, method: str) -> Iterator[None]:
        """Hold the lock, waiting for it no longer than the call's bound."""
        left = deadline.left()
        if not self._lock.acquire(timeout=-1 if left is None else left):
            raise CallTimeoutError(
                f"{self._who}: {method} waited {deadline.seconds:g} s for another thread of "
                "this client that is waiting for its sends (the actor is busy or stuck)"
            )
        try:
            yield
        finally:
            self._lock.release()

    def _check_open(self, method: str) -> None:
        if self._closed:
            msg = f"{self._who}: {method} called after close(); create or attach a new facade"
            raise FacadeClosedError(msg)

    def _raise_stored_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _check_done(self, done: list[Any], method: str) -> None:
        """Raise the library's error for the first of ``done`` (finished sends) that failed."""
        if not done:
            return
        try:
            self._waiter.get(done, _CHECK_S)
        except Exception as exc:
            translated = translate(exc, who=self._who, method=method, timeout=_CHECK_S)
            if translated is exc:
                raise
            raise translated from exc

    def _send_locked(self, deadline: _Deadline, method: str, *, room: bool = True) -> None:
        """Send the buffer as one batch, then (``room``) apply back-pressure. Hold the lock.

        Every send that back-pressure waited for is checked: a failed one raises here.
        """
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._pending.append(self._send(batch))
        if not room:
            return
        excess = len(self._pending) - self._max_pending
        if excess <= 0:
            return
        done, self._pending = self._waiter.wait(self._pending, excess, deadline.left())
        self._check_done(done, method)
        if len(done) < excess:
            raise CallTimeoutError(
                f"{self._who}: {method} waited {deadline.seconds:g} s for room: "
                f"{len(self._pending)} send(s) of this client were still out, at most "
                f"{self._max_pending} may be (the actor is busy or stuck; the items are "
                "sent and may still be applied)"
            )

    # ---------------------------------------------------------------- calls
    def add(self, item: T, *, timeout: object = DEFAULT) -> None:
        """Buffer ``item``; send the buffer if it is full.

        Args:
            item: What to buffer.
            timeout: Seconds to wait for room when the buffer is sent (default: the
                batcher's).

        Raises:
            FacadeClosedError: If the batcher is closed.
            CallTimeoutError: No room within ``timeout`` (the item is sent).
            Exception: A send error kept from the timer thread, or from a send this
                call waited for.
        """
        deadline = self._deadline(timeout)
        with self._locked(deadline, self._adds):
            self._check_open(self._adds)
            self._raise_stored_error()
            self._buffer.append(item)
            if len(self._buffer) == 1 and self._flush_interval_s is not None:
                self._since = time.monotonic()
                if self._thread is None:
                    self._start_timer()
            if self._batch_size is not None and len(self._buffer) >= self._batch_size:
                self._send_locked(deadline, self._adds)

    def send_buffer(self, *, timeout: object = DEFAULT, method: str = "send_buffer") -> None:
        """Send what is buffered now, without waiting for it to be applied (but for room)."""
        deadline = self._deadline(timeout)
        with self._locked(deadline, method):
            self._raise_stored_error()
            self._send_locked(deadline, method)

    def flush(self, timeout: object = DEFAULT, *, method: str = "flush") -> None:
        """Send the buffer and wait until every send so far is applied.

        Every send is checked, whoever waited for it first.

        Args:
            timeout: Seconds to wait (default: the batcher's).
            method: The facade method that flushes, for error messages.

        Raises:
            CallTimeoutError: Some sends did not finish within ``timeout``: they stay
                pending and the next flush waits for them again.
            Exception: The first send error (Ray's errors as the library's).
        """
        deadline = self._deadline(timeout)
        with self._locked(deadline, method):
            self._raise_stored_error()
            self._send_locked(deadline, method, room=False)  # waits for all of them below
            pending, self._pending = self._pending, []
        if not pending:
            return
        done, not_done = self._waiter.wait(pending, len(pending), deadline.left())
        if not_done:
            with self._lock:
                self._pending[:0] = not_done
        self._check_done(done, method)
        if not_done:
            raise CallTimeoutError(
                f"{self._who}: {method} got no reply within {deadline.seconds:g} s for "
                f"{len(not_done)} of {len(pending)} send(s) (the actor is busy, stuck or "
                "unreachable; they may still be applied, the next flush waits for them)"
            )

    def close(self, timeout: object = DEFAULT) -> None:
        """Flush, stop the timer thread and refuse further items (idempotent).

        The batcher is closed even if the flush raises.
        """
        if self._closed:
            return
        try:
            self.flush(timeout, method="close")
        finally:
            with self._lock:
                self._closed = True
            self._wake.set()

    def discard(self) -> None:
        """Drop the buffer, stop the timer and refuse further items (nothing is sent)."""
        with self._lock:
            self._closed = True
            self._buffer = []
        self._wake.set()

    def _start_timer(self) -> None:
        assert self._flush_interval_s is not None
        self._thread = threading.Thread(
            target=_timer_loop,
            args=(weakref.ref(self), self._flush_interval_s),
            name=f"{self._who} flush",
            daemon=True,
        )
        self._thread.start()


def _timer_loop(ref: weakref.ReferenceType[ClientBatcher[Any]], interval: float) -> None:
    """Send a batcher's buffer once it is ``interval`` seconds old.

    Holds only a weak reference between rounds, so a forgotten facade (and its
    batcher) can still be collected. Its waits for room are bounded by the batcher's
    timeout; an error (a failed send it waited for, or no room in time) is kept for the
    next `ClientBatcher.add` or `ClientBatcher.flush` to raise.
    """
    while True:
        batcher = ref()
        if batcher is None:
            return
        wake = batcher._wake
        with batcher._lock:
            if batcher._closed:
                return
            delay = interval
            if batcher._buffer:
                age = time.monotonic() - batcher._since
                if age >= interval:
                    method = f"{batcher._adds} (a batch sent by the flush timer)"
                    try:
                        batcher._send_locked(_Deadline(batcher._timeout), method)
                    except Exception as exc:  # raised by the next add() or flush() instead
                        if batcher._error is None:
                            batcher._error = exc
                else:
                    delay = interval - age
        del batcher
        wake.wait(delay)
