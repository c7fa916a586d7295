"""What every fault test needs: calls kept in flight while a process is killed.

The exactly-once tests of counters, parameter servers and agents share one shape:
threads keep a window of calls in flight, a process is SIGKILLed under them, and the
final state is compared with what the acknowledged calls promise. `CallStream` is the
in-flight part (each family says what one window sends and records) and
`kill_and_wait` the kill.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

TIMEOUT = 60  # seconds, for every single wait


class CallStream:
    """Threads that each send windows of calls until stopped; a context manager.

    A subclass implements `_window(thread)`: send one window of calls, wait for
    their answers (raising if one fails), record what they carried and return how
    many calls were acknowledged. A failure ends that thread and is kept in
    ``errors``, which `wait_for_progress` reports instead of swallowing.
    """

    def __init__(self, *, threads: int = 1) -> None:
        self._stop = threading.Event()
        self.lock = threading.Lock()
        self.acknowledged = 0
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def _window(self, thread: int) -> int:
        raise NotImplementedError

    def _run(self, thread: int) -> None:
        while not self._stop.is_set():
            try:
                done = self._window(thread)
            except BaseException as exc:  # reported by the test, not swallowed
                self.errors.append(exc)
                return
            with self.lock:
                self.acknowledged += done

    def __enter__(self) -> CallStream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=TIMEOUT)
        assert not any(t.is_alive() for t in self._threads), "a sending thread hung"

    def wait_for_progress(self, more: int) -> None:
        """Wait until ``more`` further calls were acknowledged (failing on an error)."""
        target = self.acknowledged + more
        deadline = time.monotonic() + TIMEOUT
        while self.acknowledged < target:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "no progress: the calls stopped"
            time.sleep(0.02)


def kill_and_wait(get_pid: Callable[[], int]) -> int:
    """SIGKILL the process ``get_pid`` names; wait until another process answers.

    Returns the PID that was killed.
    """
    old = get_pid()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + TIMEOUT
    while True:
        assert time.monotonic() < deadline, f"the actor was not restarted after killing {old}"
        try:
            if get_pid() != old:
                return old
        except Exception:  # a call racing with the crash; Ray retries the next one
            pass
        time.sleep(0.05)
