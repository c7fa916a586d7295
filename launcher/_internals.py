"""Every non-public API the launcher relies on, in one place, each with the reason.

Public APIs do not offer these; when Ray, PySpark or Python change one, this module
is the only place to fix. Each function degrades to a safe default where it can.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import Any

from launcher import _versions


def register_exit_hook_before_thread_join(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit *before* non-daemon threads are joined.

    Why: ray.util.spark leaves a non-daemon thread blocked in a Spark ``collect()`` for
    as long as a worker node lives, and Python joins non-daemon threads before it runs
    ``atexit`` hooks, so a plain atexit hook never runs and the process hangs at exit.
    ``threading._register_atexit`` runs before that join (concurrent.futures uses it).
    """
    try:
        threading._register_atexit(hook)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # another Python, or already shutting down
        atexit.register(hook)


def active_ray_on_spark_cluster() -> Any:
    """The cluster ray.util.spark considers active in this process, or None.

    Why: Ray-on-Spark allows one cluster per driver process and has no public way to ask
    whether one is running (e.g. started by plain ``setup_ray_cluster``), which the
    launcher must know before it starts another.
    """
    from ray.util.spark import cluster_init

    return getattr(cluster_init, "_active_ray_cluster", None)


def install_ray_on_spark_sigterm_handler() -> None:
    """Install Ray-on-Spark's SIGTERM handler now, from the main thread.

    Why: ``setup_ray_cluster`` installs it lazily; installed first, it becomes the inner
    handler, so the launcher's own handler (installed after) runs around it and still
    tears down what Ray's leaves.
    """
    from ray.util.spark import cluster_init

    install = getattr(cluster_init, "_install_sigterm_signal", None)
    if install is not None:
        install()


def refresh_ray_auth_config() -> None:
    """Make this process re-read ``RAY_AUTH_*`` (Ray caches both the mode and the token).

    Why: a second launch in the same process brings a new token; without a refresh Ray
    keeps presenting the first cluster's token and fails with AuthenticationError.
    """
    if os.environ.get("RAY_AUTH_MODE") == "token":
        _versions.require_token_auth()  # an older Ray would ignore it: an open cluster
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # a Ray without these hooks: nothing cached to reset
        pass


def executor_block_managers(spark: Any) -> list[str]:
    """``host:port`` of every block manager of the session (executors and the driver).

    Why: PySpark exposes no list of executors; the JVM's ``getExecutorMemoryStatus``
    is the standard way to see which executors have registered.
    """
    status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
    keys = status.keys().iterator()
    found = []
    while keys.hasNext():
        found.append(str(keys.next()))
    return found


def stop_spark_gateway() -> None:
    """Stop PySpark's gateway JVM and forget it, so the next session starts a fresh one.

    Why: ``SparkSession.stop()`` keeps the gateway JVM for reuse; an embedded cluster
    started afterwards in the same process would inherit the first one's environment
    (auth token, paths), and the JVM would outlive the launch that started it.
    """
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    try:
        gateway.shutdown()
    except Exception:  # already gone
        pass
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except Exception:
            proc.kill()
    SparkContext._gateway = None
    SparkContext._jvm = None


def set_autoscaler_events_shown(shown: bool) -> bool:
    """Show or hide the autoscaler's event lines on the driver; return the previous setting.

    Why: Ray reads ``RAY_SCHEDULER_EVENTS`` once, when ``ray`` is imported, into
    ``ray_constants.AUTOSCALER_EVENTS``, and checks that attribute for every line; a
    command that imported ray before deciding can only change the attribute.
    """
    from ray._private import ray_constants

    previous = bool(getattr(ray_constants, "AUTOSCALER_EVENTS", True))
    ray_constants.AUTOSCALER_EVENTS = int(shown)
    return previous


def set_worker_start_patience(seconds: float) -> None:
    """Let ``setup_ray_cluster`` wait ``seconds`` (not its fixed 120 s) for a first worker.

    Why: Ray on Spark gives up when no worker node has joined for 120 s, a module
    constant with no setting. On a busy host (several clusters, a loaded CI machine)
    the first node can take longer; the launcher's own ``ready_timeout_s`` is the
    user's answer to "how long may a start take", so it governs both waits.
    """
    from ray.util.spark import cluster_init

    if hasattr(cluster_init, "_RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT"):
        cluster_init._RAY_CONNECT_CLUSTER_POLL_PROGRESS_TIMEOUT = max(120, int(seconds))


