"""Routing Ray's background output away from a command's own lines (launcher._quiet)."""

from __future__ import annotations

import io
import logging
import sys
import threading
from pathlib import Path

from launcher._quiet import RoutedStdout, ray_output_to


def _write_from(thread_name: str, out: RoutedStdout, text: str) -> None:
    thread = threading.Thread(target=out.write, args=(text,), name=thread_name)
    thread.start()
    thread.join(timeout=10)


def test_ray_threads_and_ray_prefixed_lines_go_to_the_log() -> None:
    terminal, log = io.StringIO(), io.StringIO()
    out = RoutedStdout(terminal, log)
    out.write("== 1. The plan\n")
    _write_from("Thread-7 (redirect_log_thread_fn)", out, "INFO scripts.py -- ray start\n")
    _write_from("ray_listen_error_messages", out, "WARNING: 4 PYTHON workers\n")
    # Flushed from the main thread at ray.shutdown(), but still Ray's line.
    out.write("\x1b[33m(raylet)\x1b[0m A worker died or was killed\n")
    _write_from("Thread-8 (worker)", out, "(not Ray) a user thread's line\n")
    assert terminal.getvalue() == "== 1. The plan\n(not Ray) a user thread's line\n"
    assert log.getvalue().splitlines() == [
        "INFO scripts.py -- ray start",
        "WARNING: 4 PYTHON workers",
        "\x1b[33m(raylet)\x1b[0m A worker died or was killed",
    ]


def test_the_block_restores_stdout_and_logger_levels(tmp_path: Path) -> None:
    original = sys.stdout
    worker_logger = logging.getLogger("ray._private.worker")
    level = worker_logger.level
    with ray_output_to(tmp_path / "ray.log"):
        assert isinstance(sys.stdout, RoutedStdout)
        assert worker_logger.level == logging.ERROR
    assert sys.stdout is original
    assert worker_logger.level == level
