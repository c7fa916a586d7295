"""Runs on the lab's driver host: Ray on the lab's Spark standalone cluster.

argv: master URL, this host's address, ready timeout (s), optionally "bad-option".
Prints JSON lines, one per stage; after "loss-ready" and again after "loss" it waits
for one line on stdin (the test cuts a host off, checks every host, brings it back).
The "token" line carries the cluster's auth token to the test, over this pipe only,
so that the test can look for it on every host; nothing here writes it anywhere.
With "bad-option", every worker node's `ray start` fails (an option it does not
know): the launch must fail at once with that cause.

The launch is the hybrid plan with one core of each 3-core worker left to Spark: a
2-CPU Ray worker node on every worker host (two cannot share a 3-core executor), and a
free Spark task slot next to it on each, for the Spark bridge's executor transport.
(With 2-core executors and 1-CPU nodes, Spark put two Ray nodes on one host in a lab run.)
"""

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pandas as pd
import ray
from pyspark.sql import SparkSession
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from launcher import ClusterSpec, LaunchError, RayOnSpark, count_alive_workers, plan_cluster
from patterns import (
    AgentReplicas,
    BridgeStats,
    ChildSpec,
    Counter,
    DirectoryStore,
    LinUCBAgent,
    ParameterServer,
    RayKVStore,
    ShardedCounter,
    Supervisor,
    actor_for_key,
    map_batches_with_actors,
    map_groups_with_actors,
)
from patterns._checkpointer import member_key
from patterns._ray_internals import actor_id_hex

TIMEOUT_S = 60  # every single wait of the stages below


def emit(**fields):
    print(json.dumps(fields), flush=True)


@ray.remote(num_cpus=0)
def bump(name, times):
    counter = Counter(name=name, actor_options={"get_if_exists": True})
    for _ in range(times):
        counter.increment()
    return ray.util.get_node_ip_address()


@ray.remote(num_cpus=0)
def bump_sharded(sharded, times):
    for _ in range(times):
        sharded.increment(3)
    return ray.util.get_node_ip_address()


@ray.remote(num_cpus=0)
def push_ones(server, times):
    for _ in range(times):
        server.push({"w": np.ones(4)})
    return ray.util.get_node_ip_address()


def parameter_server_across_hosts(ids):
    """A server on the second worker host, gradient workers on every worker host."""
    server = ParameterServer(
        {"w": np.zeros(4)},
        optimizer="sgd",
        learning_rate=0.5,
        actor_options={"scheduling_strategy": on_node(ids[1])},
    )
    pushers = ray.get(
        [push_ones.options(scheduling_strategy=on_node(i)).remote(server, 10) for i in ids],
        timeout=120,
    )
    return {"w": server.pull()["w"].tolist(), "pusher_ips": sorted(pushers)}


def victim_of(workers):
    """The worker node on the highest address (worker3): the host the test cuts off."""
    return max(workers, key=lambda n: tuple(int(x) for x in n["NodeManagerAddress"].split(".")))


def lose_a_host(workers):
    """A restartable counter (RayKVStore) on the last worker host, which the test cuts off."""
    victim = victim_of(workers)
    store = RayKVStore(namespace="hosts-lab")
    counter = Counter(
        store=store,
        key="loss",
        actor_options={
            "scheduling_strategy": NodeAffinitySchedulingStrategy(victim["NodeID"], soft=True)
        },
    )
    for _ in range(20):
        counter.increment()  # acknowledged: in the store on the head's host
    emit(stage="loss-ready", victim_ip=victim["NodeManagerAddress"])
    sys.stdin.readline()  # the test has cut the host off
    cut = time.monotonic()
    in_flight = counter.increment_async()  # sent after the cut: completes once, or fails
    detect_s = None
    done = []
    waiter = threading.Thread(target=lambda: done.append(ray.get(in_flight, timeout=180)))
    waiter.start()
    while waiter.is_alive() or detect_s is None:
        if detect_s is None and not any(
            n["Alive"] for n in ray.nodes() if n["NodeID"] == victim["NodeID"]
        ):
            detect_s = time.monotonic() - cut
        if time.monotonic() - cut > 200:
            break
        time.sleep(0.2)
        if not waiter.is_alive() and not done:
            break
    serve_s = time.monotonic() - cut if done else None
    emit(
        stage="loss",
        victim_ip=victim["NodeManagerAddress"],
        detect_s=detect_s,
        serve_s=serve_s,
        in_flight_result=done[0] if done else None,
        value=counter.value(timeout=60) if done else None,
        expected=21,
        restarted_on=counter_node_ip(counter),
    )