def close_spark_job_server(cluster_handle: Any) -> None:
    """Close the listening socket of a stopped cluster's Spark job server.

    Why: Ray on Spark stops its job server's request loop at shutdown but never closes
    the server's socket, so every launch in a process would leave one listening
    descriptor behind until the garbage collector finds it.
    """
    server = getattr(cluster_handle, "spark_job_server", None)
    close = getattr(server, "server_close", None)
    if close is not None:
        close()


# ------------------------------------------------------------------------------------
# Fast start: readiness instead of Ray on Spark's fixed waits.
#
# Ray on Spark (ray.util.spark.cluster_init) starts a cluster with three fixed waits:
#   1. a 20 s sleep after starting the head (``_RAY_HEAD_STARTUP_TIMEOUT``), then one
#      check that the GCS port answers;
#   2. a per-host file lock around each node's port-range allocation, held a fixed
#      ``_RAY_WORKER_NODE_STARTUP_INTERVAL`` (10 s) after the allocation and polled
#      every 10 s by the next node on that host, so nodes on one host start 10-20 s
#      apart (the head holds it too, so the first worker on the driver's host waits);
#   3. a 3 s progress poll (``_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL``).
# The lock exists for a real race: nodes on one host share a temp dir, and each picks
# its raylet and plasma socket names by "first name not yet on disk"; two nodes picking
# before either socket exists would pick the same one. The take-over keeps the lock and
# the allocation file (same paths, same format, so it interoperates with plain Ray on
# Spark clusters on the same host) but polls the lock every 0.1 s and holds it until
# this node's raylet has created both sockets (at most Ray's 10 s), which closes the
# race by readiness instead of by a guess.
#
# Pinned: the take-over is used only on these Ray versions, and only when the pieces it
# replaces still read as they did (``tests/test_launcher_internals.py`` fails when they
# change, and the launcher then falls back to Ray's own path: slower, still correct).
FAST_START_RAY_VERSIONS = ("2.60.",)
# What the take-over relies on in ray.util.spark.cluster_init, checked before it is used.
FAST_START_RELIES_ON = {
    "_setup_ray_cluster": (
        "autoscaling_cluster = AutoscalingCluster(",
        "time.sleep(_RAY_HEAD_STARTUP_TIMEOUT)",
        "if not is_port_in_use(ray_head_ip, ray_head_port):",
    ),
    "AutoscalingCluster.start": (
        "_preallocate_ray_worker_port_range()",
        "return _start_ray_head_node(",
    ),
    "_start_ray_worker_nodes": ("= _preallocate_ray_worker_port_range()",),
    "_preallocate_ray_worker_port_range": (
        '"/tmp/ray_on_spark_worker_startup_barrier_lock.lock"',
        '"/tmp/ray_on_spark_worker_port_allocation.txt"',
        "worker_port_range_begin = 20000 + new_slot_index * 1000",
        "time.sleep(_RAY_WORKER_NODE_STARTUP_INTERVAL)",
    ),
    "RayClusterOnSpark.wait_until_ready": (
        "time.sleep(_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL)",
    ),
}
RAYLET_SOCKET_FLAGS = ("--raylet_socket_name=", "--store_socket_name=")
HEAD_POLL_S = 0.1
PROGRESS_POLL_S = 0.2
PORT_LOCK_POLL_S = 0.1
# Never hold the per-host lock longer than Ray itself would (its default interval).
PORT_LOCK_MAX_HOLD_S = 10.0


