"""Client-side batching (patterns._batching) without Ray: futures stand in for ObjectRefs."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from patterns._batching import FUTURE_WAITER, ClientBatcher
from patterns.errors import CallTimeoutError, FacadeClosedError

TIMEOUT = 10.0


class Receiver:
    """A fake actor: applies batches on a thread pool, optionally slowly or failing."""

    def __init__(
        self, *, delay_s: float = 0.0, fail_on: int | None = None, threads: int = 2
    ) -> None:
        self.pool = ThreadPoolExecutor(threads)
        self.batches: list[list[int]] = []
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def _apply(self, batch: list[int]) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if self.fail_on is not None and self.fail_on in batch:
                raise ValueError(f"batch with {self.fail_on} refused")
            with self._lock:
                self.batches.append(batch)
        finally:
            with self._lock:
                self.in_flight -= 1

    def send(self, batch: list[int]) -> Future[None]:
        return self.pool.submit(self._apply, batch)

    def applied(self) -> list[int]:
        return sorted(item for batch in self.batches for item in batch)


def _batcher(receiver: Receiver, **kwargs: object) -> ClientBatcher[int]:
    options: dict = {"batch_size": None, "flush_interval_s": None, "max_pending": 4}
    options.update(kwargs)
    return ClientBatcher(receiver.send, waiter=FUTURE_WAITER, who="TestFacade", **options)


def test_sends_full_batches_and_keeps_the_rest_until_flush() -> None:
    receiver = Receiver()
    batcher = _batcher(receiver, batch_size=3)
    for item in range(7):
        batcher.add(item)
    assert batcher.buffered == 1
    batcher.flush(TIMEOUT)
    # The receiver applies on two threads, so batches may land in either order.
    assert sorted(receiver.batches) == [[0, 1, 2], [3, 4, 5], [6]]
    assert batcher.buffered == 0


def test_timer_sends_an_old_buffer_and_stops_on_close() -> None:
    receiver = Receiver()
    batcher = _batcher(receiver, flush_interval_s=0.05)
    batcher.add(1)
    batcher.add(2)
    deadline = time.monotonic() + TIMEOUT
    while receiver.applied() != [1, 2]:
        assert time.monotonic() < deadline, "the timer never sent the buffer"
        time.sleep(0.01)
    batcher.close(TIMEOUT)
    assert batcher.thread is not None
    batcher.thread.join(TIMEOUT)
    assert not batcher.thread.is_alive()


def _max_overlap(max_pending: int) -> int:
    receiver = Receiver(delay_s=0.05, threads=8)
    batcher = _batcher(receiver, batch_size=1, max_pending=max_pending)
    for item in range(24):
        batcher.add(item)
    batcher.flush(TIMEOUT)
    assert receiver.applied() == list(range(24))
    return receiver.max_in_flight


def test_back_pressure_bounds_sends_in_flight() -> None:
    # At most max_pending sends are outstanding when a new one is made, so at most
    # max_pending + 1 overlap on a receiver that could take 8 at once.
    assert _max_overlap(max_pending=2) <= 3
    # The same receiver without back-pressure does overlap more: the bound is real.
    assert _max_overlap(max_pending=100) > 3


def test_a_send_error_reaches_the_caller() -> None:
    receiver = Receiver(fail_on=4)
    batcher = _batcher(receiver, batch_size=5)
    for item in range(5):
        batcher.add(item)
    with pytest.raises(ValueError, match="batch with 4 refused"):
        batcher.flush(TIMEOUT)


def test_a_timer_send_error_is_raised_by_the_next_call() -> None:
    def broken_send(batch: list[int]) -> Future[None]:
        raise ConnectionError("actor unreachable")

    batcher = ClientBatcher(
        broken_send, batch_size=None, flush_interval_s=0.02, max_pending=2, waiter=FUTURE_WAITER
    )
    batcher.add(1)
    deadline = time.monotonic() + TIMEOUT
    while batcher._error is None:
        assert time.monotonic() < deadline, "the timer never tried to send"
        time.sleep(0.01)
    with pytest.raises(ConnectionError, match="actor unreachable"):
        batcher.add(2)
    batcher.discard()


def test_flush_timeout_keeps_sends_pending() -> None:
    receiver = Receiver(delay_s=0.5)
    batcher = _batcher(receiver, batch_size=1)
    batcher.add(1)
    with pytest.raises(CallTimeoutError, match=r"TestFacade: flush got no reply within 0\.01 s"):
        batcher.flush(0.01)
    batcher.flush(TIMEOUT)  # the same send is waited for again
    assert receiver.applied() == [1]


def test_closed_batcher_refuses_items_and_discard_sends_nothing() -> None:
    receiver = Receiver()
    batcher = _batcher(receiver, batch_size=10)
    batcher.add(1)
    batcher.close(TIMEOUT)
    batcher.close(TIMEOUT)  # idempotent
    with pytest.raises(FacadeClosedError, match=r"TestFacade: add called after close\(\)"):
        batcher.add(2)
    assert receiver.applied() == [1]

    dropped = _batcher(receiver, batch_size=10)
    dropped.add(5)
    dropped.discard()
    with pytest.raises(FacadeClosedError, match="after close"):
        dropped.add(6)
    assert receiver.applied() == [1]


def test_concurrent_adders_lose_nothing() -> None:
    receiver = Receiver()
    batcher = _batcher(receiver, batch_size=7, flush_interval_s=0.01)

    def add_many(start: int) -> None:
        for item in range(start, start + 500):
            batcher.add(item)

    threads = [threading.Thread(target=add_many, args=(i * 500,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    batcher.close(TIMEOUT)
    assert receiver.applied() == list(range(2000))


def test_a_failed_send_the_timer_waited_for_is_raised_by_flush() -> None:
    # The timer thread sends an old buffer and, with max_pending=1, waits for the
    # previous send to make room. That previous send failed: flush() must say so, not
    # return as if every item added before it was acknowledged.
    receiver = Receiver(fail_on=1)
    batcher = _batcher(receiver, flush_interval_s=0.02, max_pending=1)
    batcher.add(1)  # refused by the receiver
    _wait_until(lambda: batcher.buffered == 0)  # the timer sent [1]
    batcher.add(2)
    _wait_until(lambda: batcher.buffered == 0)  # the timer sent [2], waiting for [1]
    with pytest.raises(ValueError, match="batch with 1 refused"):
        batcher.flush(TIMEOUT)
    batcher.flush(TIMEOUT)  # the error was raised once; [2] is still waited for
    assert receiver.applied() == [2]
    batcher.discard()


def _wait_until(predicate, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_back_pressure_on_a_stuck_receiver_ends_with_call_timeout_error() -> None:
    # The receiver is alive but never answers: a sender waiting for room must not wait
    # forever. The bound is the batcher's timeout (a facade passes its own).
    never: list[Future[None]] = []

    def stuck_send(batch: list[int]) -> Future[None]:
        never.append(Future())
        return never[-1]

    batcher = ClientBatcher(
        stuck_send,
        batch_size=1,
        flush_interval_s=None,
        max_pending=1,
        waiter=FUTURE_WAITER,
        who="TestFacade 'stuck'",
        timeout=0.2,
    )
    outcome: list[BaseException | None] = []

    def add_two() -> None:
        try:
            batcher.add(1)
            batcher.add(2)  # two sends out, one allowed: waits for room
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=add_two, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    try:
        assert outcome, f"add() still waiting for room after {TIMEOUT} s"
        assert isinstance(outcome[0], CallTimeoutError), outcome
        assert str(outcome[0]).startswith("TestFacade 'stuck': add waited 0.2 s")
        # The send is still pending, not dropped: flush waits for it (and times out too).
        with pytest.raises(CallTimeoutError, match=r"no reply within 0\.1 s"):
            batcher.flush(0.1)
    finally:
        for future in never:
            future.set_result(None)
    batcher.flush(TIMEOUT)
    assert len(never) == 2
