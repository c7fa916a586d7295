"""Guaranteed teardown, checked on real processes of real embedded clusters.

Three driver processes run at once (a launch is mostly waiting, so this saves
minutes on 2 cores): one exits a ``with`` block by exception, relaunches in the
same process and returns without shutdown() (atexit); one gets SIGTERM; one
gets SIGKILL. After each, no process that launch started may survive.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher import _processes
from tests._subprocesses import Driver, keys

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.fault]

READY_TIMEOUT_S = 420
# Ray's and Spark's own parent-death checks poll every few seconds.
GONE_TIMEOUT_S = 90


@pytest.fixture(scope="module")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Driver]]:
    log_dir: Path = tmp_path_factory.mktemp("drivers")
    started = {
        "relaunch": Driver("relaunch", "driver.py", "relaunch", log_dir=log_dir),
        "sigterm": Driver("sigterm", "driver.py", "wait", log_dir=log_dir),
        "sigkill": Driver("sigkill", "driver.py", "wait", log_dir=log_dir),
    }
    try:
        yield started
    finally:
        for driver in started.values():
            driver.stop()


def _survivors(started: set[_processes.ProcessKey]) -> list[str]:
    return [
        f"{p.pid} {' '.join(p.cmdline()[:4])}"
        for p in _processes.wait_gone(started, timeout_s=GONE_TIMEOUT_S)
    ]


def test_with_block_exception_tears_down(drivers: dict[str, Driver]) -> None:
    driver = drivers["relaunch"]
    ready = driver.next_event(READY_TIMEOUT_S)
    assert ready["event"] == "ready" and ready["task_on_worker"]
    assert len(ready["processes"]) >= 5  # JVMs, head, raylets, gcs ...
    after = driver.next_event(120)
    assert after["event"] == "after-exception"
    assert "user code failed" in after["error"]
    assert after["leftovers"] == []


def test_second_launch_in_same_process_then_atexit_teardown(drivers: dict[str, Driver]) -> None:
    driver = drivers["relaunch"]
    # The first two events belong to the previous test; wait for them if needed.
    events = []
    while not events or events[-1]["event"] != "exiting":
        events.append(driver.next_event(READY_TIMEOUT_S))
    second_ready = [e for e in events if e["event"] == "ready"][-1]
    assert second_ready["task_on_worker"], "the second launch ran no task on a worker node"
    driver.proc.wait(timeout=120)
    assert driver.proc.returncode == 0
    assert _survivors(keys(second_ready["processes"])) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_driver_signal_leaves_no_process(drivers: dict[str, Driver], signum: int) -> None:
    driver = drivers["sigterm" if signum == signal.SIGTERM else "sigkill"]
    ready = driver.next_event(READY_TIMEOUT_S)
    assert ready["event"] == "ready" and ready["task_on_worker"]
    # Everything below the driver now, plus Ray nodes recognised by the temp dir.
    started = driver.tree() | keys(ready["processes"])
    started |= _processes.processes_mentioning(ready["temp_root"])
    driver.signal(signum)
    driver.proc.wait(timeout=120)
    assert _survivors(started) == []
