"""The lab itself: isolated, one stack, /tmp, /dev/shm and process table per host."""

from __future__ import annotations

from .conftest import load_lab_module

M = load_lab_module()

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("open")
except OSError as error:
    print(type(error).__name__, error.errno)
"""


def _connect(lab, host: str, address: str, port: int) -> str:
    done = lab.run(host, [M.VENV_PYTHON, "-c", PROBE, address, str(port)], timeout=30)
    return done.stdout.strip()


def test_hosts_reach_each_other_and_nothing_else(lab) -> None:
    lab.check_isolation()
    assert _connect(lab, "outsider", M.ADDRESSES["master"], M.MASTER_PORT) == "open"
    assert _connect(lab, "worker3", M.ADDRESSES["master"], M.MASTER_PORT) == "open"
    # No route out of the subnet: ENETUNREACH (101), not a timeout.
    assert _connect(lab, "worker1", "1.1.1.1", 80) == "OSError 101"
    assert _connect(lab, "driver", "10.0.0.1", 80) == "OSError 101"


def test_each_host_has_its_own_tmp_shm_and_processes(lab) -> None:
    lab.run("worker1", ["sh", "-c", "touch /tmp/mine /dev/shm/mine"])
    seen = lab.run("worker2", ["ls", "/tmp", "/dev/shm"]).stdout
    assert "mine" not in seen
    processes = lab.run("worker2", ["ps", "-eo", "args"]).stdout
    assert sum("deploy.worker.Worker" in line for line in processes.splitlines()) == 1
    assert "deploy.master.Master" not in processes
    assert lab.run("worker1", ["hostname"]).stdout.strip() == "worker1"


def test_spark_daemons_run_with_a_plain_system_path(lab) -> None:
    for host in ("master", *M.WORKERS):
        javas = [p for p in lab.processes(host) if p.name() == "java"]
        assert len(javas) == 1, host
        assert javas[0].environ()["PATH"] == M.SYSTEM_PATH
