"""The tour ``make demo`` runs: an embedded Ray-on-Spark cluster and the patterns on it."""

from __future__ import annotations

from collections.abc import Callable

from launcher import _processes
from launcher._cluster import RayOnSpark, format_status


def _title(step: int, text: str) -> None:
    print(f"\n== {step}. {text} " + "=" * max(0, 66 - len(text)), flush=True)


def _spark_next_to_ray(cluster: RayOnSpark) -> None:
    df = cluster.spark.range(1_000_000)
    total = df.selectExpr("sum(id) AS s").collect()[0]["s"]
    print(f"Spark summed 0..999,999 = {total:,} on the executor kept for Spark jobs")


def steps(cluster: RayOnSpark, *, quick: bool) -> list[tuple[str, Callable[[], None]]]:
    """The tour's steps in order: (title, function printing what the step shows)."""
    # The pattern steps live with the patterns (patterns._tour), imported only now: the
    # launcher itself depends on no pattern family.
    from patterns import _tour

    pattern_steps = _tour.steps(cluster.spark, quick=quick)
    return [
        ("The plan: how Ray was sized for this machine", lambda: print(cluster.plan.explain())),
        ("The cluster", lambda: print(format_status())),
        *pattern_steps[:3],
        ("Spark next to Ray", lambda: _spark_next_to_ray(cluster)),
        *pattern_steps[3:],
    ]


def tour(cluster: RayOnSpark, *, quick: bool = False) -> int:
    """Walk through the patterns on a running cluster; return the number of steps shown."""
    tour_steps = steps(cluster, quick=quick)
    for number, (title, step) in enumerate(tour_steps, start=1):
        _title(number, title)
        step()
    return len(tour_steps)


def run_demo(*, quick: bool = False) -> int:
    """Start the embedded cluster, tour the patterns, shut down; return an exit code."""
    _title(0, "Starting an embedded Ray-on-Spark cluster (about a minute)")
    with RayOnSpark(reserve_workers_for_spark=1) as cluster:
        shown = tour(cluster, quick=quick)
        started = cluster.started_processes()
        _title(shown + 1, "Clean shutdown")
    left = _processes.wait_gone(started, timeout_s=30)
    print(
        f"stopped in {cluster.timings['shutdown_s']:.1f}s; processes this demo started "
        f"still alive: {len(left)} of {len(started)}"
    )
    return 0 if not left else 1
