"""Keep Ray's background chatter out of a command's output, in a log file instead.

While a Ray-on-Spark cluster starts and runs, Ray writes to this process's
``sys.stdout`` from background threads: the head node's ``ray start`` output (INFO
lines with ANSI colour codes, copied line by line by Ray-on-Spark's log-redirect
thread), messages the raylets push to the driver, and the autoscaler's events. A
command that tells a story (``actor-patterns demo``, ``launch``) routes what those
threads write to a log file and keeps its own lines on the terminal; ``--verbose``
turns this off.

Routing is by the writing thread, so nothing the command itself prints is lost. One
exception to that rule: Ray holds back repeated messages and flushes them from the
main thread when the driver disconnects, so text that starts with Ray's own line prefix
(``(raylet)``, ``(autoscaler ...)``, ``(pid=...)``, possibly coloured) goes to the log
whichever thread writes it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
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


# The prefix Ray puts before a line it forwards from another process.
RAY_LINE_PREFIX = re.compile(r"^(?:\x1b\[[0-9;]*m)?\((?:raylet|autoscaler|pid=|[\w.-]+ pid=)")

# Loggers whose records belong to Ray's plumbing, not to the command's story.
RAY_PLUMBING_LOGGERS = (
    "ray._private.worker",  # "Connecting to existing Ray cluster ..." on every ray.init
    "ray.autoscaler._private.spark.spark_job_server",  # "Spark job ... exit" at shutdown
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
        if is_ray_background_thread(threading.current_thread().name) or RAY_LINE_PREFIX.match(text):
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

    loggers = [logging.getLogger(name) for name in RAY_PLUMBING_LOGGERS]
    previous_levels = [logger.level for logger in loggers]
    previous_events = _internals.set_autoscaler_events_shown(False)
    with log_path.open("a", encoding="utf-8") as log:
        original = sys.stdout
        sys.stdout = RoutedStdout(original, log)
        # ray.init resets the "ray" logger's level; levels set on child loggers stay.
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stdout = original
            for logger, level in zip(loggers, previous_levels, strict=True):
                logger.setLevel(level)
            _internals.set_autoscaler_events_shown(previous_events)
