"""The ``actor-patterns`` command line, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher import _processes
from tests._subprocesses import REPO

CLI = [sys.executable, "-m", "launcher.cli"]


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**_users_environment(), "PYTHONPATH": str(REPO), **(env or {})},
    )


def _users_environment() -> dict[str, str]:
    """This process's environment without RAY_*: a user's shell has no session cluster's
    address or token settings (they once hid a `status` that ignored its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}


def test_plan_from_flags_prints_the_explanation() -> None:
    result = run_cli(
        "plan", "--workers", "8", "--cores-per-worker", "16", "--memory-per-worker-gb", "64",
        "--mode", "hybrid", "--reserve-workers-for-spark", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6-6 worker nodes" in result.stdout
    assert "max_worker_nodes=6," in result.stdout
    assert "head node: 0 CPUs" in result.stdout


def test_plan_json_is_machine_readable() -> None:
    result = run_cli(
        "plan", "--workers", "2", "--cores-per-worker", "1", "--memory-per-worker-gb", "4",
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["setup_kwargs"]["num_cpus_worker_node"] == 1
    assert any("CPU(s)" in w for w in payload["warnings"])


def test_plan_without_a_spec_says_what_is_missing() -> None:
    result = run_cli("plan", "--workers", "2")
    assert result.returncode == 2
    assert "--cores-per-worker" in result.stderr and "--from-spark" in result.stderr


def test_plan_with_an_impossible_spec_names_the_field() -> None:
    result = run_cli(
        "plan", "--workers", "0", "--cores-per-worker", "4", "--memory-per-worker-gb", "8"
    )
    assert result.returncode == 2
    assert "'workers' must be an int >= 1, got 0" in result.stderr


def test_status_without_a_cluster_explains_how_to_start_one(tmp_path: Path) -> None:
    result = run_cli("status", env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "actor-patterns launch" in result.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_launch_status_and_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_RUNTIME_DIR": str(tmp_path)}
    log = (tmp_path / "launch.log").open("w")
    launch = subprocess.Popen(
        [*CLI, "launch", "--embedded-workers", "1"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=env,
        cwd=REPO,
    )
    started: set = set()
    try:
        lines = []
        deadline = time.monotonic() + 420
        assert launch.stdout is not None
        while time.monotonic() < deadline:
            line = launch.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C" in line:
                break
        assert any("Ray cluster ready at 127.0.0.1:" in line for line in lines), lines
        # Without --verbose, Ray's `ray start` INFO lines (with their colour codes) and
        # autoscaler events go to the log file the command names, not to its output.
        chatter = [line for line in lines if "\x1b[" in line or " INFO " in line]
        assert chatter == [], chatter
        log_line = next(line for line in lines if "background output:" in line)
        ray_log = Path(log_line.split("output: ", 1)[1].split(";", 1)[0])
        assert "Ray runtime started" in ray_log.read_text(), "the head's output was not kept"

        status = run_cli("status", env={"XDG_RUNTIME_DIR": str(tmp_path)})
        assert status.returncode == 0, status.stderr
        # Alive nodes only: a node that failed to start and was replaced stays listed, dead.
        rows = [row for row in status.stdout.splitlines() if "  yes  " in row]
        assert sum(" worker " in row for row in rows) == 1
        assert sum(" head " in row for row in rows) == 1
        assert "CPUs 1 free of 1" in status.stdout

        started = _processes.descendants(launch.pid)
        launch.send_signal(signal.SIGINT)
        rest, _ = launch.communicate(timeout=180)
        assert launch.returncode == 0
        assert "cluster stopped" in rest
        assert _processes.wait_gone(started, timeout_s=60) == []
        assert not (tmp_path / f"ray-actor-patterns-{os.getuid()}" / "cluster.json").exists()
    finally:
        leftovers = started | _processes.descendants(launch.pid)  # before the kill orphans them
        if launch.poll() is None:
            launch.kill()
        _processes.stop(leftovers, grace_s=2)
        launch.wait(timeout=30)  # reaped, so its Popen never warns inside a later test
        log.close()
