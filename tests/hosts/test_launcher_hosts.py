"""The launcher's remote path on the lab: Ray worker nodes on three other hosts.

One launch for the module (tests/hosts/_driver.py on the driver host); the tests read
what it reports, check the other hosts while it runs, then after its shutdown.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from .conftest import FIGURES, load_lab_module

M = load_lab_module()
DRIVER = Path(__file__).with_name("_driver.py")
REPO = Path(__file__).resolve().parents[2]

OUTSIDER = """
import ray, sys
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
    print("connected")
except Exception as error:
    print("refused", type(error).__name__, str(error)[:500].replace("\\n", " "))
"""


class Launch:
    """The driver process and the JSON lines it printed."""

    def __init__(self, lab, log: Path) -> None:
        self.lab = lab
        self.log = log
        self.events: dict[str, dict] = {}
        self.ended = False
        self._lines: queue.Queue[str | None] = queue.Queue()
        with log.open("w") as stderr:
            self.proc = lab.popen(
                "driver",
                [M.VENV_PYTHON, str(DRIVER), lab.master_url, M.ADDRESSES["driver"], "120"],
                # No venv on PATH: its Python by path, for the executors too (as users do).
                env={"PYTHONPATH": str(REPO), "PYSPARK_PYTHON": M.VENV_PYTHON},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, stage: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while stage not in self.events:
            if self.ended:
                pytest.fail(f"the driver exited before {stage!r}:\n{self.tail()}")
            if "error" in self.events:
                pytest.fail(f"the launch failed: {self.events['error']}")
            try:
                line = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {stage!r} from the driver in {timeout_s:g}s:\n{self.tail()}")
            if line is None:
                self.ended = True
                pytest.fail(f"the driver exited before {stage!r}:\n{self.tail()}")
            if line.startswith("{"):
                event = json.loads(line)
                self.events[event["stage"]] = event
        return self.events[stage]

    def finish(self) -> dict:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        event = self.wait_for("down", 120)
        self.proc.wait(timeout=60)
        return event

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def launch(lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    run = Launch(lab, tmp_path_factory.mktemp("hosts-launch") / "driver.log")
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(timeout=30)
        for stream in (run.proc.stdin, run.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:  # stdin of a driver that is gone: nothing left to flush to
                pass


def test_worker_nodes_start_on_every_worker_host_with_a_plain_daemon_path(launch) -> None:
    up = launch.wait_for("up", 400)
    FIGURES["launch_start_s"] = round(up["start_s"], 1)
    workers = [M.ADDRESSES[h] for h in M.WORKERS]
    assert up["alive_workers"] == 3
    assert up["worker_ips"] == workers  # one per worker host, on its address
    assert up["node_ips"] == sorted([M.ADDRESSES["driver"], *workers])  # never loopback


def test_counters_are_exact_with_callers_on_every_host(launch) -> None:
    got = launch.wait_for("counters", 200)
    workers = sorted(M.ADDRESSES[h] for h in M.WORKERS)
    assert got["caller_ips"] == workers
    assert got["counter"] == got["expected"] == 150
    assert got["sharded_caller_ips"] == workers
    assert got["sharded"] == got["sharded_expected"] == 360


def test_a_parameter_server_with_gradient_workers_on_every_host_is_exact(launch) -> None:
    got = launch.wait_for("ps", 200)
    assert "error" not in got, got
    assert got["pusher_ips"] == sorted(M.ADDRESSES[h] for h in M.WORKERS)
    assert got["w"] == [-15.0] * 4  # 30 sgd steps of 0.5 * 1, as on one host


def test_a_directory_store_on_one_hosts_own_disk_is_refused_on_another(launch) -> None:
    """The store made on the driver host's own /tmp reaches a counter on worker1: its
    path there is another directory, so the actor refuses it instead of starting empty."""
    store = launch.wait_for("store", 300)
    assert store["refused"] is not None, "a counter on another host accepted the store"
    assert "is not the same directory on host" in store["refused"], store["refused"]
    assert "it does not exist here" in store["refused"], store["refused"]


def test_the_outsider_without_the_token_is_refused(launch) -> None:
    address = launch.wait_for("up", 400)["address"]
    done = launch.lab.run("outsider", [M.VENV_PYTHON, "-c", OUTSIDER, address], timeout=120)
    assert done.stdout.startswith("refused"), done.stdout + done.stderr[-2000:]
    # Ray logs the GCS's answer (stderr) before raising its generic ConnectionError.
    assert "InvalidAuthToken" in done.stderr, done.stderr[-2000:]


def test_a_lost_host_loses_no_acknowledged_increment_and_nothing_hangs(launch) -> None:
    """worker3's link goes down: Ray declares its node dead, the counter restarts elsewhere."""
    ready = launch.wait_for("loss-ready", 200)
    assert ready["victim_ip"] == M.ADDRESSES["worker3"]
    launch.lab.set_link("worker3", up=False)
    try:
        assert launch.proc.stdin is not None
        launch.proc.stdin.write("\n")
        launch.proc.stdin.flush()
        got = launch.wait_for("loss", 260)
    finally:
        launch.lab.set_link("worker3", up=True)
    assert "error" not in got, got
    FIGURES["host_loss_detect_s"] = round(got["detect_s"], 1) if got["detect_s"] else None
    FIGURES["host_loss_counter_serves_s"] = round(got["serve_s"], 1) if got["serve_s"] else None
    assert got["detect_s"] is not None  # Ray noticed the lost node
    assert got["in_flight_result"] == 21  # the call sent after the cut completed once
    assert got["value"] == got["expected"] == 21  # every acknowledged increment survived
    assert got["restarted_on"] in [M.ADDRESSES[h] for h in ("worker1", "worker2", "driver")]


