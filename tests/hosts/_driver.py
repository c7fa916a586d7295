"""Runs on the lab's driver host: Ray on the lab's Spark standalone cluster.

argv: master URL, this host's address, ready timeout (s), optionally "bad-option".
Prints JSON lines; after the "counters" line it waits for one line on stdin (the test
checks other hosts then). With "bad-option", every worker node's `ray start` fails
(an option it does not know): the launch must fail at once with that cause.
"""

import json
import os
import sys
import threading
import time

import numpy as np
import ray
from pyspark.sql import SparkSession
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from launcher import LaunchError, RayOnSpark, count_alive_workers
from patterns import Counter, DirectoryStore, ParameterServer, RayKVStore, ShardedCounter
from patterns._ray_internals import actor_id_hex


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


def lose_a_host(workers):
    """A restartable counter (RayKVStore) on the last worker host, which the test cuts off."""
    victim = max(workers, key=lambda n: tuple(int(x) for x in n["NodeManagerAddress"].split(".")))
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
        detect_s=detect_s,
        serve_s=serve_s,
        in_flight_result=done[0] if done else None,
        value=counter.value(timeout=60) if done else None,
        expected=21,
        restarted_on=counter_node_ip(counter),
    )


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


def counter_node_ip(counter):
    """The address of the node the counter's actor runs on now (from the GCS)."""
    from ray._private import state

    (handle,) = counter._facade_actors
    info = state.actors(actor_id_hex(handle))
    node_id = info.get("Address", {}).get("NodeID") if info else None
    return next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), None)


def on_node(node_id):
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def main(master, driver_ip, ready_timeout_s):
    spark = (
        SparkSession.builder.master(master)
        .appName("hosts-lab")
        .config("spark.driver.host", driver_ip)
        .config("spark.driver.bindAddress", driver_ip)
        .config("spark.ui.enabled", "false")
        .config("spark.executor.memory", "1g")
        .config("spark.executor.cores", "2")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    began = time.monotonic()
    if len(sys.argv) > 4 and sys.argv[4] == "bad-option":
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
        with RayOnSpark(spark=spark, progress=True, ready_timeout_s=ready_timeout_s) as cluster:
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
            )
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
            try:
                lose_a_host(workers)
            except Exception as error:
                emit(stage="loss", error=f"{type(error).__name__}: {error}"[:3000])
            sys.stdin.readline()  # the host is back
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
