"""The launcher's remote path on the lab: Ray worker nodes on three other hosts.

One launch for the module (tests/hosts/_driver.py on the driver host); the tests read
what it reports, check the other hosts while it runs, then after its shutdown.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
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
        # The cluster's auth token, told by the driver over its stdout pipe: kept in
        # memory, out of every event (events end up in assertion messages).
        self.token: str | None = None
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
                if event["stage"] == "token":
                    self.token = event.pop("token")
                self.events[event["stage"]] = event
        return self.events[stage]

    def finish(self) -> dict:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        event = self.wait_for("down", 300)  # after "back" (up to 150 s) when not yet run
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
    assert up["cpus_per_worker"] == 2  # hybrid: the third core of each worker is Spark's
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


WORKER_IPS = sorted(M.ADDRESSES[h] for h in M.WORKERS)


def test_a_supervisor_tree_with_a_child_on_each_worker_host_keeps_their_state(launch) -> None:
    """Three children pinned to the three worker hosts (node affinity through each
    ChildSpec's actor options); the one on the last host is SIGKILLed there and comes
    back, on that host, with its count restored from the RayKVStore."""
    got = launch.wait_for("trees", 300)
    assert "error" not in got, got
    FIGURES["tree_child_restart_s"] = round(got["restart_s"], 1)
    assert sorted(got["hosts"].values()) == WORKER_IPS  # one child per worker host
    assert got["values"] == {"tally-1": 6, "tally-2": 12, "tally-3": 18}
    assert got["killed_on"] == got["hosts"]["tally-3"]  # the SIGKILL ran on its host
    assert got["restarts"] == 1
    assert got["restored"] == 18  # not 0: the snapshot came back across the kill
    assert got["restarted_on"] == got["hosts"]["tally-3"]
    assert got["others_after"] == {"tally-1": 6, "tally-2": 12}  # one_for_one


def test_agent_replicas_on_three_hosts_hold_exactly_the_statistics_of_all_feedback(
    launch,
) -> None:
    """LinUCB replicas, one per worker host, each fed a third of the feedback, merged
    once: each holds A = I + sum(x x^T) and b = sum(r x) over all of it, bit for bit
    (integer features and rewards: every sum is exact), and they predict alike."""
    got = launch.wait_for("agents", 300)
    assert "error" not in got, got
    assert sorted(got["replica_ips"]) == WORKER_IPS
    feedback = got["feedback"]
    contexts = np.array(feedback["contexts"])
    A = np.tile(np.eye(4), (3, 1, 1))  # l2_lambda = 1
    b = np.zeros((3, 4))
    for x, action, reward in zip(contexts, feedback["actions"], feedback["rewards"], strict=True):
        A[action] += np.outer(x, x)
        b[action] += reward * x
    assert len(got["A"]) == len(got["b"]) == 3
    for replica_A, replica_b in zip(got["A"], got["b"], strict=True):
        assert np.array_equal(np.array(replica_A), A)
        assert np.array_equal(np.array(replica_b), b)
    assert got["merged_feedbacks"] == [40, 40, 40]  # each learnt the other two thirds
    assert got["predictions"][0] == got["predictions"][1] == got["predictions"][2]


def test_the_spark_bridge_from_tasks_on_every_worker_host_equals_pandas_with_key_affinity(
    launch,
) -> None:
    """Executor transport: Spark tasks on worker1-3 (each one's Python worker connects to
    Ray from its host: the Ray drivers' addresses say where), results equal to pandas."""
    got = launch.wait_for("bridge", 300)
    assert "error" not in got, got
    FIGURES["bridge_batches_s"] = round(got["batch_s"], 1)
    FIGURES["bridge_groups_s"] = round(got["group_s"], 1)
    ids = np.arange(3000)
    units = ids * 7919 % 1000
    assert got["batches"] == [[int(i), float(u) * 2.5] for i, u in zip(ids, units, strict=True)]
    assert got["batch_sender_ips"] == WORKER_IPS
    assert got["batch_connections"] == 3
    frame = pd.DataFrame({"store": [f"store-{i % 4}" for i in ids], "item": ids // 4 % 3})
    frame["units"] = units
    expected = frame.groupby(["store", "item"]).agg(rows=("units", "size"), total=("units", "sum"))
    assert got["groups"] == [
        [store, int(item), int(row.rows), int(row.total)]
        for (store, item), row in expected.iterrows()
    ]
    assert got["group_sender_ips"] == WORKER_IPS
    assert got["group_connections"] == 3
    # Key affinity: every key of one actor index went to one actor, three actors in all.
    tags = got["actors_by_index"]
    assert sorted(tags) == ["0", "1", "2"]
    assert all(len(found) == 1 for found in tags.values()), tags
    assert len({found[0] for found in tags.values()}) == 3


def _regular_files(lab, host: str) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``host``'s /tmp (its path there, and from here); a
    checkout or venv bound into that /tmp (a clone in /tmp) is not the host's own."""
    root = lab.host_path(host, "/tmp")
    kept = {lab.host_path(host, path) for path in M._KEEP}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if Path(folder, d) not in kept]
        for name in files:
            path = Path(folder, name)
            try:
                if stat.S_ISREG(path.lstat().st_mode):
                    yield "/tmp/" + str(path.relative_to(root)), path
            except OSError:  # gone meanwhile
                continue


def _holds(path: Path, needle: bytes) -> bool:
    """Whether the file holds ``needle`` (read in chunks that overlap by its length)."""
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle) :]
    except OSError:  # gone meanwhile
        return False
    return False


def _token_sightings(launch, skip: set[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Where the token shows: command lines and /tmp files on every host, the driver's
    stderr. Returns the places (never the token) and the files read on each host."""
    assert launch.token is not None, "the driver did not tell the token"
    needle = launch.token.encode()
    places, scanned = [], {}
    for host in M.ADDRESSES:
        for process in launch.lab.processes(host):
            if launch.token in "\0".join(_cmdline(process)):
                places.append(f"{host}: command line of pid {process.pid} ({process.name()})")
        scanned[host] = []
        for where, path in _regular_files(launch.lab, host):
            if f"{host}:{where}" in skip:
                continue
            scanned[host].append(where)
            if _holds(path, needle):
                places.append(f"{host}: {where}")
    if _holds(launch.log, needle):
        places.append("the driver's stderr")
    return places, scanned


def test_the_auth_token_is_in_no_command_line_and_no_file_on_any_host(launch) -> None:
    """While the cluster runs, every family done (the bridge's Spark tasks connected from
    every worker host): no process on any host has the token in its command line, and no
    file under any host's /tmp holds it (Ray's logs, Spark's work dirs and event log),
    but the launcher's own 0600 token file on the driver host."""
    launch.wait_for("loss-ready", 400)
    token_file = launch.events["token"]["path"]
    mode = launch.lab.host_path("driver", token_file).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    places, scanned = _token_sightings(launch, skip={f"driver:{token_file}"})
    assert places == []
    # The scan read what it had to: Ray's logs on every Ray host, Spark's event log.
    for host in ("driver", *M.WORKERS):
        assert any("/logs/" in where for where in scanned[host]), (host, scanned[host][:20])
    assert any(w.startswith("/tmp/spark-events/") for w in scanned["driver"]), scanned["driver"]


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


def test_the_lost_host_back_runs_a_ray_node_again(launch) -> None:
    """Spark's master dropped worker3 while it was away (the lab's worker timeout) and
    re-admits it; Ray on Spark starts a node there again, and a task pinned to it runs."""
    launch.wait_for("loss", 260)
    assert launch.proc.stdin is not None
    launch.proc.stdin.write("\n")  # the host is back
    launch.proc.stdin.flush()
    back = launch.wait_for("back", 240)
    assert "error" not in back, back
    FIGURES["host_back_node_s"] = round(back["node_back_s"], 1) if back["node_back_s"] else None
    master_log = (launch.lab.logs / "master.log").read_text(errors="replace")
    dropped = [
        line
        for line in master_log.splitlines()
        if "Removing worker" in line and M.ADDRESSES["worker3"] in line
    ]
    assert dropped, master_log[-3000:]
    assert back["ran_on"] == M.ADDRESSES["worker3"], back
    assert back["alive_workers"] == 3, back


def _cmdline(process: psutil.Process) -> list[str]:
    """A running process's command line; [] for one already gone (a zombie is not running)."""
    try:
        return [] if process.status() == psutil.STATUS_ZOMBIE else process.cmdline()
    except psutil.Error:
        return []


def _leftovers(lab, host: str) -> list[str]:
    """A launch's folders and lock files in the host's own /tmp (not a checkout or venv
    under /tmp that the lab binds there, e.g. a clone named rap-*)."""
    tmp = lab.host_path(host, "/tmp")
    return sorted(
        p.name
        for p in tmp.iterdir()
        if p.name.startswith(("rap-", "ray-")) and p.name not in M.KEPT_IN_TMP
    )


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
    said = [line for line in launch.tail().splitlines() if "on the executors' hosts" in line or
            "on these hosts" in line]  # fmt: skip
    assert {host: _leftovers(launch.lab, host) for host in M.WORKERS} == {
        host: [] for host in M.WORKERS
    }, said


def test_after_shutdown_the_token_is_in_no_file_on_any_host(launch) -> None:
    """Once Spark has stopped: its finished event log (the environment its UI shows,
    every job's properties) and the executors' logs in each worker's work dir."""
    launch.finish()
    places, scanned = _token_sightings(launch, skip=set())
    assert places == []
    # Spark 4 rolls its event log: eventlog_v2_<app>/events_<n>_<app> files.
    events = [
        w
        for w in scanned["driver"]
        if w.startswith("/tmp/spark-events/") and "appstatus" not in w and not w.endswith(".crc")
    ]
    log = "".join(launch.lab.host_path("driver", w).read_text(errors="replace") for w in events)
    assert "SparkListenerEnvironmentUpdate" in log, events
    assert "SparkListenerJobStart" in log, events
    for host in M.WORKERS:
        assert any(w.startswith("/tmp/spark-work/") for w in scanned[host]), scanned[host]


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