def _cmdline(process: psutil.Process) -> list[str]:
    """A running process's command line; [] for one already gone (a zombie is not running)."""
    try:
        return [] if process.status() == psutil.STATUS_ZOMBIE else process.cmdline()
    except psutil.Error:
        return []


def _leftovers(lab, host: str) -> list[str]:
    tmp = lab.host_path(host, "/tmp")
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("rap-", "ray-")))


def test_no_process_of_the_launch_is_left_on_any_host(launch) -> None:
    """Remote nodes stop when Spark cancels their tasks (their starter polls its parent):
    the driver cannot wait for them, so they get a grace period, measured."""
    launch.wait_for("up", 400)
    began = time.monotonic()
    launch.finish()
    FIGURES["launch_shutdown_s"] = round(time.monotonic() - began, 1)
    deadline = time.monotonic() + 30
    while True:
        left = {
            host: [
                c for c in map(" ".join, map(_cmdline, launch.lab.processes(host))) if "ray" in c
            ]
            for host in ("driver", *M.WORKERS)
        }
        if not any(left.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    FIGURES["remote_nodes_gone_after_shutdown_s"] = round(time.monotonic() - began, 1)
    assert left == {host: [] for host in ("driver", *M.WORKERS)}


def test_no_temp_folder_or_lock_file_is_left_on_a_worker_host(launch) -> None:
    """Failed before: Ray's node starter left <temp root>/ray-<port>-<id>.lock and the
    temp root itself on every worker host; the launcher's shutdown now removes them."""
    launch.finish()
    assert {host: _leftovers(launch.lab, host) for host in M.WORKERS} == {
        host: [] for host in M.WORKERS
    }


def test_a_node_start_error_fails_the_launch_at_once_with_its_cause(lab, tmp_path: Path) -> None:
    """Failed before: 300 s of waiting, "a busy host" and a retry; the cause deep in a chain."""
    command = [M.VENV_PYTHON, str(DRIVER), lab.master_url, M.ADDRESSES["driver"], "120"]
    env = {"PYTHONPATH": str(REPO), "PYSPARK_PYTHON": M.VENV_PYTHON}
    done = lab.run("driver", [*command, "bad-option"], env=env, timeout=400)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["stage"] == "bad-option", done.stderr[-3000:]
    error = events[-1]["error"]
    assert error is not None and "a Ray worker node failed" in error
    assert "no-such-option" in error or "no_such_option" in error, error
    assert "trying again" not in done.stderr  # not retried as if the host were busy
    FIGURES["node_start_error_s"] = round(events[-1]["elapsed_s"], 1)
