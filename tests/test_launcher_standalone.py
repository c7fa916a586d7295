"""The non-embedded path: a real Spark standalone master and two workers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher import _processes

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SCRIPT = Path(__file__).parent / "scripts" / "standalone.py"
REPO = Path(__file__).parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


@pytest.fixture(scope="module")
def standalone_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and two 1-core workers started with spark-class; stopped by PID."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    logs = tmp_path_factory.mktemp("standalone")
    port = _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_WORKER_DIR": str(logs / "work"),
        "PYSPARK_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    spark_class = str(spark_home / "bin" / "spark-class")
    commands = {
        "master": [
            spark_class, "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port()),
        ],
        **{
            f"worker{i}": [
                spark_class, "org.apache.spark.deploy.worker.Worker", master_url,
                "--host", "127.0.0.1", "--cores", "1", "--memory", "2g",
                "--webui-port", str(_free_port()),
            ]
            for i in (1, 2)
        },
    }  # fmt: skip
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            # The child keeps its own copy of the descriptor; ours closes at once.
            with (logs / f"{name}.log").open("w") as log:
                procs[name] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env
                )
            if name == "master":
                _wait_for(lambda: _port_open(port), 120, "the standalone master")
        for name in ("worker1", "worker2"):
            _wait_for(
                lambda name=name: (
                    "Successfully registered with master" in (logs / f"{name}.log").read_text()
                ),
                120,
                f"{name} to register",
            )
        yield master_url
    finally:
        started = set()
        for proc in procs.values():
            started |= {(proc.pid, _create_time(proc.pid))} | _processes.descendants(proc.pid)
        _processes.stop(started, grace_s=10)
        # Reap our direct children: stopped by PID above, their Popen objects would
        # otherwise warn "still running" when collected, inside some later test.
        for proc in procs.values():
            proc.wait(timeout=30)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _create_time(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def test_launcher_plans_from_a_standalone_session(standalone_master: str, tmp_path: Path) -> None:
    log = tmp_path / "driver.log"
    with log.open("w") as handle:
        result = subprocess.run(
            [sys.executable, str(SCRIPT), standalone_master],
            stdout=subprocess.PIPE,
            stderr=handle,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert result.returncode == 0, log.read_text()[-3000:]
    before, launched, after = events
    assert before["bridge_refused_without_ray"]  # Spark bridge: a clear error, no job
    assert launched["spec_workers"] == 2
    assert launched["spec_cores"] == 1
    assert launched["planned_workers"] == 1  # the other worker is kept for Spark jobs
    assert launched["alive_workers"] == 1  # one Ray worker node per worker given to Ray
    assert launched["result"] == [2 * i for i in range(8)]
    # The Spark bridge on the standalone executors: their Python workers reach Ray
    # with the auth the driver sends (the executors' environment has no token).
    assert launched["bridge_ok"]
    assert launched["bridge_connections"] >= 1
    assert after["spark_still_usable"]
