"""The planner's sizing rules, one table row per rule, and its errors."""

from __future__ import annotations

import re

import pytest

from launcher import ClusterPlan, ClusterSpec, plan_cluster
from launcher._planner import GIB

BIG = {"cores_per_worker": 16, "memory_per_worker_gb": 64.0}


@pytest.mark.parametrize(
    ("spec_kwargs", "plan_kwargs", "expected"),
    [
        pytest.param(
            {"workers": 8, "min_workers": 2, **BIG},
            {},
            {"min_worker_nodes": 2, "max_worker_nodes": 8},
            id="autoscaling-min-max-follow-spark",
        ),
        pytest.param(
            {"workers": 5, **BIG},
            {},
            {"min_worker_nodes": 5, "max_worker_nodes": 5},
            id="fixed-size-both-equal-worker-count",
        ),
        pytest.param(
            {"workers": 5, "min_workers": 5, **BIG},
            {},
            {"min_worker_nodes": 5, "max_worker_nodes": 5},
            id="min-equal-max-is-fixed-size",
        ),
        pytest.param(
            {"workers": 8, **BIG},
            {"mode": "hybrid", "reserve_workers_for_spark": 2},
            {"min_worker_nodes": 6, "max_worker_nodes": 6, "num_cpus_worker_node": 16},
            id="hybrid-cluster-level-reserve-8-minus-2",
        ),
        pytest.param(
            {"workers": 8, "min_workers": 2, **BIG},
            {"mode": "hybrid", "reserve_workers_for_spark": 2},
            {"min_worker_nodes": 2, "max_worker_nodes": 6},
            id="hybrid-reserve-with-autoscaling",
        ),
        pytest.param(
            {"workers": 4, **BIG},
            {"mode": "hybrid", "spark_cores_per_worker": 4},
            {"max_worker_nodes": 4, "num_cpus_worker_node": 12},
            id="hybrid-worker-level-cores-left-to-spark",
        ),
        pytest.param(
            {"workers": 4, "gpus_per_worker": 2, **BIG},
            {"mode": "hybrid"},
            {"num_cpus_head_node": 0, "num_gpus_head_node": 0, "num_gpus_worker_node": 0},
            id="hybrid-head-gets-nothing",
        ),
        pytest.param(
            {"workers": 4, "gpus_per_worker": 4, **BIG},
            {"mode": "gpu"},
            {"num_gpus_worker_node": 4, "num_cpus_worker_node": 16},
            id="gpu-mode-gpus-from-spec",
        ),
        pytest.param(
            {"workers": 4, "gpus_per_worker": 4, **BIG},
            {"mode": "gpu", "gpus_per_ray_worker": 2},
            {"num_gpus_worker_node": 2},
            id="gpu-mode-explicit-gpus",
        ),
        pytest.param(
            {"workers": 3, **BIG},
            {"mode": "isolated"},
            {"num_cpus_worker_node": 16, "num_cpus_head_node": 0, "num_gpus_head_node": 0},
            id="isolated-whole-worker-no-head-resources",
        ),
        pytest.param(
            {"workers": 3, "driver_cores": 8, **BIG},
            {"mode": "isolated", "head_cpus": 4},
            {"num_cpus_head_node": 4},
            id="isolated-head-resources-when-asked",
        ),
        pytest.param(
            {"workers": 2, "cores_per_worker": 1, "memory_per_worker_gb": 4},
            {},
            {"num_cpus_worker_node": 1, "num_gpus_worker_node": 0},
            id="cpus-and-gpus-always-explicit",
        ),
        pytest.param(
            {"workers": 2, **BIG},
            {},
            {"head_node_options": {"include_dashboard": False}},
            id="dashboard-off-by-default",
        ),
        pytest.param(
            {"workers": 2, **BIG},
            {"dashboard": True},
            {"head_node_options": {"include_dashboard": True}},
            id="dashboard-on-when-asked",
        ),
    ],
)
def test_planning_rule(spec_kwargs: dict, plan_kwargs: dict, expected: dict) -> None:
    plan = plan_cluster(ClusterSpec(**spec_kwargs), **plan_kwargs)
    for key, value in expected.items():
        assert plan.setup_kwargs[key] == value, key


