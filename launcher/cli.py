"""``actor-patterns``: plan, launch, inspect and demo Ray-on-Spark clusters.

Subcommands:
    plan    print a sizing plan for a Spark cluster given as flags or read live
    launch  start a cluster, print its address, stay up until Ctrl-C
    status  nodes and resources of the cluster started by ``launch``
    demo    a tour of the patterns on the embedded cluster (what ``make demo`` runs)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from launcher._options import AUTH_MODES, MODES
from launcher._planner import ClusterSpec, plan_cluster


def state_file() -> Path:
    """Where ``launch`` records the running cluster for ``status`` (0600, per user)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return base / f"ray-actor-patterns-{os.getuid()}" / "cluster.json"


def _write_state(payload: dict[str, Any]) -> Path:
    path = state_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp, path)
    return path


def _ray_output(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """Where Ray's background output goes: the terminal with --verbose, else a log file."""
    if args.verbose:
        return contextlib.nullcontext()
    from launcher._quiet import ray_output_to

    log = Path(tempfile.gettempdir()) / f"ray-actor-patterns-{os.getuid()}-{os.getpid()}.log"
    print(f"(Ray's own start-up and background output: {log}; --verbose shows it here)")
    return ray_output_to(log)


def _spark_session(master: str) -> Any:
    from pyspark.sql import SparkSession

    return SparkSession.builder.master(master).appName("actor-patterns").getOrCreate()


# ------------------------------------------------------------------- plan


def _cmd_plan(args: argparse.Namespace) -> int:
    if args.from_spark:
        spark = _spark_session(args.from_spark)
        try:
            spec = ClusterSpec.from_spark(spark)
        finally:
            spark.stop()
    else:
        missing = [
            flag
            for flag, value in (
                ("--workers", args.workers),
                ("--cores-per-worker", args.cores_per_worker),
                ("--memory-per-worker-gb", args.memory_per_worker_gb),
            )
            if value is None
        ]
        if missing:
            print(
                f"error: plan needs {', '.join(missing)} (or --from-spark MASTER)",
                file=sys.stderr,
            )
            return 2
        spec = ClusterSpec(
            workers=args.workers,
            cores_per_worker=args.cores_per_worker,
            memory_per_worker_gb=args.memory_per_worker_gb,
            gpus_per_worker=args.gpus_per_worker,
            min_workers=args.min_workers,
            driver_cores=args.driver_cores,
            driver_memory_gb=args.driver_memory_gb,
            executor_memory_gb=args.executor_memory_gb,
        )
    plan = plan_cluster(
        spec,
        mode=args.mode,
        reserve_workers_for_spark=args.reserve_workers_for_spark,
        spark_cores_per_worker=args.spark_cores_per_worker,
        head_cpus=args.head_cpus,
        dashboard=args.dashboard,
        min_worker_nodes=args.min_worker_nodes,
    )
    if args.json:
        print(json.dumps({"setup_kwargs": plan.setup_kwargs, "warnings": plan.warnings}))
    else:
        print(plan.explain())
    return 0


# ----------------------------------------------------------------- launch


def _cmd_launch(args: argparse.Namespace) -> int:
    from launcher._cluster import RayOnSpark

    spark = _spark_session(args.master) if args.master else None
    cluster = RayOnSpark(
        spark=spark,
        mode=args.mode,
        reserve_workers_for_spark=args.reserve_workers_for_spark,
        embedded_workers=args.embedded_workers,
        min_worker_nodes=args.min_worker_nodes,
        autoscale_idle_timeout_minutes=args.autoscale_idle_timeout_minutes,
        auth=args.auth,
    )
    stop = threading.Event()
    # SIGTERM ends the wait like Ctrl-C does; RayOnSpark's own handler also
    # guarantees teardown if it arrives during start-up.
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with _ray_output(args), cluster:
            token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
            path = _write_state(
                {
                    "address": cluster.address,
                    "remote_address": cluster.remote_address,
                    "auth_mode": os.environ.get("RAY_AUTH_MODE"),
                    "token_path": token_path,
                    "pid": os.getpid(),
                }
            )
            print(f"Ray cluster ready at {cluster.address} (Ray Client: {cluster.remote_address})")
            if token_path:
                print(f"auth token file: {token_path} (mode 0600)")
            print(f"state written to {path}; run 'actor-patterns status' in another shell")
            print("press Ctrl-C to shut the cluster down", flush=True)
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
            print("shutting down...", flush=True)
    except KeyboardInterrupt:
        print("interrupted during start-up; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        state_file().unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, previous)
        if spark is not None:
            spark.stop()
    print(f"cluster stopped in {cluster.timings.get('shutdown_s', 0):.1f}s")
    return 0


# ----------------------------------------------------------------- status


def _cmd_status(args: argparse.Namespace) -> int:
    import ray

    state: dict[str, Any] = {}
    if args.address:
        state = {"address": args.address, "token_path": args.token_file}
    else:
        path = state_file()
        if not path.exists():
            print(
                "error: no running cluster recorded; start one with 'actor-patterns launch' "
                "or pass --address",
                file=sys.stderr,
            )
            return 1
        state = json.loads(path.read_text())
    if state.get("token_path"):
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = state["token_path"]
    elif state.get("auth_mode"):
        os.environ["RAY_AUTH_MODE"] = state["auth_mode"]
    # Importing the launcher imported Ray, which read RAY_AUTH_* then: from a shell
    # without them it would connect with authentication off and be refused.
    from launcher import _internals
    from launcher._cluster import format_status

    _internals.refresh_ray_auth_config()

    ray.init(address=state["address"], log_to_driver=False, logging_level=logging.ERROR)
    try:
        print(format_status())
    finally:
        ray.shutdown()
    return 0


# ------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from launcher._demo import run_demo

    with _ray_output(args):
        return run_demo(quick=args.quick)


# ----------------------------------------------------------------- parser


_MIN_WORKER_NODES_HELP = (
    "start with N Ray worker nodes; Ray's autoscaler grows to the plan's maximum under "
    "demand and shrinks back when idle (default: the plan's minimum)"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``actor-patterns`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="actor-patterns",
        description="Plan, launch and inspect Ray-on-Spark clusters; tour the actor patterns.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="print a sizing plan and its explanation")
    plan.add_argument("--from-spark", metavar="MASTER", help="read the spec from a live master")
    plan.add_argument("--workers", type=int)
    plan.add_argument("--cores-per-worker", type=int)
    plan.add_argument("--memory-per-worker-gb", type=float)
    plan.add_argument("--gpus-per-worker", type=int, default=0)
    plan.add_argument("--min-workers", type=int, help="autoscaling minimum")
    plan.add_argument("--driver-cores", type=int, default=4)
    plan.add_argument("--driver-memory-gb", type=float, default=16.0)
    plan.add_argument("--executor-memory-gb", type=float, default=1.0)
    plan.add_argument("--mode", choices=MODES, default="isolated")
    plan.add_argument("--reserve-workers-for-spark", type=int, default=0)
    plan.add_argument("--spark-cores-per-worker", type=int, default=0)
    plan.add_argument("--head-cpus", type=int, default=0)
    plan.add_argument("--dashboard", action="store_true")
    plan.add_argument("--min-worker-nodes", type=int, default=None, help=_MIN_WORKER_NODES_HELP)
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.set_defaults(func=_cmd_plan)

    launch = sub.add_parser("launch", help="start a cluster and keep it up until Ctrl-C")
    launch.add_argument("--master", help="Spark master URL (default: embedded local-cluster)")
    launch.add_argument("--mode", choices=MODES, default=None)
    launch.add_argument("--reserve-workers-for-spark", type=int, default=0)
    launch.add_argument("--embedded-workers", type=int, default=None)
    launch.add_argument("--min-worker-nodes", type=int, default=None, help=_MIN_WORKER_NODES_HELP)
    launch.add_argument(
        "--autoscale-idle-timeout-minutes",
        type=float,
        default=None,
        help="minutes a worker node must idle before the autoscaler removes it (default 1)",
    )
    launch.add_argument("--auth", choices=AUTH_MODES, default="token")
    launch.add_argument("--verbose", action="store_true", help="show Ray's own output")
    launch.set_defaults(func=_cmd_launch)

    status = sub.add_parser("status", help="nodes and resources of the running cluster")
    status.add_argument("--address", help="GCS address (default: the cluster 'launch' started)")
    status.add_argument("--token-file", help="auth token file for --address")
    status.set_defaults(func=_cmd_status)

    demo = sub.add_parser("demo", help="tour the patterns on the embedded cluster")
    demo.add_argument("--quick", action="store_true", help="smaller workloads")
    demo.add_argument("--verbose", action="store_true", help="show Ray's own output")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``actor-patterns`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (TypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
