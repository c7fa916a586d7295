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
    python -m benchmarks.launch_timing [series] [--pairs P]
    python -m benchmarks.launch_timing bare|wrapper|check [--workers N --budget-gb G]

``series`` (the default) runs ``P`` pairs of launches (default 2), each launch in a
process of its own, bare and wrapper alternating (bare first, then wrapper first,
...) so a drift in the machine's load hits both, and writes the min and median of
each figure and the wrapper/bare ratios to ``benchmarks/results/launch_timing.json``
and ``.md``. ``check`` starts nothing: it prints the keyword arguments each mode
would pass, so a cheap test can check that they are the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLEAN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 600.0
LAUNCH_TIMEOUT_S = 900.0
ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIGURES = ("ready_s", "shutdown_s", "clean_s")


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


def launch_in_subprocess(
    mode: str, *args: str, timeout_s: float = LAUNCH_TIMEOUT_S
) -> dict[str, Any]:
    """Run ``benchmarks.launch_timing MODE ARGS`` in a fresh process; its JSON result."""
    # A clean environment: nothing of a Ray cluster the caller may be on.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.launch_timing", mode, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        msg = f"launch_timing {mode} failed (rc={done.returncode}):\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summarise(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Min, median and samples of each figure per mode, and wrapper/bare ratios of both.

    Examples:
        >>> runs = {"bare": [{"ready_s": 40, "shutdown_s": 6, "clean_s": 8}] * 2,
        ...         "wrapper": [{"ready_s": 20, "shutdown_s": 3, "clean_s": 4}] * 2}
        >>> out = summarise(runs)
        >>> out["ratio_ready_s_median"], out["bare_ready_s_min"]
        (0.5, 40)
    """
    figures: dict[str, Any] = {}
    for mode, runs in samples.items():
        for key in FIGURES:
            values = [r[key] for r in runs]
            figures[f"{mode}_{key}_samples"] = [round(v, 2) for v in values]
            figures[f"{mode}_{key}_min"] = round(min(values), 2)
            figures[f"{mode}_{key}_median"] = round(statistics.median(values), 2)
    for key in FIGURES:
        for stat in ("min", "median"):
            bare = figures[f"bare_{key}_{stat}"]
            figures[f"ratio_{key}_{stat}"] = (
                round(figures[f"wrapper_{key}_{stat}"] / bare, 3) if bare else None
            )
    return figures


def markdown(figures: dict[str, Any], pairs: int) -> str:
    """The results as a Markdown table (what the docs page includes)."""
    rows = [
        f"Embedded default, {pairs} pairs of launches alternating in one run "
        f"({figures['layout']['master']}, {figures['machine']}).",
        "",
        "| seconds | bare min | bare median | RayOnSpark min | RayOnSpark median "
        "| ratio (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {"ready_s": "ready", "shutdown_s": "shutdown", "clean_s": "until clean"}
    for key in FIGURES:
        rows.append(
            f"| {names[key]} | {figures[f'bare_{key}_min']:.1f} | "
            f"{figures[f'bare_{key}_median']:.1f} | {figures[f'wrapper_{key}_min']:.1f} | "
            f"{figures[f'wrapper_{key}_median']:.1f} | {figures[f'ratio_{key}_median']:.2f} |"
        )
    return "\n".join(rows) + "\n"


def series(pairs: int) -> dict[str, Any]:
    """``pairs`` alternating pairs of launches; write and return the summary."""
    from launcher import _embedded

    # One layout for the whole series: the plan sizes memory from what is free now.
    layout = _embedded.layout_for_machine(None, 0)
    fixed = ("--workers", str(layout.ray_workers), "--budget-gb", str(layout.budget_per_worker_gb))
    samples: dict[str, list[dict[str, Any]]] = {"bare": [], "wrapper": []}
    for index in range(pairs):
        for mode in [("bare", "wrapper"), ("wrapper", "bare")][index % 2]:
            result = launch_in_subprocess(mode, *fixed)
            print(
                f"{mode:7} ready {result['ready_s']:5.1f} s  shutdown {result['shutdown_s']:4.1f} s"
                f"  clean {result['clean_s']:4.1f} s",
                file=sys.stderr,
                flush=True,
            )
            samples[mode].append(result)
    runs = samples["bare"] + samples["wrapper"]
    if len({json.dumps(r["kwargs"], sort_keys=True) for r in runs}) != 1:
        raise RuntimeError("the launches did not all get the same setup_ray_cluster kwargs")
    figures = summarise(samples)
    figures["pairs"] = pairs
    figures["layout"] = {"master": layout.master, "budget_gb": layout.budget_per_worker_gb}
    figures["machine"] = f"{os.cpu_count()} cores, {platform.machine()}"
    figures["kwargs"] = runs[0]["kwargs"]
    figures["wrapper_launcher_timings"] = [r.get("launcher_timings") for r in samples["wrapper"]]
    figures["bare_setup_ray_cluster_s_samples"] = [
        round(r["setup_ray_cluster_s"], 2) for r in samples["bare"]
    ]
    figures["spark_start_s_samples"] = [round(r["spark_start_s"], 2) for r in samples["bare"]] + [
        round(r["launcher_timings"]["spark_start_s"], 2) for r in samples["wrapper"]
    ]
    figures["workers"] = [r["workers"] for r in runs]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "launch_timing.json").write_text(json.dumps(figures, indent=1) + "\n")
    (RESULTS / "launch_timing.md").write_text(markdown(figures, pairs))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run one launch (or the check) and print the result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mode", nargs="?", default="series", choices=["series", "bare", "wrapper", "check"]
    )
    parser.add_argument("--pairs", type=int, default=2, help="series: pairs of launches")
    parser.add_argument("--workers", type=int, help="Ray worker nodes (default: one per core)")
    parser.add_argument("--budget-gb", type=float, help="memory budget per executor host")
    args = parser.parse_args(argv)
    if args.workers and args.budget_gb:
        # Fixed by the caller, so that every launch of a series gets the same kwargs
        # even when the machine's free memory (which sizes the plan) moves.
        _LAYOUT.update(workers=args.workers, budget_gb=args.budget_gb)
    if args.mode == "series":
        result = series(args.pairs)
    elif args.mode == "check":
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