@ray.remote(num_cpus=1)
def where_am_i():
    return ray.util.get_node_ip_address()


def node_returns(victim_ip, timeout_s=150):
    """Once the lost host is back: Ray on Spark starts a Ray node there again (a new
    Spark task on the host's executor replaces the node Ray declared dead), and a task
    pinned to it runs."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        back = [n for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] == victim_ip]
        if back:
            ran_on = ray.get(
                where_am_i.options(scheduling_strategy=on_node(back[0]["NodeID"])).remote(),
                timeout=60,
            )
            return {
                "node_back_s": time.monotonic() - began,
                "alive_workers": count_alive_workers(),
                "ran_on": ran_on,
            }
        time.sleep(0.5)
    return {"node_back_s": None, "alive_workers": count_alive_workers(), "ran_on": None}


def unshared_directory_store(ids):
    """A DirectoryStore on the driver host's own /tmp, its counter on a worker host."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="lab-store-")
    try:
        counter = Counter(
            store=DirectoryStore(path),
            key="lab-store",
            actor_options={"scheduling_strategy": on_node(ids[0])},
            timeout=60,
        )
        try:
            counter.increment()
            return {"refused": None}
        finally:
            counter.close()
    except Exception as error:
        return {"refused": f"{type(error).__name__}: {error}"[:3000]}
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Tally:
    """A supervised child with state worth restoring (snapshot/restore), and its host."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> int:
        self.count += n
        return self.count

    def value(self) -> int:
        return self.count

    def snapshot(self) -> dict:
        return {"count": self.count}

    def restore(self, state: dict) -> None:
        self.count = state["count"]

    def host(self) -> str:
        return ray.util.get_node_ip_address()


@ray.remote(num_cpus=0)
def sigkill(pid):
    """SIGKILL ``pid`` on the host this task runs on (its own process table)."""
    os.kill(pid, signal.SIGKILL)
    return ray.util.get_node_ip_address()


def wait_until(check, what, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except Exception:  # a call racing with a restart: ask again
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"no {what} within {timeout_s} s")


def supervisor_tree_across_hosts(ids):
    """A child on each worker host, state in a RayKVStore; the one on worker3 is SIGKILLed."""
    store = RayKVStore(namespace="hosts-lab")
    names = [f"tally-{i + 1}" for i in range(len(ids))]
    specs = [
        ChildSpec(name, Tally, actor_options={"num_cpus": 0, "scheduling_strategy": on_node(i)})
        for name, i in zip(names, ids, strict=True)
    ]
    with Supervisor(
        specs, store=store, key="lab-tree", health_check_interval_s=0.5, timeout=TIMEOUT_S
    ) as sup:
        for step in range(1, 4):  # tally-k gets k, 2k, 3k: 6k in all
            for k, name in enumerate(names, start=1):
                sup.call(name, "add", step * k)
        values = {name: sup.call(name, "value") for name in names}
        hosts = {name: sup.call(name, "host") for name in names}
        victim = names[-1]
        # The health check saved its snapshot once it answered with the final count.
        wait_until(
            lambda: (
                getattr(store.load(member_key("lab-tree", victim)), "state", None)
                == {"count": values[victim]}
            ),
            f"{victim}'s checkpoint",
        )
        before = {c["name"]: c for c in sup.which_children()}[victim]
        killed_at = time.monotonic()
        killed_on = ray.get(
            sigkill.options(scheduling_strategy=on_node(ids[-1])).remote(before["pid"]),
            timeout=TIMEOUT_S,
        )
        after = wait_until(
            lambda: next(
                c
                for c in sup.which_children()
                if c["name"] == victim and c["state"] == "running" and c["pid"] != before["pid"]
            ),
            f"{victim} restarted",
        )
        restart_s = time.monotonic() - killed_at
        return {
            "values": values,
            "hosts": hosts,
            "victim": victim,
            "killed_on": killed_on,
            "restarts": after["restarts"],
            "restart_s": restart_s,
            "restored": sup.call(victim, "value"),
            "restarted_on": sup.call(victim, "host"),
            "others_after": {name: sup.call(name, "value") for name in names[:-1]},
        }


def agent_replicas_across_hosts():
    """LinUCB replicas on three worker hosts (a STRICT_SPREAD placement group), one
    feedback batch each, one merge: each must hold the statistics of all the feedback."""
    rng = np.random.default_rng(19)
    # Small integers: every sum of outer products is exact in floating point.
    contexts = rng.integers(0, 4, size=(60, 4)).astype(float)
    actions = (np.arange(60) % 3).tolist()
    rewards = rng.integers(0, 5, size=60).astype(float)
    probe = rng.integers(0, 4, size=(12, 4)).astype(float)
    group = placement_group([{"CPU": 0.5}] * 3, strategy="STRICT_SPREAD")
    try:
        ray.get(group.ready(), timeout=TIMEOUT_S)
        options = {"num_cpus": 0.5, "scheduling_strategy": PlacementGroupSchedulingStrategy(group)}
        with AgentReplicas(
            LinUCBAgent,
            n_replicas=3,
            sync_every=1000,  # merges only when asked
            agent_kwargs={"n_actions": 3, "n_features": 4},
            actor_options=options,
            timeout=TIMEOUT_S,
        ) as replicas:
            for part in range(3):  # replica i gets rows i, i + 3, ...
                rows = slice(part, None, 3)
                replicas.receive_feedbacks(contexts[rows], actions[rows], rewards[rows])
            replicas.sync()
            statistics = replicas.statistics()
            return {
                "feedback": {
                    "contexts": contexts.tolist(),
                    "actions": actions,
                    "rewards": rewards.tolist(),
                },
                "replica_ips": [actor_node_ip(agent.actor) for agent in replicas.agents],
                "A": [s["A"].tolist() for s in statistics],
                "b": [s["b"].tolist() for s in statistics],
                "merged_feedbacks": [s["merged_feedbacks"] for s in replicas.stats()["replicas"]],
                "predictions": [agent.make_predictions(probe) for agent in replicas.agents],
            }
    finally:
        remove_placement_group(group)


class Scale:
    """Per-row work on a batch."""

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"id": batch["id"], "scaled": batch["units"] * 2.5})


class Summarize:
    """Per-group work, plus a tag per actor (to check key affinity) and its host."""

    def __init__(self) -> None:
        self.tag = f"{ray.util.get_node_ip_address()}/{os.getpid()}"
        self.seen: set = set()

    def __call__(self, key: tuple, group: pd.DataFrame) -> pd.DataFrame:
        assert key not in self.seen, f"{key} came twice to this actor"
        self.seen.add(key)
        return pd.DataFrame(
            {
                "store": [key[0]],
                "item": [key[1]],
                "rows": [len(group)],
                "total": [int(group["units"].sum())],
                "actor": [self.tag],
            }
        )


def _driver_ips_since(known):
    """Addresses of the Ray drivers (jobs) that connected since ``known`` was taken."""
    return sorted(
        {j["DriverIPAddress"] for j in ray._private.state.jobs() if j["JobID"] not in known}
    )


def _connected_jobs():
    return {j["JobID"] for j in ray._private.state.jobs() if not j["IsDead"]}


def spark_bridge_across_hosts(spark):
    """Both calls with the executor transport over 3 partitions (one free Spark slot per
    worker host); the Ray drivers the Spark Python workers became say where they ran."""
    from pyspark.sql import functions as F

    frame = spark.range(3000, numPartitions=3).select(
        "id",
        F.concat(F.lit("store-"), (F.col("id") % 4).cast("string")).alias("store"),
        ((F.col("id") / 4).cast("long") % 3).alias("item"),
        (F.col("id") * 7919 % 1000).alias("units"),
    )
    common = {
        "transport": "executor",
        "n_actors": 3,
        "actor_options": {"num_cpus": 0.25},
        "executor_idle_s": 2.0,  # they leave between the two calls: each call connects anew
        "progress": False,
        "timeout": TIMEOUT_S,
    }
    mine = _connected_jobs()
    known = {j["JobID"] for j in ray._private.state.jobs()}
    batch_stats = BridgeStats()
    batches = map_batches_with_actors(
        frame, Scale, output_schema="id long, scaled double", batch_size=400,
        stats=batch_stats, **common,
    ).toPandas()  # fmt: skip
    batch_ips = _driver_ips_since(known)
    wait_until(lambda: _connected_jobs() == mine, "the Spark workers' Ray connections closed")
    known = {j["JobID"] for j in ray._private.state.jobs()}
    group_stats = BridgeStats()
    groups = map_groups_with_actors(
        frame, ["store", "item"], Summarize, output_schema=(
            "store string, item long, rows long, total long, actor string"
        ), num_partitions=3, batch_size=400, stats=group_stats, **common,
    ).toPandas()  # fmt: skip
    group_ips = _driver_ips_since(known)
    affinity = {}
    for row in groups.itertuples():
        affinity.setdefault(str(actor_for_key((row.store, row.item), 3)), set()).add(row.actor)
    return {
        "batches": [[int(r.id), float(r.scaled)] for r in batches.sort_values("id").itertuples()],
        "batch_sender_ips": batch_ips,
        "batch_connections": batch_stats.connections,
        "batch_s": batch_stats.seconds,
        "groups": [
            [r.store, int(r.item), int(r.rows), int(r.total)]
            for r in groups.sort_values(["store", "item"]).itertuples()
        ],
        "group_sender_ips": group_ips,
        "group_connections": group_stats.connections,
        "group_s": group_stats.seconds,
        "actors_by_index": {k: sorted(v) for k, v in affinity.items()},
    }


def actor_node_ip(handle):
    """The address of the node the actor behind ``handle`` runs on now (from the GCS)."""
    from ray._private import state

    info = state.actors(actor_id_hex(handle))
    node_id = info.get("Address", {}).get("NodeID") if info else None
    return next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), None)


def counter_node_ip(counter):
    """The address of the node the counter's actor runs on now (from the GCS)."""
    (handle,) = counter._facade_actors
    return actor_node_ip(handle)