def fast_start_problems() -> list[str]:
    """Why the fast start cannot be used with the installed Ray (empty: it can).

    Returns:
        One line per mismatch: an unsupported Ray version, or a piece of
        ``ray.util.spark.cluster_init`` that no longer reads as the take-over expects.
    """
    import inspect

    import ray
    from ray.util.spark import cluster_init

    problems = []
    if not ray.__version__.startswith(FAST_START_RAY_VERSIONS):
        problems.append(
            f"Ray {ray.__version__} is not among the versions the fast start was checked "
            f"against ({', '.join(v + 'x' for v in FAST_START_RAY_VERSIONS)})"
        )
    try:
        module_source = inspect.getsource(cluster_init)
    except (OSError, TypeError):
        return [*problems, "the source of ray.util.spark.cluster_init cannot be read"]
    for name, needles in FAST_START_RELIES_ON.items():
        # Read the file, not the attribute: while a fast-started cluster runs in this
        # process, the attribute is the take-over itself.
        source = _definition_source(module_source, name)
        if source is None:
            problems.append(f"ray.util.spark.cluster_init.{name} is gone")
            continue
        for needle in needles:
            if needle not in source:
                problems.append(f"ray.util.spark.cluster_init.{name} no longer has {needle!r}")
    # Readiness reads the raylet's socket paths from its command line.
    from ray._private import services

    raylet_source = inspect.getsource(services.start_raylet)
    for flag in RAYLET_SOCKET_FLAGS:
        if f'f"{flag}' not in raylet_source:
            problems.append(f"ray._private.services.start_raylet no longer passes {flag}")
    for constant in (
        "_RAY_HEAD_STARTUP_TIMEOUT",
        "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL",
        "_RAY_WORKER_NODE_STARTUP_INTERVAL",
    ):
        if not hasattr(cluster_init, constant):
            problems.append(f"ray.util.spark.cluster_init.{constant} is gone")
    return problems


def _definition_source(module_source: str, dotted_name: str) -> str | None:
    """The source text of a module-level function, class or ``Class.method`` in a module."""
    import ast

    body = ast.parse(module_source).body
    node: ast.AST | None = None
    for part in dotted_name.split("."):
        node = next(
            (
                item
                for item in body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and item.name == part
            ),
            None,
        )
        if node is None:
            return None
        body = getattr(node, "body", [])
    return ast.get_source_segment(module_source, node) if node is not None else None


def _make_port_range_allocator(poll_s: float, max_hold_s: float) -> Callable[[], tuple[int, int]]:
    """Ray's ``_preallocate_ray_worker_port_range`` with readiness instead of fixed waits.

    The returned function runs in the process that starts a Ray node: the driver (head)
    and each Spark task (worker nodes, possibly on hosts without this package). It is
    a nested function, so Spark's cloudpickle ships it by value, and it imports only
    what Ray on Spark itself needs there (the standard library and psutil).
    """

    def allocate_worker_port_range() -> tuple[int, int]:
        import fcntl
        import os
        import threading
        import time

        import psutil

        lock_path = "/tmp/ray_on_spark_worker_startup_barrier_lock.lock"
        alloc_path = "/tmp/ray_on_spark_worker_port_allocation.txt"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
        try:
            os.chmod(lock_path, 0o777)
        except OSError:  # another user's file: the lock still works
            pass
        deadline = time.monotonic() + 6000  # Ray's own bound: 600 tries x 10 s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise TimeoutError(f"acquiring the lock on {lock_path} timed out") from None
                time.sleep(poll_s)

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        try:
            table: dict[int, int] = {}
            if os.path.exists(alloc_path):
                with open(alloc_path) as handle:
                    for line in handle.read().strip().splitlines():
                        pid, slot = (int(x) for x in line.split(" "))
                        if psutil.pid_exists(pid):
                            table[pid] = slot
            else:
                with open(alloc_path, "w"):
                    pass
                os.chmod(alloc_path, 0o777)
            used = set(table.values())
            slot = next(i for i in range(len(used) + 1) if i not in used)
            table[os.getpid()] = slot
            with open(alloc_path, "w") as handle:
                for pid, index in table.items():
                    handle.write(f"{pid} {index}\n")
            begin = 20000 + slot * 1000
            end = begin + 1000
            if end > 65536:
                raise RuntimeError(
                    "Too many ray worker nodes are running on this machine, cannot "
                    "allocate worker port range for new ray worker node."
                )
        except BaseException:
            release()
            raise

        def _is_raylet(proc: Any) -> bool:
            try:
                return bool(proc.name() == "raylet")
            except psutil.Error:
                return False

        me = psutil.Process()
        before = {p.pid for p in me.children(recursive=True) if _is_raylet(p)}

        def sockets_ready() -> bool:
            for proc in me.children(recursive=True):
                if proc.pid in before or not _is_raylet(proc):
                    continue
                try:
                    args = proc.cmdline()
                except psutil.Error:
                    continue
                paths = [
                    a.split("=", 1)[1]
                    for a in args
                    if a.startswith(("--raylet_socket_name=", "--store_socket_name="))
                ]
                if len(paths) == 2 and all(os.path.exists(p) for p in paths):
                    return True
            return False

        def hold_until_node_up() -> None:
            until = time.monotonic() + max_hold_s
            try:
                while time.monotonic() < until and not sockets_ready():
                    time.sleep(poll_s)
            finally:
                release()

        threading.Thread(target=hold_until_node_up, daemon=True).start()
        return begin, end

    return allocate_worker_port_range


