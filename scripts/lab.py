"""A simulated multi-host Spark standalone cluster on one Linux machine (root only).

Each "host" is a network namespace with its own address in 198.18.0.0/24 (the
range reserved for network test labs), its own mount namespace (a private
``/tmp`` and ``/dev/shm``), its own process namespace and hostname. The hosts are
joined by a bridge that lives in a namespace of its own: no host has a route out
of the subnet and nothing is linked to the machine's root namespace (checked
before anything starts). A Spark standalone master runs on ``master`` and one
worker on each ``worker<i>``, daemons with a plain system PATH, started from the
venv's pyspark; ``driver`` runs the user's program and ``outsider`` is a host on
the same network that is not part of the cluster.

By hand::

    sudo .venv/bin/python scripts/lab.py up      # prints the lab's id and hosts
    sudo .venv/bin/python scripts/lab.py run driver -- python examples/...
    sudo .venv/bin/python scripts/lab.py down    # stops every process, deletes the namespaces

Every process is tracked by PID; stopping a host's process-namespace init stops
every process on that host. ``down`` (and the test fixture, also on failure or
Ctrl-C) deletes every namespace it created.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "198.18.0.0/24"
PREFIX = "raplab"
ADDRESSES = {
    "driver": "198.18.0.10",
    "master": "198.18.0.11",
    "worker1": "198.18.0.21",
    "worker2": "198.18.0.22",
    "worker3": "198.18.0.23",
    "outsider": "198.18.0.99",
}
WORKERS = ("worker1", "worker2", "worker3")
MASTER_PORT = 7077
# The PATH a system daemon has: no virtualenv on it.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
VENV_PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent
STATE_DIR = Path("/run/rap-lab")


def _paths_to_keep() -> list[str]:
    """The checkout and Pythons that live under /tmp or /dev/shm (a clone in /tmp, as CI
    may make): each host gets its own of those folders, and must still see these."""
    found: list[Path] = []
    for path in (REPO, Path(sys.prefix), Path(sys.base_prefix)):
        path = path.resolve()
        if path.parts[:2] not in (("/", "tmp"), ("/", "dev")) or str(path) == "/tmp":
            continue
        if not any(path.is_relative_to(other) for other in found):
            found = [other for other in found if not other.is_relative_to(path)] + [path]
    return [str(path) for path in found]


WORKER_TIMEOUT_S = 30

_KEEP = _paths_to_keep()
# What a host's own /tmp holds from the root namespace: the bind mounts of _KEEP there.
KEPT_IN_TMP = frozenset(Path(p).parts[2] for p in _KEEP if Path(p).parts[:2] == ("/", "tmp"))

# PID 1 of each host's process namespace: mounts the host's own /tmp and /dev/shm,
# reaps orphans, and on SIGTERM stops every process of the host (its exit then
# makes the kernel SIGKILL whatever is left in the namespace).
_INIT = r"""
import os, signal, subprocess, sys, time
host = sys.argv[1]
# A checkout (or venv) under /tmp or /dev/shm must stay visible on the host once those
# are its own: bind each aside (on a tmpfs over /mnt, private to this namespace), mount
# the host's own /tmp and /dev/shm, then bind each back where it was.
keep = [path for path in sys.argv[4].split(":") if path]
if keep:
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/mnt"], check=True)
for index, path in enumerate(keep):
    os.mkdir(f"/mnt/keep-{index}")
    subprocess.run(["mount", "--rbind", path, f"/mnt/keep-{index}"], check=True)
for target in ("/tmp", "/dev/shm"):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g,mode=1777", "tmpfs", target], check=True)
for index, path in enumerate(keep):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "--rbind", f"/mnt/keep-{index}", path], check=True)
subprocess.run(["hostname", host], check=True)
# Every lab host's name resolves, as on a real cluster (Java looks its own name up).
with open("/tmp/.lab-hosts", "w") as hosts:
    hosts.write(sys.argv[3])
subprocess.run(["mount", "--bind", "/tmp/.lab-hosts", "/etc/hosts"], check=True)
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
print("ready", flush=True)
while True:
    if stopping:
        try:
            os.kill(-1, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = stopping[0] + float(sys.argv[2])
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.1)
            except ChildProcessError:
                break
        sys.exit(0)
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            time.sleep(0.2)
    except ChildProcessError:
        time.sleep(0.2)
