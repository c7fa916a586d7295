"""Keep Ray's background chatter out of a command's output, in a log file instead.

While a Ray-on-Spark cluster starts and runs, Ray writes to this process's
``sys.stdout`` from background threads: the head node's ``ray start`` output (INFO
lines with ANSI colour codes, copied line by line by Ray-on-Spark's log-redirect
thread), messages the raylets push to the driver, and the autoscaler's events. A
command that tells a story (``actor-patterns demo``, ``launch``) routes what those
threads write to a log file and keeps its own lines on the terminal; ``--verbose``
turns this off.

Routing is by the writing thread, not by the text, so nothing the command itself
prints can be lost, and nothing Ray writes from those threads reaches the terminal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

# Threads whose writes to sys.stdout are Ray's, not the command's. Python names a
# thread after its target ("Thread-3 (redirect_log_thread_fn)"); Ray names its own.
RAY_BACKGROUND_THREADS = (
    "redirect_log_thread_fn",  # ray.util.spark: copies `ray start` output line by line
    "ray_listen_error_messages",  # messages raylets push to the driver
    "ray_print_logs",  # worker and autoscaler log lines sent to the driver
)


def is_ray_background_thread(name: str) -> bool:
    """True for the threads listed in `RAY_BACKGROUND_THREADS`.

    Examples:
        >>> is_ray_background_thread("Thread-3 (redirect_log_thread_fn)")
        True
        >>> is_ray_background_thread("MainThread")
        False
    """
    return any(marker in name for marker in RAY_BACKGROUND_THREADS)


class RoutedStdout(io.TextIOBase):
    """A stdout that sends Ray's background threads' writes to ``log`` and the rest on.

    Examples:
        >>> terminal, log = io.StringIO(), io.StringIO()
        >>> out = RoutedStdout(terminal, log)
        >>> _ = out.write("step 1\\n")
        >>> t = threading.Thread(target=lambda: out.write("INFO ray start\\n"),
        ...                      name="Thread-9 (redirect_log_thread_fn)")
        >>> t.start(); t.join()
        >>> terminal.getvalue(), log.getvalue()
        ('step 1\\n', 'INFO ray start\\n')
    """

    def __init__(self, terminal: TextIO, log: TextIO) -> None:
        super().__init__()
        self._terminal = terminal
        self._log = log
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if is_ray_background_thread(threading.current_thread().name):
            with self._lock:
                self._log.write(text)
                self._log.flush()
            return len(text)
        return self._terminal.write(text)

    def flush(self) -> None:
        self._terminal.flush()
        with self._lock:
            self._log.flush()

    def isatty(self) -> bool:
        return self._terminal.isatty()

    def fileno(self) -> int:
        return self._terminal.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._terminal, "encoding", "utf-8")


@contextlib.contextmanager
def ray_output_to(log_path: Path) -> Iterator[None]:
    """Inside the block, Ray's background output goes to ``log_path``, not the terminal.

    Also silences what the background threads cannot be told apart by: the driver's
    own ``ray.init`` INFO lines and the autoscaler's event lines.
    """
    from launcher import _internals

    worker_logger = logging.getLogger("ray._private.worker")
    previous_level = worker_logger.level
    previous_events = _internals.set_autoscaler_events_shown(False)
    with log_path.open("a", encoding="utf-8") as log:
        original = sys.stdout
        sys.stdout = RoutedStdout(original, log)
        # ray.init resets the "ray" logger's level; a level on this child logger stays.
        worker_logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = original
            worker_logger.setLevel(previous_level)
            _internals.set_autoscaler_events_shown(previous_events)
