"""Live autoscaling: ``min_worker_nodes`` below the plan's maximum.

Argument checks run without Spark; the grow-and-shrink test runs its own embedded
cluster in a driver process (one Ray-on-Spark cluster per process, and this pytest
process may hold the session's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher import ClusterSpec, RayOnSpark, plan_cluster
from launcher.cli import main as cli_main
from tests._subprocesses import Driver

PLAN_OF_TWO = plan_cluster(ClusterSpec(workers=2, cores_per_worker=1, memory_per_worker_gb=4))


def test_plan_with_min_worker_nodes_autoscales_and_explains_the_cost() -> None:
    plan = plan_cluster(ClusterSpec(4, 8, 32), min_worker_nodes=1)
    assert plan.setup_kwargs["min_worker_nodes"] == 1
    assert plan.setup_kwargs["max_worker_nodes"] == 4
    assert plan.autoscaling
    text = plan.explain()
    assert "Ray: 1-4 worker nodes (autoscaling)" in text
    assert "Spark keeps 3 executor slots (up to 24 cores)" in text


def test_min_equal_to_max_is_a_fixed_size_cluster() -> None:
    plan = plan_cluster(ClusterSpec(4, 8, 32), min_worker_nodes=4)
    assert not plan.autoscaling
    assert "no autoscaling" in plan.explain()


def test_with_min_worker_nodes_replaces_the_fixed_size_reason() -> None:
    plan = PLAN_OF_TWO.with_min_worker_nodes(1)
    assert (plan.min_ray_workers, plan.ray_workers) == (1, 2)
    assert not any(r.startswith("fixed-size Spark") for r in plan.reasons)
    assert PLAN_OF_TWO.min_ray_workers == 2  # the original plan is unchanged


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (lambda: plan_cluster(ClusterSpec(4, 8, 32), min_worker_nodes=5), ValueError, r"\(5\)"),
        (lambda: plan_cluster(ClusterSpec(4, 8, 32), min_worker_nodes=-1), ValueError, "min_"),
        (lambda: plan_cluster(ClusterSpec(4, 8, 32), min_worker_nodes=1.5), TypeError, "min_"),
        (
            lambda: plan_cluster(
                ClusterSpec(4, 8, 32),
                mode="hybrid",
                reserve_workers_for_spark=2,
                min_worker_nodes=3,
            ),
            ValueError,
            "2 reserved for Spark",
        ),
        (lambda: PLAN_OF_TWO.with_min_worker_nodes(3), ValueError, "maximum of 2"),
        (lambda: RayOnSpark(PLAN_OF_TWO, min_worker_nodes=3), ValueError, "maximum of 2"),
        (lambda: RayOnSpark(min_worker_nodes=-1), ValueError, "'min_worker_nodes'"),
        (lambda: RayOnSpark(min_worker_nodes="1"), TypeError, "'min_worker_nodes'"),
        (lambda: RayOnSpark(max_worker_nodes=3), TypeError, "max_worker_nodes"),
        (
            lambda: RayOnSpark(autoscale_idle_timeout_minutes=0),
            ValueError,
            "'autoscale_idle_timeout_minutes'",
        ),
        (lambda: RayOnSpark(autoscale_upscaling_speed=-1.0), ValueError, "upscaling_speed"),
        (lambda: RayOnSpark(fast_start="yes"), TypeError, "'fast_start'"),
    ],
)
def test_bad_autoscaling_arguments_fail_before_anything_starts(
    call: object, error: type, pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        call()  # type: ignore[operator]


def test_min_above_the_embedded_clusters_size_fails_before_anything_starts() -> None:
    # In a fresh interpreter: with a SparkSession active (this pytest process may hold the
    # session's), RayOnSpark uses that session and checks the size in start() instead.
    import subprocess
    import sys
    import textwrap

    code = """
        import psutil
        from launcher import RayOnSpark
        try:
            RayOnSpark(embedded_workers=2, min_worker_nodes=3)
        except ValueError as error:
            assert "maximum of 2" in str(error), error
        else:
            raise SystemExit("no ValueError")
        assert not psutil.Process().children(recursive=True), "a process started"
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_cli_plan_takes_min_worker_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "--workers", "4", "--cores-per-worker", "8", "--memory-per-worker-gb", "32"]
    assert cli_main([*args, "--min-worker-nodes", "2"]) == 0
    assert "Ray: 2-4 worker nodes (autoscaling)" in capsys.readouterr().out
    assert cli_main([*args, "--min-worker-nodes", "5"]) == 2
    assert "'min_worker_nodes' (5) must be <=" in capsys.readouterr().err


@pytest.fixture(scope="module")
def autoscaling_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Driver]:
    driver = Driver("autoscaling", "autoscaling.py", log_dir=Path(tmp_path_factory.mktemp("as")))
    try:
        yield driver
    finally:
        driver.stop()


@pytest.mark.spark
@pytest.mark.slow
def test_cluster_grows_under_demand_and_shrinks_when_idle_keeping_actor_state(
    autoscaling_driver: Driver,
) -> None:
    """Min 1, max 2: ready with 1; a CPU task grows it to 2; idle, it shrinks back to 1.

    The actor holds its node's only CPU, so that node is never idle and is not the one
    removed: the actor keeps its state (its count) through the scale-down.
    """
    ready = autoscaling_driver.next_event(420)
    assert ready["event"] == "ready", ready
    assert (ready["min"], ready["max"]) == (1, 2)
    assert ready["workers"] == 1, "the launch waited for (or started) more than min"
    grown = autoscaling_driver.next_event(420)
    assert grown["event"] == "grown", grown
    assert grown["workers"] == 2
    assert grown["task_node"] != grown["actor_node"], "the task ran beside the actor's CPU"
    shrunk = autoscaling_driver.next_event(420)
    assert shrunk["event"] == "shrunk", shrunk
    assert shrunk["shrink_s"] is not None and shrunk["workers"] == 1
    assert shrunk["actor_node_alive"] and not shrunk["task_node_alive"]
    assert shrunk["total_after"] == grown["total"] == 5
    done = autoscaling_driver.next_event(180)
    assert done["event"] == "done"
    print(
        f"\nautoscaling: ready {ready['ready_s']} s, grow {grown['grow_s']} s, "
        f"shrink {shrunk['shrink_s']} s after the task (idle timeout {shrunk['idle_timeout_s']} s)"
    )