"""


_HOSTS_FILE = "127.0.0.1 localhost\n" + "".join(f"{a} {h}\n" for h, a in ADDRESSES.items())


class LabError(RuntimeError):
    """The lab could not be built, or it is not isolated as it must be."""


def missing_requirements() -> list[str]:
    """What this machine lacks to run the lab (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append(
            f"root (network and mount namespaces need it; running as uid {os.geteuid()})"
        )
    for tool in ("ip", "unshare", "nsenter", "mount"):
        if not any(Path(d, tool).exists() for d in SYSTEM_PATH.split(":")):
            missing.append(f"the `{tool}` command")
    if not missing:
        probe = f"{PREFIX}probe{secrets.token_hex(3)}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            missing.append(f"network namespaces (`ip netns add` failed: {made.stderr.strip()})")
        else:
            subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return missing


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _json(*args: str) -> list[dict]:
    return json.loads(_ip("-j", *args) or "[]")


def _set_parent_death_signal() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Lab:
    """One lab: its namespaces and every process started in it, by PID."""

    lab_id: str
    logs: Path
    namespaces: dict[str, str] = field(default_factory=dict)  # host -> netns name
    inits: dict[str, int] = field(default_factory=dict)  # host -> PID of its PID-1 (root view)
    pids: list[int] = field(default_factory=list)  # every process we started (root view)
    popens: list[subprocess.Popen] = field(default_factory=list, repr=False)

    @property
    def master_url(self) -> str:
        return f"spark://{ADDRESSES['master']}:{MASTER_PORT}"

    @property
    def bridge_ns(self) -> str:
        return f"{PREFIX}{self.lab_id}-br"

    # -- building ---------------------------------------------------------------

    def up(self, *, tied_to_parent: bool, worker_cores: int = 2, worker_memory: str = "3g") -> None:
        """Build the network, check its isolation, start the hosts and Spark."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._network()
        self.check_isolation()
        for host in ADDRESSES:
            self._start_host(host, tied_to_parent)
        self._start_spark(worker_cores, worker_memory, tied_to_parent)

    def _network(self) -> None:
        br = self.bridge_ns
        _ip("netns", "add", br)
        self.namespaces["bridge"] = br
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        for host, address in ADDRESSES.items():
            ns = f"{PREFIX}{self.lab_id}-{host}"
            _ip("netns", "add", ns)
            self.namespaces[host] = ns
            # IPv4 in the lab subnet only: no IPv6 (not even link-local) on any host.
            for key in ("all", "default"):
                subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "sysctl",
                        "-qw",
                        f"net.ipv6.conf.{key}.disable_ipv6=1",
                    ],
                    check=True,
                )
            # Both ends are made inside the lab: the pair never exists in the root namespace.
            _ip(
                "-n",
                br,
                "link",
                "add",
                f"v-{host}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            _ip("-n", br, "link", "set", f"v-{host}", "master", "br0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def check_isolation(self) -> None:
        """Every host: only lo and eth0, one route (the lab subnet), nothing outside reachable."""
        root_links = {link["ifname"] for link in _json("link", "show")}
        if any(name.startswith("v-") or PREFIX in name for name in root_links):
            raise LabError(f"a lab link is in the root namespace: {sorted(root_links)}")
        for host in ADDRESSES:
            ns = self.namespaces[host]
            links = sorted(link["ifname"] for link in _json("-n", ns, "link", "show"))
            if links != ["eth0", "lo"]:
                raise LabError(f"{host}: links {links}, expected only eth0 and lo")
            routes = _json("-n", ns, "route", "show", "table", "all")
            kept = [r for r in routes if r.get("table") != "local" and r.get("type") != "multicast"]
            outside = [r for r in kept if r.get("dst") != SUBNET]
            if outside or not any(r.get("dst") == SUBNET for r in routes):
                raise LabError(f"{host}: routes beyond {SUBNET}: {outside}")
            probe = subprocess.run(["ip", "-n", ns, "route", "get", "1.1.1.1"], capture_output=True)
            if probe.returncode == 0:
                raise LabError(f"{host}: a route to 1.1.1.1 exists")
        bridge_links = {link["ifname"] for link in _json("-n", self.bridge_ns, "link", "show")}
        expected = {"lo", "br0", *(f"v-{h}" for h in ADDRESSES)}
        if bridge_links != expected:
            raise LabError(
                f"bridge namespace links {sorted(bridge_links)}, expected {sorted(expected)}"
            )
        if _json("-n", self.bridge_ns, "route", "show"):
            raise LabError("the bridge namespace has routes; it must have none")

    def _start_host(self, host: str, tied_to_parent: bool) -> None:
        with (self.logs / f"{host}-init.log").open("w") as log:
            proc = subprocess.Popen(
                [
                    "ip", "netns", "exec", self.namespaces[host],
                    "unshare", "--mount", "--propagation", "private", "--pid", "--fork",
                    "--mount-proc", "--uts", "--kill-child=SIGKILL",
                    VENV_PYTHON, "-c", _INIT, host, "10", _HOSTS_FILE, ":".join(_KEEP),
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": SYSTEM_PATH}, start_new_session=True,
                preexec_fn=_set_parent_death_signal if tied_to_parent else None,
            )  # fmt: skip
        self.pids.append(proc.pid)
        self.popens.append(proc)
        deadline = time.monotonic() + 30
        while "ready" not in (self.logs / f"{host}-init.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(
                    f"{host}: init did not start: {(self.logs / f'{host}-init.log').read_text()}"
                )
            time.sleep(0.05)
        self.inits[host] = _only_child(proc.pid)
        self.pids.append(self.inits[host])

    def popen(
        self,
        host: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        tied_to_parent: bool = True,
        **kwargs,
    ) -> subprocess.Popen:
        """Start ``command`` on ``host`` with exactly ``env`` (plus a plain system PATH).

        The JVM options of the process that built the lab (``JDK_JAVA_OPTIONS``: `make
        test` runs its JVMs C1-only with the serial collector) reach every host too, as
        a cluster image's settings would.
        """
        jvm = {k: os.environ[k] for k in ("JDK_JAVA_OPTIONS",) if k in os.environ}
        full_env = {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8", **jvm, **(env or {})}
        argv = [
            "nsenter", "--target", str(self.inits[host]),
            "--net", "--mount", "--pid", "--uts", "--",
            "env", "-i", *(f"{k}={v}" for k, v in full_env.items()), *command,
        ]  # fmt: skip
        if log is not None:
            with log.open("w") as handle:
                proc = subprocess.Popen(
                    argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=_set_parent_death_signal if tied_to_parent else None, **kwargs,
                )  # fmt: skip
        else:
            proc = subprocess.Popen(
                argv, preexec_fn=_set_parent_death_signal if tied_to_parent else None, **kwargs
            )
        self.pids.append(proc.pid)
        self.popens.append(proc)
        return proc

    def processes(self, host: str) -> list:
        """Every process in ``host``'s process namespace (psutil, root view), its init too."""
        import psutil

        def pid_ns(pid: int) -> str | None:
            try:
                return os.readlink(f"/proc/{pid}/ns/pid")
            except OSError:
                return None

        # The init itself sits in the namespace it created for its children.
        mine = pid_ns(self.inits[host])
        return [p for p in psutil.process_iter() if pid_ns(p.pid) == mine]

    def run(self, host: str, command: list[str], *, env: dict[str, str] | None = None,
            timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:  # fmt: skip
        """Run ``command`` on ``host`` to completion, output captured as text."""
        proc = self.popen(host, command, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def host_path(self, host: str, path: str) -> Path:
        """``path`` as seen on ``host`` (its own /tmp), readable from the root namespace."""
        return Path(f"/proc/{self.inits[host]}/root") / path.lstrip("/")

    def _start_spark(self, cores: int, memory: str, tied_to_parent: bool) -> None:
        import pyspark

        spark_home = str(Path(pyspark.__file__).parent)
        spark_class = f"{spark_home}/bin/spark-class"

        def daemon_env(host: str) -> dict[str, str]:
            return {
                "SPARK_HOME": spark_home,
                "SPARK_NO_DAEMONIZE": "1",
                "SPARK_LOCAL_IP": ADDRESSES[host],
                "SPARK_LOCAL_HOSTNAME": ADDRESSES[host],
                "SPARK_WORKER_DIR": "/tmp/spark-work",
                "SPARK_LOCAL_DIRS": "/tmp/spark-local",
                # A host cut off for WORKER_TIMEOUT_S is dropped by the master (its
                # executors lost) and re-admitted when it is back, as on a real cluster;
                # Spark's 60 s default would race Ray's own ~60 s verdict on the host.
                "SPARK_DAEMON_JAVA_OPTS": f"-Dspark.worker.timeout={WORKER_TIMEOUT_S}",
            }

        master = ADDRESSES["master"]
        self.popen(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master",
             "--host", master, "--port", str(MASTER_PORT), "--webui-port", "8080"],
            env=daemon_env("master"), log=self.logs / "master.log", tied_to_parent=tied_to_parent,
        )  # fmt: skip
        self._wait_log("master.log", "I have been elected leader", 120)
        for host in WORKERS:
            self.popen(
                host,
                [spark_class, "org.apache.spark.deploy.worker.Worker", self.master_url,
                 "--host", ADDRESSES[host], "--cores", str(cores), "--memory", memory,
                 "--webui-port", "8081"],
                env=daemon_env(host), log=self.logs / f"{host}.log", tied_to_parent=tied_to_parent,
            )  # fmt: skip
        for host in WORKERS:
            self._wait_log(f"{host}.log", "Successfully registered with master", 120)

    def _wait_log(self, name: str, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in (self.logs / name).read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise LabError(
            f"{name}: no {text!r} after {timeout_s:g}s:\n{(self.logs / name).read_text()[-2000:]}"
        )

    # -- hosts failing ------------------------------------------------------------

    def set_link(self, host: str, up: bool) -> None:
        """Cut ``host`` off the network (its bridge port down) or bring it back."""
        _ip("-n", self.bridge_ns, "link", "set", f"v-{host}", "up" if up else "down")

    # -- tearing down -------------------------------------------------------------

    def down(self, grace_s: float = 10) -> list[str]:
        """Stop every process (each host's init stops its host), delete every namespace.

        Returns what could not be cleaned (empty when everything is gone).
        """
        import psutil

        for pid in self.inits.values():
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s + 5
        while time.monotonic() < deadline and any(
            psutil.pid_exists(p) for p in self.inits.values()
        ):
            time.sleep(0.1)
        for pid in [*self.inits.values(), *self.pids]:
            _signal(pid, signal.SIGKILL)
        for proc in self.popens:
            proc.wait()
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        problems = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [
                p
                for p in self.pids
                if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
            ]
            if not left:
                break
            time.sleep(0.1)
        else:
            problems.append(f"processes still running: {left}")
        for ns in self.namespaces.values():
            done = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if done.returncode != 0 and "No such file" not in done.stderr:
                problems.append(f"netns {ns}: {done.stderr.strip()}")
        return problems

    # -- state for `up` / `down` by hand --------------------------------------------

    def save(self) -> Path:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        path = STATE_DIR / f"{self.lab_id}.json"
        path.write_text(json.dumps({
            "lab_id": self.lab_id, "logs": str(self.logs), "namespaces": self.namespaces,
            "inits": self.inits, "pids": self.pids,
        }))  # fmt: skip
        return path

    @classmethod
    def load(cls, path: Path) -> Lab:
        data = json.loads(path.read_text())
        return cls(
            data["lab_id"], Path(data["logs"]), data["namespaces"], data["inits"], data["pids"]
        )


def _only_child(pid: int) -> int:
    import psutil

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(pid).children()
        if children:
            return children[0].pid
        time.sleep(0.05)
    raise LabError(f"process {pid} has no child (the host's init)")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start_lab(logs: Path, *, tied_to_parent: bool = True, **kwargs) -> Lab:
    """Build a lab; on any failure (Ctrl-C included) everything built is removed."""
    lab = Lab(secrets.token_hex(2), logs)
    try:
        lab.up(tied_to_parent=tied_to_parent, **kwargs)
    except BaseException:
        lab.down(grace_s=2)
        raise
    return lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build the lab and start Spark in it")
    up.add_argument("--logs", type=Path, default=None)
    down = sub.add_parser("down", help="stop every process and delete every namespace")
    down.add_argument("lab_id", nargs="?", help="default: every lab started with `up`")
    run = sub.add_parser("run", help="run a command on a host (venv first on its PATH)")
    run.add_argument("host", choices=sorted(ADDRESSES))
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "up":
        missing = missing_requirements()
        if missing:
            print("cannot build the lab; missing: " + "; ".join(missing), file=sys.stderr)
            return 2
        logs = args.logs or Path(f"/tmp/rap-lab-{secrets.token_hex(2)}")
        lab = start_lab(logs, tied_to_parent=False)
        state = lab.save()
        print(f"lab {lab.lab_id} up; Spark master {lab.master_url}; logs {logs}; state {state}")
        for host, address in ADDRESSES.items():
            print(f"  {host:9} {address}  netns {lab.namespaces[host]}  init pid {lab.inits[host]}")
        return 0
    states = sorted(STATE_DIR.glob("*.json")) if STATE_DIR.exists() else []
    if args.command == "down":
        chosen = [s for s in states if args.lab_id in (None, s.stem)]
        for path in chosen:
            problems = Lab.load(path).down()
            print(f"lab {path.stem} down" + (f"; problems: {problems}" if problems else ""))
            if not problems:
                path.unlink()
        return 0
    if not states:
        print("no lab is up (run `lab.py up` first)", file=sys.stderr)
        return 2
    lab = Lab.load(states[-1])
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    env = {"PATH": f"{Path(VENV_PYTHON).parent}:{SYSTEM_PATH}", "PYTHONPATH": str(REPO)}
    return lab.popen(args.host, cmd, env=env, tied_to_parent=True).wait()


if __name__ == "__main__":
    sys.exit(main())
