"""Client-side batching: buffer small calls, send them as one, bound what is in flight.

A facade that takes many tiny calls (an increment, a gradient, a feedback) spends
almost all its time on the per-call round trip. A `ClientBatcher` buffers the items
on the client and hands them to ``send`` as one list when

- the buffer holds ``batch_size`` items, or
- its oldest item is ``flush_interval`` seconds old (a daemon thread watches), or
- the facade calls `ClientBatcher.flush` (or `send_buffer`, or `close`).

``send`` returns a pending handle (a Ray ``ObjectRef``) and does not wait. The batcher
keeps at most ``max_pending`` sends in flight (back-pressure: the caller waits for the
oldest ones), and `flush` waits for all of them: when it returns, everything added
before it was acknowledged. An error from a send made by the timer thread has no caller
to go to; it is kept and raised by the next `add` or `flush`.

How a pending handle is waited for is a `Waiter`: Ray's by default (`RAY_WAITER`),
`FUTURE_WAITER` for ``concurrent.futures`` (which is how this module is tested
without Ray).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["FUTURE_WAITER", "RAY_WAITER", "ClientBatcher", "Waiter"]

T = TypeVar("T")


@dataclass(frozen=True)
class Waiter:
    """How to wait for pending sends: split off finished ones, and get results.

    Attributes:
        wait: ``wait(pending, num_returns) -> (done, not_done)``, blocking until at
            least ``num_returns`` are done.
        get: ``get(pending, timeout)``: wait for all, raise the first error, raise
            ``timeout_error`` when ``timeout`` seconds pass.
        timeout_error: The exception ``get`` raises on a timeout.
    """

    wait: Callable[[list[Any], int], tuple[list[Any], list[Any]]]
    get: Callable[[list[Any], float | None], Any]
    timeout_error: type[BaseException]


def _ray_wait(pending: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
    import ray

    return ray.wait(pending, num_returns=num_returns)


def _ray_get(pending: list[Any], timeout: float | None) -> Any:
    import ray

    return ray.get(pending, timeout=timeout)


def _ray_timeout_error() -> type[BaseException]:
    from ray.exceptions import GetTimeoutError

    return GetTimeoutError


RAY_WAITER = Waiter(_ray_wait, _ray_get, _ray_timeout_error())


def _futures_wait(pending: list[Any], num_returns: int) -> tuple[list[Any], list[Any]]:
    done = [f for f in pending if f.done()][:num_returns]
    while len(done) < num_returns:
        waiting = [f for f in pending if not f.done()]
        concurrent.futures.wait(waiting, return_when=concurrent.futures.FIRST_COMPLETED)
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


class ClientBatcher(Generic[T]):
    """Buffer items on the client and send them in batches, with bounded sends in flight.

    Args:
        send: Called with a non-empty list of items (under the batcher's lock, so sends
            keep the order of ``add`` calls); returns a pending handle, without waiting.
        batch_size: Send when the buffer holds this many items (None: no size trigger).
        flush_interval: Send when the oldest buffered item is this many seconds old
            (None: no timer thread).
        max_pending: At most this many sends in flight; more waits for the oldest.
        waiter: How to wait for pending handles (default: Ray's).
        name: The facade's name, for "this X is closed" errors and the thread's name.

    Examples:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> pool, sent = ThreadPoolExecutor(1), []
        >>> batcher = ClientBatcher(
        ...     lambda items: pool.submit(sent.append, sum(items)),
        ...     batch_size=3, flush_interval=None, max_pending=2, waiter=FUTURE_WAITER,
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
        flush_interval: float | None,
        max_pending: int,
        waiter: Waiter = RAY_WAITER,
        name: str = "batcher",
    ) -> None:
        self._send = send
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._waiter = waiter
        self._name = name
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
    def thread(self) -> threading.Thread | None:
        """The timer thread, once started (it exits after `close`)."""
        return self._thread

    def _check_open(self) -> None:
        if self._closed:
            msg = f"this {self._name} is closed"
            raise RuntimeError(msg)

    def _raise_stored_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _send_locked(self, *, raise_errors: bool) -> None:
        """Send the buffer as one batch, then apply back-pressure. Caller holds the lock."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._pending.append(self._send(batch))
        excess = len(self._pending) - self._max_pending
        if excess > 0:
            done, self._pending = self._waiter.wait(self._pending, excess)
            if raise_errors:
                self._waiter.get(done, None)

    def add(self, item: T) -> None:
        """Buffer ``item``; send the buffer if it is full.

        Raises:
            RuntimeError: If the batcher is closed.
            Exception: A send error kept from the timer thread, or from this send.
        """
        with self._lock:
            self._check_open()
            self._raise_stored_error()
            self._buffer.append(item)
            if len(self._buffer) == 1 and self._flush_interval is not None:
                self._since = time.monotonic()
                if self._thread is None:
                    self._start_timer()
            if self._batch_size is not None and len(self._buffer) >= self._batch_size:
                self._send_locked(raise_errors=True)

    def send_buffer(self) -> None:
        """Send what is buffered now, without waiting for it to be applied."""
        with self._lock:
            self._raise_stored_error()
            self._send_locked(raise_errors=True)

    def flush(self, timeout: float | None = None) -> None:
        """Send the buffer and wait until every send so far is applied.

        Raises:
            Exception: The first send error; or the waiter's timeout error, in which
                case the sends stay pending and the next flush waits for them again.
        """
        with self._lock:
            self._raise_stored_error()
            self._send_locked(raise_errors=True)
            pending, self._pending = self._pending, []
        try:
            self._waiter.get(pending, timeout)
        except self._waiter.timeout_error:
            with self._lock:
                self._pending[:0] = pending
            raise

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the timer thread and refuse further items (idempotent)."""
        if self._closed:
            return
        self.flush(timeout)
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
        assert self._flush_interval is not None
        self._thread = threading.Thread(
            target=_timer_loop,
            args=(weakref.ref(self), self._flush_interval),
            name=f"{self._name}-flush",
            daemon=True,
        )
        self._thread.start()


def _timer_loop(ref: weakref.ReferenceType[ClientBatcher[Any]], interval: float) -> None:
    """Send a batcher's buffer once it is ``interval`` seconds old.

    Holds only a weak reference between rounds, so a forgotten facade (and its
    batcher) can still be collected.
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
                    try:
                        batcher._send_locked(raise_errors=False)
                    except Exception as exc:  # raised by the next add() or flush() instead
                        batcher._error = exc
                else:
                    delay = interval - age
        del batcher
        wake.wait(delay)
