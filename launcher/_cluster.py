"""``RayOnSpark``: start, wait for, connect to and always tear down a Ray-on-Spark cluster."""

from __future__ import annotations

import inspect
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from typing import Any, TextIO

import psutil

from launcher import _embedded, _hook, _internals, _processes, _tidy
from launcher._env import EnvironmentChanges
from launcher._options import AUTH_MODES, MODES, AuthMode, Mode
from launcher._planner import ClusterPlan, ClusterSpec, plan_cluster
from launcher._spark_info import check_supported_master, executor_hosts
from patterns._checks import check_bool, check_choice, check_int, check_number

# Held strongly: a running cluster must not vanish with its last user reference.
_running: set[RayOnSpark] = set()
_exit_hook_installed = False


def _shutdown_all_at_exit() -> None:
    for cluster in list(_running):
        cluster.shutdown()


def _install_exit_hook() -> None:
    """Tear running clusters down when the interpreter exits.

    A plain ``atexit`` hook is too late: Python first joins non-daemon threads,
    and ray.util.spark leaves one blocked in a Spark ``collect()`` for as long as
    a worker node lives, so the process would hang at exit. ``threading``'s own
    exit hook runs before that join (it is how concurrent.futures shuts down).
    """
    global _exit_hook_installed
    if _exit_hook_installed:
        return
    _internals.register_exit_hook_before_thread_join(_shutdown_all_at_exit)
    _exit_hook_installed = True


# Ray puts its Unix sockets under the launch's temp dir, at most this far below it:
# "/ray-<port>-<cluster id>/session_<date>_<time>_<microseconds>_<pid>/sockets/plasma_store".
_RAY_SOCKET_SUFFIX_MAX = len("/ray-65535-0123abcd/session_2026-01-01_00-00-00_000000_4194304")
_RAY_SOCKET_SUFFIX_MAX += len("/sockets/plasma_store")
_LAUNCH_DIR_LEN = len("/rap-0123abcd")
# Seconds a Ray node waits for its work to drain when told to stop (Ray >= 2.60).
DRAIN_TIMEOUT_VAR = "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"
# How often readiness is polled (the head's GCS, the worker nodes).
READY_POLL_S = 0.2
# Launch attempts when Ray's own start-up (not ours) gives up, as it does on a busy host.
START_ATTEMPTS = 2
_AF_UNIX_PATH_MAX = 107  # bytes, Linux (sun_path is 108 with the terminating NUL)


def temp_base_for_ray(base: str) -> str:
    """Where a launch may put its temp dir so Ray's socket paths stay short enough.

    A Unix socket path is limited to 107 bytes, and Ray fails deep inside ``ray start``
    when a path is longer. A long ``TMPDIR`` (a CI runner's, a nested temp dir) would
    do that, so the launcher falls back to ``/tmp`` and, if even that does not fit,
    refuses before anything starts.

    Examples:
        >>> temp_base_for_ray("/tmp")
        '/tmp'
        >>> temp_base_for_ray("/home/ci/" + "x" * 60)
        '/tmp'
    """
    room = _AF_UNIX_PATH_MAX - _LAUNCH_DIR_LEN - _RAY_SOCKET_SUFFIX_MAX
    for candidate in (base, "/tmp"):
        if len(os.fsencode(candidate)) <= room and os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    msg = (
        f"the temporary directory {base!r} is too long for Ray's Unix sockets (at most "
        f"{room} bytes here) and /tmp is not usable; set TMPDIR to a short, writable path"
    )
    raise ValueError(msg)


class LaunchError(RuntimeError):
    """The cluster could not be started; everything started so far was stopped."""


class _RayStartTimedOut(LaunchError):
    """``setup_ray_cluster`` itself failed (typically a fixed wait expired); retried once."""


class _NodeStartFailed(Exception):
    """A Ray worker node's own start-up failed: a node error, not a slow host."""


def _node_start_failure(error: BaseException) -> _NodeStartFailed | None:
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, _NodeStartFailed):
        cause = cause.__cause__
    return cause