def on_node(node_id):
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def stage(name, run, *args):
    """Emit ``name`` with what ``run`` returned, or with the error it raised."""
    try:
        emit(stage=name, **run(*args))
    except Exception as error:
        emit(stage=name, error=f"{type(error).__name__}: {error}"[:3000])


EVENT_LOG = "/tmp/spark-events"  # this host's own /tmp: the test reads it for the token


def main(master, driver_ip, ready_timeout_s):
    bad_option = len(sys.argv) > 4 and sys.argv[4] == "bad-option"
    os.makedirs(EVENT_LOG, exist_ok=True)
    spark = (
        SparkSession.builder.master(master)
        .appName("hosts-lab")
        .config("spark.driver.host", driver_ip)
        .config("spark.driver.bindAddress", driver_ip)
        .config("spark.ui.enabled", "false")
        # Spark's event log holds what its UI shows (the environment tab, every job's
        # properties): uncompressed, so that the test can read it for the token.
        .config("spark.eventLog.enabled", "true")
        .config("spark.eventLog.dir", f"file://{EVENT_LOG}")
        .config("spark.eventLog.compress", "false")
        # A free slot on each host takes a bridge task at once (no waiting for locality).
        .config("spark.locality.wait", "0s")
        .config("spark.executor.memory", "1g")
        # 3 for the hybrid launch; the bad-option launch takes Ray's default plan, whose
        # nodes get all of an executor's cores: Ray refuses more than this 2-core machine has.
        .config("spark.executor.cores", "2" if bad_option else "3")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    began = time.monotonic()
    if bad_option:
        cluster = RayOnSpark(
            spark=spark,
            ready_timeout_s=ready_timeout_s,
            worker_node_options={"no_such_option": "1"},
        )
        try:
            cluster.start()
            emit(stage="bad-option", error=None)
        except LaunchError as error:
            emit(stage="bad-option", error=str(error), elapsed_s=time.monotonic() - began)
        finally:
            cluster.shutdown()
            spark.stop()
        return
    try:
        # Hybrid, one core of each 3-core worker left to Spark: the bridge's tasks need it.
        plan = plan_cluster(ClusterSpec.from_spark(spark), mode="hybrid", spark_cores_per_worker=1)
        with RayOnSpark(
            plan=plan, spark=spark, progress=True, ready_timeout_s=ready_timeout_s
        ) as cluster:
            workers = [
                n for n in ray.nodes() if n["Alive"] and n["NodeManagerAddress"] != driver_ip
            ]
            emit(
                stage="up",
                start_s=time.monotonic() - began,
                address=cluster.address,
                alive_workers=count_alive_workers(),
                worker_ips=sorted(n["NodeManagerAddress"] for n in workers),
                node_ips=sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]),
                token_in_env=bool(os.environ.get("RAY_AUTH_TOKEN")),
                cpus_per_worker=plan.setup_kwargs["num_cpus_worker_node"],
            )
            token_path = os.environ.get("RAY_AUTH_TOKEN_PATH")
            with open(token_path) as handle:  # the launcher's 0600 file on this host
                emit(stage="token", token=handle.read().strip(), path=token_path)
            ids = [n["NodeID"] for n in workers]
            # A counter on the first worker host, callers on every worker host.
            counter = Counter(name="hits", actor_options={"scheduling_strategy": on_node(ids[0])})
            callers = ray.get(
                [bump.options(scheduling_strategy=on_node(i)).remote("hits", 50) for i in ids],
                timeout=120,
            )
            sharded = ShardedCounter(n_shards=3)
            sharded_callers = ray.get(
                [
                    bump_sharded.options(scheduling_strategy=on_node(i)).remote(sharded, 40)
                    for i in ids
                ],
                timeout=120,
            )
            emit(
                stage="counters",
                counter=counter.value(),
                expected=50 * len(ids),
                caller_ips=sorted(callers),
                sharded=sharded.value(),
                sharded_expected=3 * 40 * len(ids),
                sharded_caller_ips=sorted(sharded_callers),
            )
            try:
                emit(stage="ps", **parameter_server_across_hosts(ids))
            except Exception as error:
                emit(stage="ps", error=f"{type(error).__name__}: {error}"[:3000])
            emit(stage="store", **unshared_directory_store(ids))
            stage("trees", supervisor_tree_across_hosts, ids)
            stage("agents", agent_replicas_across_hosts)
            stage("bridge", spark_bridge_across_hosts, spark)
            try:
                lose_a_host(workers)
            except Exception as error:
                emit(stage="loss", error=f"{type(error).__name__}: {error}"[:3000])
            sys.stdin.readline()  # the host is back
            stage("back", node_returns, victim_of(workers)["NodeManagerAddress"])
    except Exception as error:  # the cause chain, for the test's message
        chain, cause = [], error
        while cause is not None:
            chain.append(f"{type(cause).__name__}: {cause}"[:2000])
            cause = cause.__cause__
        emit(stage="error", elapsed_s=time.monotonic() - began, chain=chain)
        raise
    finally:
        spark.stop()
    emit(stage="down")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