def test_every_resource_is_explicit_in_setup_kwargs() -> None:
    plan = plan_cluster(ClusterSpec(workers=2, **BIG))
    for key in (
        "num_cpus_worker_node",
        "num_gpus_worker_node",
        "num_cpus_head_node",
        "num_gpus_head_node",
        "memory_worker_node",
        "object_store_memory_worker_node",
    ):
        assert isinstance(plan.setup_kwargs[key], int), key


@pytest.mark.parametrize(
    ("spec_kwargs", "plan_kwargs"),
    [
        ({"workers": 2, "cores_per_worker": 4, "memory_per_worker_gb": 8}, {}),
        (
            {"workers": 2, "cores_per_worker": 4, "memory_per_worker_gb": 64},
            {"mode": "hybrid", "spark_cores_per_worker": 2},
        ),
        (
            {
                "workers": 2,
                "cores_per_worker": 16,
                "memory_per_worker_gb": 64,
                "executor_memory_gb": 8,
            },
            {"memory_worker_node_gb": 30, "object_store_memory_worker_node_gb": 10},
        ),
    ],
)
def test_memory_fits_within_the_worker(spec_kwargs: dict, plan_kwargs: dict) -> None:
    spec = ClusterSpec(**spec_kwargs)
    kw = plan_cluster(spec, **plan_kwargs).setup_kwargs
    ray_bytes = kw["memory_worker_node"] + kw["object_store_memory_worker_node"]
    assert ray_bytes + spec.executor_memory_gb * GIB <= 0.8 * spec.memory_per_worker_gb * GIB + 1


def test_per_worker_split_gives_ray_its_share_of_memory() -> None:
    spec = ClusterSpec(workers=2, cores_per_worker=16, memory_per_worker_gb=64)
    whole = plan_cluster(spec, mode="hybrid").setup_kwargs
    half = plan_cluster(spec, mode="hybrid", spark_cores_per_worker=8).setup_kwargs
    assert half["memory_worker_node"] == pytest.approx(whole["memory_worker_node"] / 2, rel=1e-6)


def test_explicit_memory_is_passed_through() -> None:
    plan = plan_cluster(
        ClusterSpec(workers=2, **BIG),
        memory_worker_node_gb=20,
        object_store_memory_worker_node_gb=5,
    )
    assert plan.setup_kwargs["memory_worker_node"] == 20 * GIB
    assert plan.setup_kwargs["object_store_memory_worker_node"] == 5 * GIB


@pytest.mark.parametrize(
    ("spec_kwargs", "plan_kwargs", "warning_pattern"),
    [
        ({"workers": 2, "cores_per_worker": 2, "memory_per_worker_gb": 64}, {}, r"2 CPU\(s\)"),
        ({"workers": 2, "cores_per_worker": 8, "memory_per_worker_gb": 8}, {}, r"GiB of heap"),
        (
            {"workers": 2, "gpus_per_worker": 1, **BIG},
            {"mode": "gpu"},
            r"spark\.task\.resource\.gpu\.amount to 0",
        ),
    ],
)
def test_warnings(spec_kwargs: dict, plan_kwargs: dict, warning_pattern: str) -> None:
    plan = plan_cluster(ClusterSpec(**spec_kwargs), **plan_kwargs)
    assert any(re.search(warning_pattern, w) for w in plan.warnings), plan.warnings


def test_a_big_isolated_cluster_has_no_warnings() -> None:
    plan = plan_cluster(ClusterSpec(workers=4, cores_per_worker=16, memory_per_worker_gb=128))
    assert plan.warnings == []


