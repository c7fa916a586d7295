"""Time one Ray-on-Spark launch in a fresh process: bare ``setup_ray_cluster`` or ``RayOnSpark``.

Ray allows one cluster per driver process, so ``benchmarks/test_launch_timing.py``
runs this script once per launch and reads the JSON line it prints.

Both modes start the same embedded ``local-cluster`` Spark (built by
``launcher._embedded.start_spark``: loopback, this interpreter for the executors)
with the same environment (token auth with a fresh token file, ``PATH`` holding
this interpreter's ``ray``, no usage stats), and pass ``setup_ray_cluster`` the same
keyword arguments: the embedded plan's ``setup_kwargs`` plus ``ray_temp_root_dir``.

- ``bare``: what a user writes by hand: start Spark, ``setup_ray_cluster(**kwargs)``
  (which waits for ``min_worker_nodes``), ``ray.init(address)``; then
  ``ray.shutdown()``, ``shutdown_ray_cluster()``, ``spark.stop()``.
- ``wrapper``: ``RayOnSpark(plan=plan)``: ``start()`` then ``shutdown()``.

Reported, in seconds: ``ready_s`` (from before Spark starts until this process is
connected and the planned worker nodes are alive), ``shutdown_s`` (the shutdown
calls), ``clean_s`` (from the start of shutdown until every process the launch
started has exited, PySpark's own gateway JVM aside, which a bare ``spark.stop()``
keeps for reuse).

Usage:
    python -m benchmarks.launch_timing bare|wrapper|check [--workers N --budget-gb G]

``check`` starts nothing: it prints the keyword arguments each mode would pass,
so a cheap test can check that they are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from typing import Any

CLEAN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 600.0


def _launch_env(temp_root: str) -> dict[str, str]:
    """The environment RayOnSpark gives the driver and every node of an embedded launch."""
    token_path = os.path.join(temp_root, "auth_token")
    fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    bin_dir = os.path.dirname(sys.executable)
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": token_path,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }


_LAYOUT: dict[str, Any] = {}


def _plan() -> tuple[Any, Any]:
    """The embedded layout (fixed by ``--workers``/``--budget-gb`` if given) and its plan."""
    from launcher import _embedded

    if _LAYOUT:
        layout = _embedded.EmbeddedLayout(_LAYOUT["workers"], 0, _LAYOUT["budget_gb"])
    else:
        layout = _embedded.layout_for_machine(None, 0)
    return layout, _embedded.plan_for_layout(layout)


def _gateway_pid() -> int | None:
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None) if gateway is not None else None
    return proc.pid if proc is not None else None


def _wait_clean(owned: set[tuple[int, float]], began: float) -> float:
    from launcher import _processes

    gateway = _gateway_pid()
    owned = {key for key in owned if key[0] != gateway}
    left = _processes.wait_gone(owned, timeout_s=CLEAN_TIMEOUT_S)
    return time.perf_counter() - began if not left else float("nan")


def run_bare(temp_root: str) -> dict[str, Any]:
    """Launch and stop with ``ray.util.spark`` alone; return the timings."""
    env = _launch_env(temp_root)
    os.environ.update(env)  # before Ray reads its auth settings
    import ray
    from ray.util.spark import setup_ray_cluster, shutdown_ray_cluster

    from launcher import _embedded, _processes, count_alive_workers

    layout, plan = _plan()
    kwargs = {**plan.setup_kwargs, "ray_temp_root_dir": temp_root}
    timings: dict[str, Any] = {"mode": "bare"}
    spark = None
    began = time.perf_counter()
    try:
        spark = _embedded.start_spark(layout, temp_root, env)
        timings["spark_start_s"] = time.perf_counter() - began
        t0 = time.perf_counter()
        address, _ = setup_ray_cluster(**kwargs)
        timings["setup_ray_cluster_s"] = time.perf_counter() - t0
        ray.init(address=address, log_to_driver=False)
        timings["ready_s"] = time.perf_counter() - began
        timings["workers"] = count_alive_workers()
        owned = _processes.descendants()
        t1 = time.perf_counter()
        ray.shutdown()
        shutdown_ray_cluster()
        spark.stop()
        spark = None
        timings["shutdown_s"] = time.perf_counter() - t1
        timings["clean_s"] = _wait_clean(owned, t1)
    finally:
        if spark is not None:  # failed part-way: stop what was started
            for stop in (ray.shutdown, shutdown_ray_cluster, spark.stop):
                try:
                    stop()
                except Exception:
                    pass
        _processes.stop(
            {k for k in _processes.descendants() if k[0] != _gateway_pid()}, grace_s=5.0
        )
    timings["kwargs"] = _printable(kwargs, temp_root)
    timings["min_workers"] = plan.min_ray_workers
    return timings


def run_wrapper() -> dict[str, Any]:
    """Launch and stop with ``RayOnSpark``; return the timings."""
    from launcher import RayOnSpark, _processes, count_alive_workers

    _, plan = _plan()
    timings: dict[str, Any] = {"mode": "wrapper"}
    cluster = RayOnSpark(plan=plan, progress=False, ready_timeout_s=READY_TIMEOUT_S)
    began = time.perf_counter()
    try:
        cluster.start()
        timings["ready_s"] = time.perf_counter() - began
        timings["workers"] = count_alive_workers()
        owned = _processes.descendants()
        t1 = time.perf_counter()
        cluster.shutdown()
        timings["shutdown_s"] = time.perf_counter() - t1
        timings["clean_s"] = _wait_clean(owned, t1)
    finally:
        cluster.shutdown()  # idempotent
    timings["launcher_timings"] = dict(cluster.timings)
    # RayOnSpark passes the plan's kwargs and sets ray_temp_root_dir to its own temp dir.
    timings["kwargs"] = _printable({**cluster.plan.setup_kwargs, "ray_temp_root_dir": "<tmp>"}, "")
    timings["min_workers"] = plan.min_ray_workers
    return timings


def _printable(kwargs: dict[str, Any], temp_root: str) -> dict[str, Any]:
    """The kwargs with the per-launch temp dir replaced, so two launches compare equal."""
    out = dict(kwargs)
    if temp_root and out.get("ray_temp_root_dir") == temp_root:
        out["ray_temp_root_dir"] = "<tmp>"
    return out


def check() -> dict[str, Any]:
    """The kwargs each mode would pass to ``setup_ray_cluster``, starting nothing."""
    from launcher import RayOnSpark

    _, plan = _plan()
    cluster = RayOnSpark(plan=plan, progress=False)
    return {
        "mode": "check",
        "bare": {**plan.setup_kwargs, "ray_temp_root_dir": "<tmp>"},
        "wrapper": {**cluster.plan.setup_kwargs, "ray_temp_root_dir": "<tmp>"},
    }


def main(argv: list[str] | None = None) -> int:
    """Run one launch (or the check) and print the result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["bare", "wrapper", "check"])
    parser.add_argument("--workers", type=int, help="Ray worker nodes (default: one per core)")
    parser.add_argument("--budget-gb", type=float, help="memory budget per executor host")
    args = parser.parse_args(argv)
    if args.workers and args.budget_gb:
        # Fixed by the caller, so that every launch of a series gets the same kwargs
        # even when the machine's free memory (which sizes the plan) moves.
        _LAYOUT.update(workers=args.workers, budget_gb=args.budget_gb)
    if args.mode == "check":
        result = check()
    elif args.mode == "wrapper":
        result = run_wrapper()
    else:
        # Short, as RayOnSpark's: Ray refuses socket paths over 107 bytes.
        temp_root = tempfile.mkdtemp(prefix="rap-")
        try:
            result = run_bare(temp_root)
        finally:
            shutil.rmtree(temp_root, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