def _wait_for_head_then(
    start: Callable[..., Any], timeout_s: float, poll_s: float
) -> Callable[..., Any]:
    """Wrap ``AutoscalingCluster.start`` so it returns once the head's GCS answers.

    It also returns when the head process exits or ``timeout_s`` passes: Ray's own
    check right after (``is_port_in_use``) then fails with the head's output.
    """
    import socket
    import time

    def start_and_wait(self: Any, ray_head_ip: str, ray_head_port: int, *args: Any) -> Any:
        head_proc, tail = start(self, ray_head_ip, ray_head_port, *args)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and head_proc.poll() is None:
            try:
                with socket.create_connection((ray_head_ip, ray_head_port), timeout=1.0):
                    break
            except OSError:
                time.sleep(poll_s)
        # The driver's ray.init (next, in setup_ray_cluster) looks for the head's raylet
        # and retries only every second: wait until it is up, too.
        while time.monotonic() < deadline and head_proc.poll() is None:
            if raylet_sockets_ready(head_proc.pid):
                break
            time.sleep(poll_s)
        return head_proc, tail

    return start_and_wait


def raylet_sockets_ready(pid: int) -> bool:
    """True once a raylet below process ``pid`` has created both of its Unix sockets."""
    import os

    import psutil

    try:
        below = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return False
    for proc in below:
        try:
            if proc.name() != "raylet":
                continue
            args = proc.cmdline()
        except psutil.Error:
            continue
        paths = [
            a.split("=", 1)[1]
            for a in args
            if a.startswith(("--raylet_socket_name=", "--store_socket_name="))
        ]
        if len(paths) == 2 and all(os.path.exists(p) for p in paths):
            return True
    return False


class FastStart:
    """Swap Ray on Spark's fixed waits for readiness checks; `undo` puts Ray's back.

    `begin_setup` before ``setup_ray_cluster``, `end_setup` after it (the head and
    progress waits), `undo` at shutdown (the port-range allocator must stay for the
    cluster's life: the autoscaler starts worker nodes long after setup).
    """

    def __init__(self, head_timeout_s: float) -> None:
        self.head_timeout_s = head_timeout_s
        self._saved: dict[str, Any] = {}

    def _set(self, target: Any, name: str, value: Any) -> None:
        key = f"{id(target)}.{name}"
        if key not in self._saved:
            self._saved[key] = (target, name, getattr(target, name))
        setattr(target, name, value)

    def begin_setup(self) -> None:
        from ray.util.spark import cluster_init

        self._set(cluster_init, "_RAY_HEAD_STARTUP_TIMEOUT", 0)
        self._set(cluster_init, "_RAY_CLUSTER_STARTUP_PROGRESS_CHECKING_INTERVAL", PROGRESS_POLL_S)
        self._set(
            cluster_init.AutoscalingCluster,
            "start",
            _wait_for_head_then(
                cluster_init.AutoscalingCluster.start, self.head_timeout_s, HEAD_POLL_S
            ),
        )
        self._set(
            cluster_init,
            "_preallocate_ray_worker_port_range",
            _make_port_range_allocator(PORT_LOCK_POLL_S, PORT_LOCK_MAX_HOLD_S),
        )

    def end_setup(self) -> None:
        """Put back the head and progress waits (the allocator stays until `undo`)."""
        for key in list(self._saved):
            target, name, value = self._saved[key]
            if name != "_preallocate_ray_worker_port_range":
                setattr(target, name, value)
                del self._saved[key]

    def undo(self) -> None:
        for target, name, value in self._saved.values():
            setattr(target, name, value)
        self._saved = {}