@pytest.mark.parametrize(
    ("spec_kwargs", "field"),
    [
        ({"workers": 0, **BIG}, "workers"),
        ({"workers": 2, "cores_per_worker": -1, "memory_per_worker_gb": 8}, "cores_per_worker"),
        ({"workers": 2, "cores_per_worker": 0, "memory_per_worker_gb": 8}, "cores_per_worker"),
        ({"workers": 2, "cores_per_worker": 4, "memory_per_worker_gb": 0}, "memory_per_worker_gb"),
        ({"workers": 2, "gpus_per_worker": -1, **BIG}, "gpus_per_worker"),
        ({"workers": 2, "min_workers": 3, **BIG}, "min_workers"),
        ({"workers": 2, "min_workers": -1, **BIG}, "min_workers"),
    ],
)
def test_impossible_spec_names_the_field(spec_kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        ClusterSpec(**spec_kwargs)


@pytest.mark.parametrize(
    ("spec_kwargs", "plan_kwargs", "field"),
    [
        (
            {"workers": 8, **BIG},
            {"mode": "hybrid", "reserve_workers_for_spark": 8},
            "reserve_workers_for_spark",
        ),
        (
            {"workers": 8, **BIG},
            {"mode": "hybrid", "reserve_workers_for_spark": 9},
            "reserve_workers_for_spark",
        ),
        ({"workers": 8, **BIG}, {"reserve_workers_for_spark": 2}, "reserve_workers_for_spark"),
        (
            {"workers": 2, **BIG},
            {"mode": "hybrid", "spark_cores_per_worker": 16},
            "spark_cores_per_worker",
        ),
        ({"workers": 2, **BIG}, {"mode": "gpu"}, "gpus_per_worker"),
        ({"workers": 2, **BIG}, {"gpus_per_ray_worker": 1}, "gpus_per_ray_worker"),
        ({"workers": 2, **BIG}, {"mode": "hybrid", "head_cpus": 2}, "head_cpus"),
        ({"workers": 2, "driver_cores": 2, **BIG}, {"head_cpus": 4}, "head_cpus"),
        (
            {"workers": 2, "cores_per_worker": 4, "memory_per_worker_gb": 1},
            {},
            "memory_per_worker_gb",
        ),
        ({"workers": 2, **BIG}, {"memory_worker_node_gb": 60}, "memory_worker_node_gb"),
        (
            {"workers": 2, **BIG},
            {"memory_worker_node_gb": 40, "object_store_memory_worker_node_gb": 20},
            "object_store_memory_worker_node_gb",
        ),
        ({"workers": 2, **BIG}, {"mode": "turbo"}, "mode"),
    ],
)
def test_impossible_plan_names_the_field(spec_kwargs: dict, plan_kwargs: dict, field: str) -> None:
    spec = ClusterSpec(**spec_kwargs)
    with pytest.raises(ValueError, match=f"'{field}'"):
        plan_cluster(spec, **plan_kwargs)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ClusterSpec(workers="4", **BIG), "workers"),
        (lambda: ClusterSpec(workers=True, **BIG), "workers"),
        (lambda: ClusterSpec(workers=2.0, **BIG), "workers"),
        (lambda: plan_cluster({"workers": 2}), "spec"),
        (
            lambda: plan_cluster(ClusterSpec(workers=2, **BIG), reserve_workers_for_spark="1"),
            "reserve_workers_for_spark",
        ),
    ],
)
def test_wrong_types_raise_type_error_naming_the_argument(call, field: str) -> None:
    with pytest.raises(TypeError, match=f"'{field}'"):
        call()


def test_explain_covers_decisions_warnings_and_kwargs() -> None:
    plan = plan_cluster(
        ClusterSpec(workers=8, min_workers=2, cores_per_worker=2, memory_per_worker_gb=16),
        mode="hybrid",
        reserve_workers_for_spark=2,
    )
    text = plan.explain()
    assert "2-8 workers (autoscaling)" in text
    assert "reserved for Spark" in text
    assert "head node: 0 CPUs" in text
    assert "Warnings:" in text
    assert "max_worker_nodes=6," in text
    assert isinstance(plan, ClusterPlan)
    assert plan.ray_workers == 6 and plan.min_ray_workers == 2


def test_plan_kwargs_are_accepted_by_setup_ray_cluster() -> None:
    import inspect

    from ray.util.spark import setup_ray_cluster

    accepted = set(inspect.signature(setup_ray_cluster).parameters)
    plan = plan_cluster(ClusterSpec(workers=2, **BIG))
    assert set(plan.setup_kwargs) <= accepted
