"""The embedded Ray-on-Spark cluster shared by the session: shape, placement, safety, faults."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
import ray

from launcher import RayOnSpark, count_alive_workers
from launcher._spark_info import check_master_url

pytestmark = pytest.mark.spark
T = TypeVar("T")


@pytest.fixture(scope="module")
def launched(ray_cluster: dict) -> RayOnSpark:
    if ray_cluster["launcher"] is None:
        pytest.fail("launcher tests need the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    return ray_cluster["launcher"]


def _alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"]]


def _is_head(node: dict) -> bool:
    return any(k.startswith("node:__internal_head__") for k in node["Resources"])


def test_cluster_has_the_planned_worker_nodes(launched: RayOnSpark) -> None:
    kwargs = launched.plan.setup_kwargs
    workers = [n for n in _alive_nodes() if not _is_head(n)]
    assert len(workers) == launched.plan.ray_workers == count_alive_workers()
    for node in workers:
        assert node["Resources"]["CPU"] == kwargs["num_cpus_worker_node"]
        assert node["Resources"].get("GPU", 0) == kwargs["num_gpus_worker_node"]
    (head,) = [n for n in _alive_nodes() if _is_head(n)]
    assert head["Resources"].get("CPU", 0) == 0  # hybrid: the Spark driver keeps its cores


def test_embedded_cluster_has_one_executor_per_planned_worker(launched: RayOnSpark) -> None:
    master = launched.spark.sparkContext.master
    assert master.startswith("local-cluster[")
    executors = int(master.split("[")[1].split(",")[0])
    assert executors == launched.plan.spec.workers
    assert launched.plan.mode == "hybrid"
    assert launched.plan.ray_workers == executors - 1  # one kept for Spark jobs


def test_tasks_and_actors_run_on_worker_nodes(launched: RayOnSpark) -> None:
    @ray.remote
    def node_of_task() -> str:
        return ray.get_runtime_context().get_node_id()

    @ray.remote
    class Where:
        def node(self) -> str:
            return ray.get_runtime_context().get_node_id()

    worker_ids = {n["NodeID"] for n in _alive_nodes() if not _is_head(n)}
    task_nodes = set(ray.get([node_of_task.remote() for _ in range(8)], timeout=120))
    actor = Where.remote()
    actor_node = ray.get(actor.node.remote(), timeout=120)
    ray.kill(actor)
    assert task_nodes <= worker_ids
    assert actor_node in worker_ids


def test_spark_jobs_run_next_to_ray(launched: RayOnSpark) -> None:
    spark = launched.spark
    assert spark.range(1000).selectExpr("sum(id) AS s").collect()[0]["s"] == 499500


def test_token_auth_with_private_token_file(launched: RayOnSpark) -> None:
    assert os.environ["RAY_AUTH_MODE"] == "token"
    token_path = os.environ["RAY_AUTH_TOKEN_PATH"]
    mode = stat.S_IMODE(os.stat(token_path).st_mode)
    assert mode == 0o600
    with open(token_path) as handle:
        assert len(handle.read().strip()) == 64


def test_embedded_spark_is_bound_to_loopback(launched: RayOnSpark) -> None:
    conf = launched.spark.sparkContext.getConf()
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert conf.get("spark.ui.enabled") == "false"
    assert launched.address.startswith("127.0.0.1:")
    # Every socket the launch's Spark JVMs listen on is on the loopback address.
    # (Ray's own servers listen on all interfaces, with no setting to change it;
    # token auth guards them, see test_token_auth_with_private_token_file.)
    import psutil

    from launcher import _processes

    jvms = {p.pid for p in _processes.alive(launched.started_processes()) if p.name() == "java"}
    listening = {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in jvms
    }
    assert jvms and listening
    assert {ip.removeprefix("::ffff:") for ip in listening} == {"127.0.0.1"}


def test_a_child_started_after_the_launch_is_not_the_launchs_to_stop(
    launched: RayOnSpark,
) -> None:
    # shutdown() stops, and waits for, exactly started_processes(). A process the
    # caller starts once the cluster is up (a Dask cluster, multiprocessing's
    # resource tracker) is not in it: shutdown used to wait 30 s for such a child
    # and then kill it.
    import subprocess
    import sys

    from launcher import _processes

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owned = launched.started_processes()
        own_pids = {pid for pid, _ in owned}
        assert child.pid not in own_pids
        names = {p.name() for p in _processes.alive(owned)}
        assert "java" in names  # the launch's Spark JVMs still count
        assert any("raylet" in name for name in names)  # and its Ray nodes
    finally:
        child.kill()
        child.wait(timeout=30)


def test_dashboard_is_off_by_default(launched: RayOnSpark) -> None:
    from launcher import _processes

    assert launched.plan.setup_kwargs["head_node_options"] == {"include_dashboard": False}
    cmdlines = []
    for proc in _processes.alive(launched.started_processes()):
        try:
            cmdlines.append(" ".join(proc.cmdline()))
        except Exception:
            continue
    assert cmdlines, "found none of the processes this launch started"
    # Ray keeps a headless dashboard process on the head even with the UI off; it
    # must load only its named background modules and listen on loopback.
    for cmdline in (c for c in cmdlines if "dashboard/dashboard.py" in c):
        assert "--modules-to-load=" in cmdline, cmdline
        assert "--host=127.0.0.1" in cmdline, cmdline


def test_ray_nodes_stop_without_draining(launched: RayOnSpark) -> None:
    """Ray 2.60 drains a node on SIGTERM for up to 30 s while any actor lives on it: the
    session cluster's shutdown took 41 s instead of about 5 s before the launcher set
    the drain timeout to 0 for every node it starts (head and worker nodes)."""
    from launcher import _processes

    nodes = []
    for proc in _processes.alive(launched.started_processes()):
        try:
            if "ray.util.spark.start_ray_node" in proc.cmdline():
                nodes.append(proc.environ().get("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"))
        except Exception:
            continue
    assert len(nodes) >= 3, f"expected the head and 2 worker nodes' starters, got {nodes}"
    assert set(nodes) == {"0"}


def test_one_log_monitor_for_all_the_nodes_on_this_host(launched: RayOnSpark) -> None:
    """Every embedded node writes into one logs folder: one monitor reads it, not one per node."""
    from launcher import _processes

    mine = _processes.alive(_processes.processes_mentioning(launched._state.temp_root))
    monitors = []
    for proc in mine:
        try:
            if any("log_monitor.py" in part for part in proc.cmdline()):
                monitors.append(proc.pid)
        except Exception:
            continue
    assert len([n for n in _alive_nodes() if not _is_head(n)]) >= 1
    assert len(monitors) == 1, f"log monitors of this cluster: {monitors}"


def test_second_start_of_a_running_cluster_is_refused(launched: RayOnSpark) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        launched.start()


def test_new_cluster_refused_while_ray_is_initialised(launched: RayOnSpark) -> None:
    from launcher import _processes

    before = _processes.descendants()
    with pytest.raises(RuntimeError, match="already initialised"):
        RayOnSpark(progress=False).start()
    assert _processes.descendants() <= before  # nothing was started


@pytest.mark.parametrize(
    "master",
    ["k8s://https://kube.example:6443", "sc://localhost:15002", "mesos://host:5050"],
)
def test_unsupported_masters_are_refused(master: str) -> None:
    with pytest.raises(ValueError, match=r"not supported|unsupported"):
        check_master_url(master)


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]"])
def test_local_mode_is_refused_at_once(master: str) -> None:
    # Before the fix, the bare "local" passed this check and the launch then waited
    # 60 s for executors that local mode never has.
    with pytest.raises(ValueError, match=r"local mode .* has no executors"):
        check_master_url(master)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"plan": "big"}, TypeError, "'plan'"),
        ({"reserve_workers_for_spark": -1}, ValueError, "'reserve_workers_for_spark'"),
        ({"embedded_workers": 0}, ValueError, "'embedded_workers'"),
        ({"auth": "password"}, ValueError, "'auth'"),
        ({"mode": "turbo"}, ValueError, "'mode'"),
        ({"ready_timeout_s": 0}, ValueError, "'ready_timeout_s'"),
        ({"max_workers": 3}, TypeError, "max_workers"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(kwargs: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        RayOnSpark(**kwargs)


def _alive_worker_ids() -> set[str]:
    return {n["NodeID"] for n in _alive_nodes() if not _is_head(n)}


def _wait_until(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll ``condition()`` until it returns something truthy; return that, or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting until {what}")


@pytest.mark.fault
@pytest.mark.slow
def test_cluster_recovers_when_a_worker_nodes_spark_job_is_cancelled(
    launched: RayOnSpark,
) -> None:
    """Cancel the Spark job hosting one Ray worker node: that node leaves, a new one joins.

    Identities, not counts: Ray-on-Spark starts the replacement as soon as the Spark
    job ends, and under load it can register before the head has marked the old node
    dead, so the number of alive nodes may briefly exceed the plan. What must hold is
    that exactly one of the original nodes leaves, the other stays, and a node with a
    new ID, hosted by a new Spark job, joins.
    """
    planned = launched.plan.ray_workers

    def planned_nodes() -> set[str]:
        ids = _alive_worker_ids()
        return ids if len(ids) == planned else set()

    before = _wait_until(planned_nodes, 120, f"the cluster has its {planned} planned nodes")
    groups_before = launched.job_groups
    launched.spark.sparkContext.cancelJobGroup(groups_before[-1])

    gone = _wait_until(
        lambda: before - _alive_worker_ids(), 120, "a node of the cancelled Spark job leaves"
    )
    assert len(gone) == 1, f"cancelling one Spark job removed {len(gone)} Ray nodes"
    joined = _wait_until(
        lambda: _alive_worker_ids() - before, 300, "a replacement node with a new ID joins"
    )
    after = _alive_worker_ids()
    assert before - gone <= after, "a node of another Spark job left too"
    assert not gone & after, "the cancelled job's node came back under its old ID"
    assert len(joined) >= 1 and len(after) == planned
    assert len(launched.job_groups) > len(groups_before), "no new Spark job hosts the new node"

    @ray.remote
    def node_of_task() -> str:
        return ray.get_runtime_context().get_node_id()

    ran_on = set(ray.get([node_of_task.remote() for _ in range(8)], timeout=120))
    assert ran_on <= after