def _setup_ray_cluster_parameters() -> set[str]:
    from ray.util.spark import setup_ray_cluster

    return set(inspect.signature(setup_ray_cluster).parameters) - {"kwargs"}


class _Progress:
    """Prints one line every few seconds while a launch waits, to ``stream``."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        if self.enabled:
            elapsed = time.monotonic() - self.started
            print(f"[ray-on-spark {elapsed:5.1f}s] {message}", file=self.stream, flush=True)


class RayOnSpark:
    """A Ray cluster on Spark: planned, started, waited for, connected and torn down.

    With no SparkSession given and none active, it starts the *embedded
    default*: a real ``local-cluster`` Spark on this machine, one executor per
    core, each hosting one Ray worker node. With a SparkSession (standalone,
    YARN, Databricks) it plans from that session.

    Teardown is guaranteed: on `shutdown`, when a ``with`` block exits
    (also by exception or Ctrl-C), on SIGTERM and at interpreter exit. Only
    processes this launch started are stopped.

    Args:
        plan: A plan from `plan_cluster`; made from the Spark cluster when ``None``.
        spark: The SparkSession to use; the active one, or the embedded default, when ``None``.
        mode: Planner mode when ``plan`` is ``None`` (``"isolated"``, ``"hybrid"``, ``"gpu"``).
        reserve_workers_for_spark: Workers (embedded: executors) left to Spark jobs;
            implies ``mode="hybrid"``.
        embedded_workers: Ray worker nodes of the embedded cluster (default: one per core).
        min_worker_nodes: Start with this many Ray worker nodes and wait only for them;
            Ray's autoscaler on Spark adds nodes up to the plan's maximum while tasks or
            actors wait for resources and removes idle ones down to this number.
            ``None``: the plan's own minimum (its maximum on a fixed-size cluster).
        autoscale_idle_timeout_minutes: How long a worker node must be idle before the
            autoscaler removes it (Ray on Spark's default: 1 minute).
        autoscale_upscaling_speed: How many nodes the autoscaler may add at once, as a
            multiple of the current cluster size (Ray on Spark's default: 1.0).
        fast_start: Wait for readiness instead of Ray on Spark's fixed start-up waits
            (used only on the Ray versions it was checked against; see the docs).
        auth: ``"token"`` (a fresh token per cluster, in a 0600 file) or ``"disabled"``.
        ready_timeout_s: How long to wait for the planned worker nodes once the head is up
            (Ray on Spark's own wait for a first worker, fixed at 120 s, is raised to it).
        progress: Print progress lines to stderr while starting.
        connect: Connect this process to the cluster (``ray.init``) once it is ready.
        **overrides: Extra or replacement keyword arguments for ``setup_ray_cluster``
            (e.g. ``collect_log_to_path``).

    Raises:
        TypeError: An argument has the wrong type or an override is unknown.
        ValueError: An argument is out of range or contradicts ``plan``.

    Examples:
        >>> with RayOnSpark() as cluster:  # doctest: +SKIP
        ...     print(cluster.address)
        127.0.0.1:9234
    """

    def __init__(
        self,
        plan: ClusterPlan | None = None,
        spark: Any = None,
        *,
        mode: Mode | None = None,
        reserve_workers_for_spark: int = 0,
        embedded_workers: int | None = None,
        min_worker_nodes: int | None = None,
        autoscale_idle_timeout_minutes: float | None = None,
        autoscale_upscaling_speed: float | None = None,
        fast_start: bool = True,
        auth: AuthMode = "token",
        ready_timeout_s: float = 300.0,
        progress: bool = True,
        connect: bool = True,
        **overrides: Any,
    ) -> None:
        if plan is not None and not isinstance(plan, ClusterPlan):
            msg = f"'plan' must be a ClusterPlan or None, got {plan!r} ({type(plan).__name__})"
            raise TypeError(msg)
        reserve_workers_for_spark = check_int(
            "reserve_workers_for_spark", reserve_workers_for_spark, minimum=0
        )
        if embedded_workers is not None:
            embedded_workers = check_int("embedded_workers", embedded_workers, minimum=1)
        if min_worker_nodes is not None:
            min_worker_nodes = check_int("min_worker_nodes", min_worker_nodes, minimum=0)
            known_max = _known_max_worker_nodes(plan, spark, embedded_workers)
            if known_max is not None and min_worker_nodes > known_max:
                msg = (
                    f"'min_worker_nodes' ({min_worker_nodes}) must be <= the maximum of "
                    f"{known_max} Ray worker nodes"
                    + (" (the plan's)" if plan is not None else " (the embedded cluster's)")
                )
                raise ValueError(msg)
        autoscale: dict[str, float] = {}
        if autoscale_idle_timeout_minutes is not None:
            autoscale["autoscale_idle_timeout_minutes"] = check_number(
                "autoscale_idle_timeout_minutes", autoscale_idle_timeout_minutes, positive=True
            )
        if autoscale_upscaling_speed is not None:
            autoscale["autoscale_upscaling_speed"] = check_number(
                "autoscale_upscaling_speed", autoscale_upscaling_speed, positive=True
            )
        check_bool("fast_start", fast_start)
        if plan is not None and (mode is not None or reserve_workers_for_spark):
            msg = "'mode' and 'reserve_workers_for_spark' come from 'plan' when a plan is given"
            raise ValueError(msg)
        if mode is not None:
            check_choice("mode", mode, MODES)
        check_choice("auth", auth, AUTH_MODES)
        ready_timeout_s = check_number("ready_timeout_s", ready_timeout_s, positive=True)
        clashing = {"min_worker_nodes", "max_worker_nodes"} & set(overrides)
        if clashing:
            msg = (
                f"pass {', '.join(sorted(clashing))} as 'min_worker_nodes' (the maximum comes "
                "from the plan: plan_cluster, or embedded_workers), not as a setup_ray_cluster "
                "override"
            )
            raise TypeError(msg)
        unknown = set(overrides) - _setup_ray_cluster_parameters()
        if unknown:
            msg = (
                f"unknown setup_ray_cluster argument(s): {', '.join(sorted(unknown))}; "
                "see ray.util.spark.setup_ray_cluster for the accepted names"
            )
            raise TypeError(msg)
        if spark is not None:
            check_supported_master(spark)

        self._plan = plan
        self._spark = spark
        self._mode = mode
        self._reserve = reserve_workers_for_spark
        self._embedded_workers = embedded_workers
        self._auth = auth
        self._ready_timeout_s = float(ready_timeout_s)
        self._connect = connect
        self._min_worker_nodes = min_worker_nodes
        self._fast_start = fast_start
        self._overrides = {**overrides, **autoscale}
        self._fast: _internals.FastStart | None = None
        self._progress = _Progress(progress)

        self._address: str | None = None
        self._remote_address: str | None = None
        self._owns_spark = False
        self._nodes_on_this_host = False  # every Ray node on this machine (one logs folder)
        # The executors' hosts when the cluster became ready: a host lost and back by
        # shutdown (its executor not yet registered again) still gets its temp root removed.
        self._hosts_at_start: list[str] = []
        self._state: _hook.LaunchState | None = None
        self._env = EnvironmentChanges()
        self._preexisting_children: set[_processes.ProcessKey] = set()
        # This process's children that the launch started (the Spark JVM, the Ray head),
        # fixed once the cluster is ready: children the caller starts later (a Dask
        # cluster, multiprocessing's resource tracker) are not the launch's to stop.
        self._launched_children: set[_processes.ProcessKey] | None = None
        self._previous_sigterm: Any = None
        self._shutdown_lock = threading.RLock()
        self.timings: dict[str, float] = {}

    # ----------------------------------------------------------------- public

    @property
    def address(self) -> str:
        """The cluster's GCS address (``host:port``) for ``ray.init(address=...)``."""
        if self._address is None:
            raise RuntimeError("the cluster is not running: call start() first")
        return self._address

    @property
    def remote_address(self) -> str:
        """The Ray Client address (``ray://host:port``) for drivers on other machines."""
        if self._remote_address is None:
            raise RuntimeError("the cluster is not running: call start() first")
        return self._remote_address

    @property
    def spark(self) -> Any:
        """The SparkSession hosting the Ray worker nodes."""
        if self._spark is None:
            raise RuntimeError("no SparkSession yet: call start() first")
        return self._spark

    @property
    def plan(self) -> ClusterPlan:
        """The plan the cluster was (or will be) started with."""
        if self._plan is None:
            raise RuntimeError("the plan is made in start(); call start() first")
        return self._plan

    @property
    def running(self) -> bool:
        """True between a successful `start` and `shutdown`."""
        return self._address is not None

    @property
    def job_groups(self) -> list[str]:
        """Spark job groups hosting Ray worker nodes (one per node started so far)."""
        if self._state is None:
            return []
        with self._state.lock:
            return list(self._state.job_groups)

    def __enter__(self) -> RayOnSpark:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def start(self) -> RayOnSpark:
        """Start the cluster, wait until its worker nodes are alive and connect to it.

        Returns:
            ``self``, running.

        Raises:
            RuntimeError: Ray is already initialised in this process, or a cluster is
                already running.
            LaunchError: The cluster did not come up; everything started was stopped.
        """
        began = time.monotonic()
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once()
                break
            except _RayStartTimedOut as error:
                if attempt == START_ATTEMPTS:
                    raise
                # Everything this attempt started is stopped already (see _start_once).
                self._progress.say(
                    f"Ray's own start-up gave up ({error.__cause__}); a busy host can exceed "
                    f"its fixed waits, so trying again (attempt {attempt + 1} of {START_ATTEMPTS})"
                )
        self.timings["start_s"] = time.monotonic() - began
        if not self._nodes_on_this_host and self._spark is not None:
            self._hosts_at_start = _executor_hosts_or_none(self._spark)
        self._progress.say(f"ready at {self._address} in {self.timings['start_s']:.1f}s")
        return self

    def _start_once(self) -> None:
        """One attempt at start(); on any failure everything it started is stopped."""
        self._check_can_start()
        self._preexisting_children = _processes.children()
        self._launched_children = None
        temp_root = tempfile.mkdtemp(prefix="rap-", dir=temp_base_for_ray(tempfile.gettempdir()))
        self._state = _hook.LaunchState(node_env={}, temp_root=temp_root)
        _hook.activate(self._state)
        _install_exit_hook()
        _running.add(self)
        self._install_sigterm_handler()
        in_ray_setup = False
        try:
            self._prepare_plan_and_spark()
            in_ray_setup = True
            self._start_ray()
            in_ray_setup = False
            self._wait_ready()
            self._launched_children = self._children_started_since_launch()
        except BaseException as error:
            self._progress.say(f"start failed ({type(error).__name__}); cleaning up")
            self.shutdown()
            failed = _node_start_failure(error)
            if failed is not None:  # deterministic (e.g. a bad option): never retried
                msg = f"Ray-on-Spark cluster did not start: a Ray worker node failed: {failed}"
                raise LaunchError(msg) from error
            if in_ray_setup and isinstance(error, RuntimeError | ConnectionError):
                # setup_ray_cluster's fixed waits (20 s for the head's GCS, its node's
                # own start-up deadline) expire on a busy host: worth one more try.
                raise _RayStartTimedOut(f"Ray-on-Spark cluster did not start: {error}") from error
            if isinstance(error, Exception) and not isinstance(error, LaunchError):
                raise LaunchError(f"Ray-on-Spark cluster did not start: {error}") from error
            raise

    def shutdown(self) -> None:
        """Disconnect, stop the Ray cluster and, if embedded, Spark; idempotent."""
        with self._shutdown_lock:
            state = self._state
            if state is None:
                return
            began = time.monotonic()
            owned = self.started_processes()
            try:
                self._stop_ray()
                self.timings["shutdown_ray_s"] = time.monotonic() - began
                if not self._nodes_on_this_host and self._spark is not None:
                    self._tidy_executor_hosts(state.temp_root)
                    self.timings["shutdown_tidy_s"] = time.monotonic() - began
                if self._owns_spark and self._spark is not None:
                    self._stop_spark()
                self.timings["shutdown_spark_s"] = time.monotonic() - began
                leftovers = _processes.wait_gone(owned, timeout_s=30)
                if leftovers:
                    # Graceful paths failed (a hung node); stop what we started, by PID.
                    self._progress.say(
                        f"{len(leftovers)} process(es) still running 30s after a graceful "
                        "stop; stopping them by PID: " + _processes.describe(leftovers)
                    )
                    self.timings["stopped_by_pid"] = len(leftovers)
                    _processes.stop({(p.pid, p.create_time()) for p in leftovers})
            finally:
                if self._fast is not None:
                    self._fast.undo()
                    self._fast = None
                self._restore_environment()
                _hook.activate(None)
                self._state = None
                self._address = None
                self._remote_address = None
                self._hosts_at_start = []
                shutil.rmtree(state.temp_root, ignore_errors=True)
                self._uninstall_sigterm_handler()
                _running.discard(self)
            self.timings["shutdown_s"] = time.monotonic() - began

    # ---------------------------------------------------------------- helpers

    def _check_can_start(self) -> None:
        import ray

        if self._state is not None:
            raise RuntimeError("this RayOnSpark is already running; call shutdown() first")
        if ray.is_initialized():
            msg = (
                "Ray is already initialised in this process (ray.init was called); "
                "call ray.shutdown() before starting a Ray-on-Spark cluster"
            )
            raise RuntimeError(msg)
        if _hook.current() is not None or _internals.active_ray_on_spark_cluster() is not None:
            msg = (
                "a Ray-on-Spark cluster is already running in this process; shut it down "
                "first (one cluster per driver process)"
            )
            raise RuntimeError(msg)

    def _prepare_plan_and_spark(self) -> None:
        assert self._state is not None
        spark = self._spark
        if spark is None:
            from pyspark.sql import SparkSession

            spark = SparkSession.getActiveSession()
        if spark is None:
            layout = _embedded.layout_for_machine(self._embedded_workers, self._reserve)
            if self._plan is None:
                self._plan = _embedded.plan_for_layout(layout)
            self._apply_min_worker_nodes()
            self._nodes_on_this_host = True
            self._state.node_env.update(self._node_env(local_nodes=True))
            self._progress.say(
                f"starting embedded Spark {layout.master} "
                f"({layout.ray_workers} for Ray, {layout.spark_only_executors} for Spark)"
            )
            t0 = time.monotonic()
            self._spark = _embedded.start_spark(layout, self._state.temp_root, self._state.node_env)
            self._owns_spark = True
            self.timings["spark_start_s"] = time.monotonic() - t0
        else:
            check_supported_master(spark)
            self._spark = spark
            if self._plan is None:
                self._progress.say("reading the Spark cluster to plan Ray on it")
                spec = ClusterSpec.from_spark(spark)
                mode: Mode = self._mode or ("hybrid" if self._reserve else "isolated")
                self._plan = plan_cluster(spec, mode=mode, reserve_workers_for_spark=self._reserve)
            self._apply_min_worker_nodes()
            local = spark.sparkContext.master.startswith("local-cluster[") or all(
                h in ("127.0.0.1", "localhost") for h in _executor_hosts_or_none(spark)
            )
            self._nodes_on_this_host = local
            self._state.node_env.update(self._node_env(local_nodes=local))
        for warning in self._plan.warnings:
            self._progress.say(f"plan warning: {warning}")

    def _apply_min_worker_nodes(self) -> None:
        """Fold ``min_worker_nodes`` into the plan; before any Ray (or embedded Spark) starts."""
        if self._min_worker_nodes is not None and self._plan is not None:
            self._plan = self._plan.with_min_worker_nodes(self._min_worker_nodes)

    def _node_env(self, *, local_nodes: bool) -> dict[str, str]:
        """Environment for this driver and every Ray node: auth, PATH, no usage stats."""
        assert self._state is not None
        # No usage stats sent anywhere; no autoscaler chatter on the driver's stdout.
        env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_SCHEDULER_EVENTS": "0"}
        # Ray 2.60 drains a node on SIGTERM, waiting up to 30 s for every worker lease to
        # come back (for Serve upgrades on Kubernetes). An actor holds its lease for life,
        # so a shutdown with any actor alive waited the full 30 s per node, for nothing:
        # the whole cluster is going away. Off unless the user set it.
        env[DRAIN_TIMEOUT_VAR] = os.environ.get(DRAIN_TIMEOUT_VAR, "0")
        if self._auth == "token":
            token = secrets.token_hex(32)
            token_path = os.path.join(self._state.temp_root, "auth_token")
            fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(token)
            env["RAY_AUTH_MODE"] = "token"
            if local_nodes:
                env["RAY_AUTH_TOKEN_PATH"] = token_path
            else:
                # Remote executors cannot read this host's file: the token travels
                # inside the Spark task that starts each node (see the docs).
                env["RAY_AUTH_TOKEN"] = token
            self._set_env("RAY_AUTH_TOKEN_PATH", token_path)
            self._set_env("RAY_AUTH_TOKEN", None)
        else:
            # Explicitly disabled: a stray ~/.ray/auth_token must not switch token
            # auth on for some processes and not others.
            env["RAY_AUTH_MODE"] = "disabled"
            self._set_env("RAY_AUTH_TOKEN_PATH", None)
            self._set_env("RAY_AUTH_TOKEN", None)
        # ray.util.spark's node starter runs `ray` found on PATH, and a Spark worker
        # daemon's PATH (a plain system one on a real host) has no venv on it: put the
        # bin folder of the Python that runs the Spark tasks first, on every host.
        bin_dir = os.path.dirname(self._executor_python())
        env["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        for key, value in env.items():
            self._set_env(key, value)
        self._set_env("RAY_ON_SPARK_START_HOOK", _hook.HOOK_PATH)
        _internals.refresh_ray_auth_config()
        return env

    def _executor_python(self) -> str:
        """The Python the Spark tasks run (pyspark's ``pythonExec``), `ray` sits beside it."""
        python = getattr(getattr(self._spark, "sparkContext", None), "pythonExec", None)
        return python if isinstance(python, str) and os.path.isabs(python) else sys.executable

    def _set_env(self, key: str, value: str | None) -> None:
        self._env.set(key, value)

    def _restore_environment(self) -> None:
        # setup_ray_cluster exports RAY_ADDRESS for the driver; it names a dead cluster now.
        self._env.set("RAY_ADDRESS", None)
        self._env.restore()
        _internals.refresh_ray_auth_config()

    def _start_ray(self) -> None:
        from ray.util.spark import setup_ray_cluster

        assert self._plan is not None and self._state is not None
        kwargs = {**self._plan.setup_kwargs, **self._overrides}
        kwargs.setdefault("ray_temp_root_dir", self._state.temp_root)
        if self._nodes_on_this_host:
            # Every node writes into one logs folder here, and each node's log monitor
            # would read all of it: Ray asks for one monitor per host (`ray start
            # --help`). The head's is that one; the others only cost CPU and could
            # repeat worker output on the driver.
            worker_options = dict(kwargs.get("worker_node_options") or {})
            worker_options.setdefault("include_log_monitor", False)
            kwargs["worker_node_options"] = worker_options
        # Install Ray-on-Spark's SIGTERM handler from the main thread now, so our
        # handler stays the outer one and runs after Ray's.
        _internals.install_ray_on_spark_sigterm_handler()
        _internals.set_worker_start_patience(self._ready_timeout_s)
        # Ray-on-Spark's job server starts every worker node (also replacements, long
        # after this call) through pyspark's inheritable_thread_target without a session,
        # which warns each time, in that server's thread: a process-wide filter is the
        # only one that reaches it, so it is added here, when a cluster starts.
        warnings.filterwarnings(
            "ignore", message="Spark session is not provided", category=UserWarning
        )
        stop_reporting = threading.Event()
        reporter = threading.Thread(
            target=self._report_while_starting, args=(stop_reporting,), daemon=True
        )
        reporter.start()
        # Our progress lines and plan warnings replace Ray-on-Spark's INFO lines and
        # its generic sizing warnings; its errors still show.
        spark_logger = logging.getLogger("ray.util.spark")
        previous_level = spark_logger.level
        if self._progress.enabled:
            spark_logger.setLevel(logging.ERROR)
        if self._fast_start and self._fast is None:
            problems = _internals.fast_start_problems()
            if problems:
                self._progress.say(
                    "using Ray on Spark's own (slower) start-up waits: " + "; ".join(problems)
                )
            else:
                self._fast = _internals.FastStart(head_timeout_s=self._ready_timeout_s)
        t0 = time.monotonic()
        try:
            if self._fast is not None:
                self._fast.begin_setup()
            self._address, self._remote_address = setup_ray_cluster(**kwargs)
        finally:
            if self._fast is not None:
                self._fast.end_setup()
            spark_logger.setLevel(previous_level)
            stop_reporting.set()
            reporter.join(timeout=5)
        self.timings["setup_ray_cluster_s"] = time.monotonic() - t0
        for name, at in sorted(self._state.events.items(), key=lambda item: item[1]):
            self.timings[f"{name}_s"] = round(at - t0, 3)  # seconds into setup_ray_cluster

    def _report_while_starting(self, stop: threading.Event) -> None:
        assert self._state is not None
        state = self._state
        ticks = 0
        while not stop.wait(0.5):
            handle = state.cluster_handle
            # A worker node's start-up failed on its host (Ray-on-Spark keeps the
            # error and would retry until its wait expires): end the wait now with it.
            server = getattr(handle, "spark_job_server", None)
            error = getattr(server, "last_worker_error", None)
            if error and getattr(handle, "background_job_exception", 1) is None:
                handle.background_job_exception = _NodeStartFailed(error)
            ticks += 1
            if ticks % 10:
                continue
            if handle is None:
                self._progress.say("starting the Ray head node on the Spark driver")
            else:
                self._progress.say(
                    f"head up; waiting for {self.plan.ray_workers} Ray worker nodes "
                    f"({len(state.job_groups)} Spark jobs submitted for them)"
                )

    def _wait_ready(self) -> None:
        import ray

        assert self._plan is not None
        t0 = time.monotonic()
        ray.init(address=self._address, log_to_driver=False, logging_level=logging.WARNING)
        wanted = self._plan.min_ray_workers
        deadline = time.monotonic() + self._ready_timeout_s
        last = -1
        while True:
            alive = count_alive_workers()
            if alive != last:
                self._progress.say(f"Ray worker nodes alive: {alive}/{wanted}")
                last = alive
            if alive >= wanted:
                break
            if time.monotonic() > deadline:
                msg = (
                    f"only {alive} of {wanted} Ray worker nodes came up within "
                    f"{self._ready_timeout_s:g}s; the Spark cluster may lack free executors "
                    "(see 'Troubleshooting' in the docs)"
                )
                raise LaunchError(msg)
            time.sleep(READY_POLL_S)
        if not self._connect:
            ray.shutdown()
        self.timings["wait_ready_s"] = time.monotonic() - t0

    def started_processes(self) -> set[_processes.ProcessKey]:
        """The processes this launch started that run now, as ``(pid, create_time)`` keys.

        Ray nodes, Spark JVMs and their Python workers on this host: what `shutdown`
        stops, and what the demo and the tests check are gone afterwards. Processes
        the caller starts once the cluster is ready (a Dask cluster, multiprocessing's
        resource tracker) are not among them, even though they are children of the
        same process.
        """
        roots = self._launched_children
        if roots is None:  # still starting, or the start failed: every child since
            roots = self._children_started_since_launch()
        owned = _processes.subtrees(roots)
        if self._state is not None:
            owned |= _processes.processes_mentioning(self._state.temp_root)
        return owned

    def _children_started_since_launch(self) -> set[_processes.ProcessKey]:
        return _processes.children() - self._preexisting_children

    def _stop_ray(self) -> None:
        import ray
        from ray.util.spark import shutdown_ray_cluster

        assert self._state is not None
        handle = self._state.cluster_handle  # handed over by the start hook
        try:
            ray.shutdown()
        finally:
            if handle is not None:
                if _internals.active_ray_on_spark_cluster() is handle:
                    shutdown_ray_cluster()
                elif not getattr(handle, "is_shutdown", False):
                    # Created but never registered as active (start failed in between).
                    handle.shutdown()
                _internals.close_spark_job_server(handle)
                # Ray terminates the head's starter process but never reaps it.
                try:
                    handle.head_proc.wait(timeout=30)
                except Exception:  # already reaped, or no such attribute in this Ray
                    pass

    def _tidy_executor_hosts(self, temp_root: str) -> None:
        """Remove the temp root Ray's nodes left on other hosts; never fails the shutdown."""
        try:
            hosts = sorted({*self._hosts_at_start, *executor_hosts(self._spark)})
            if hosts:
                left = _tidy.tidy_executor_hosts(self._spark, temp_root, hosts)
                if left:
                    self._progress.say(f"left {temp_root} on these hosts: {left}")
        except Exception as error:  # a clean-up, not the shutdown: say it and go on
            self._progress.say(f"could not remove {temp_root} on the executors' hosts: {error}")

    def _stop_spark(self) -> None:
        try:
            self._spark.stop()
        finally:
            self._spark = None
            self._owns_spark = False
            _internals.stop_spark_gateway()

    def _install_sigterm_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_sigterm = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            self.shutdown()
            previous = self._previous_sigterm
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
            if callable(previous):
                previous(signum, frame)
            else:
                os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)

    def _uninstall_sigterm_handler(self) -> None:
        if self._previous_sigterm is None:
            return
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self._previous_sigterm = None


def _known_max_worker_nodes(
    plan: ClusterPlan | None, spark: Any, embedded_workers: int | None
) -> int | None:
    """The most Ray worker nodes a launch can have, when known before it starts."""
    if plan is not None:
        return plan.ray_workers
    if spark is None:
        from pyspark.sql import SparkSession

        if SparkSession.getActiveSession() is None:  # the embedded default
            return embedded_workers or psutil.cpu_count(logical=True) or 1
    return None  # read from Spark in start(); checked there, before Ray starts


def _executor_hosts_or_none(spark: Any) -> list[str]:
    try:
        return executor_hosts(spark)
    except Exception:  # a cluster manager that hides its executors: treat as remote
        return []


def count_alive_workers() -> int:
    """How many Ray nodes are alive, not counting the head (the node with the head label).

    Returns:
        The number of alive worker nodes of the connected cluster.
    """
    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]
    return sum(1 for n in nodes if not _is_head(n))


def _is_head(node: dict[str, Any]) -> bool:
    resources = node.get("Resources", {})
    return any(key.startswith("node:__internal_head__") for key in resources)


def format_status() -> str:
    """A table of the connected cluster's nodes and its total/available resources."""
    import ray

    rows = ["node      role    alive  CPU   GPU   heap GiB  store GiB  address"]
    for node in sorted(ray.nodes(), key=lambda n: n["NodeManagerAddress"]):
        res = node.get("Resources", {})
        head = _is_head(node)
        rows.append(
            f"{node['NodeID'][:8]}  {'head' if head else 'worker':6}  "
            f"{'yes' if node['Alive'] else 'no':5}  {res.get('CPU', 0):<4g}  "
            f"{res.get('GPU', 0):<4g}  {res.get('memory', 0) / 1024**3:8.2f}  "
            f"{res.get('object_store_memory', 0) / 1024**3:9.2f}  "
            f"{node['NodeManagerAddress']}:{node.get('NodeManagerPort', '')}"
        )
    total, free = ray.cluster_resources(), ray.available_resources()
    rows.append("")
    rows.append(
        f"CPUs {free.get('CPU', 0):g} free of {total.get('CPU', 0):g}; "
        f"GPUs {free.get('GPU', 0):g} free of {total.get('GPU', 0):g}"
    )
    return "\n".join(rows)
