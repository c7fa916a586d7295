"""Counters: state logic without Ray, argument checks, and behaviour on the shared cluster.

Fault tests (killing actor processes) are in test_counters_faults.py.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patterns import Counter, DirectoryStore, ShardedCounter
from patterns._ray_internals import actor_id_hex, actor_states
from patterns._requests import RequestLog
from patterns.counters import _actor
from patterns.counters._state import CounterState
from patterns.errors import FacadeClosedError, PatternError

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


# --- plain state: no Ray -----------------------------------------------------------------


def test_state_increments_and_resets() -> None:
    state = CounterState(start=3)
    assert state.increment() == 4
    assert state.increment(6) == 10
    state.reset()
    assert state.value == 0
    assert state.changes == 3


def test_state_applies_each_request_once() -> None:
    state = CounterState()
    assert state.increment(1, (7, 1)) == 1
    assert state.increment(1, (7, 1)) == 1  # a retry of the same request
    assert state.increment(1, (8, 1)) == 2  # another client's first request
    assert state.increment(5, (7, 3)) == 7  # out of order: 3 before 2
    assert state.increment(5, (7, 2)) == 12
    assert state.increment(5, (7, 3)) == 12
    state.reset((7, 4))
    state.reset((7, 4))
    assert state.increment(2, (7, 4)) == 0  # seq 4 was the reset: not applied again
    assert state.changes == 5


def test_state_snapshot_round_trip() -> None:
    state = CounterState()
    for seq in (1, 2, 4):
        state.increment(1, (42, seq))
    copy = CounterState.from_snapshot(pickle.loads(pickle.dumps(state.snapshot())))
    assert copy.value == 3
    assert copy.increment(1, (42, 4)) == 3  # the memory of applied requests came along
    assert copy.increment(1, (42, 3)) == 4
    with pytest.raises(ValueError, match="unknown counter snapshot format"):
        CounterState.from_snapshot({"format": 99})


def test_request_log_floor_and_window() -> None:
    log = RequestLog()
    assert [log.first_time(1, s) for s in (2, 3, 1, 1, 3, 4)] == [
        True,
        True,
        True,
        False,
        False,
        True,
    ]
    assert log.snapshot() == {1: (4, ())}  # gaps filled: only the floor is kept


def test_request_log_bounds() -> None:
    log = RequestLog(max_clients=2)
    log.first_time(1, 1)
    log.first_time(2, 1)
    log.first_time(1, 2)  # client 1 is now the most recently seen
    log.first_time(3, 1)  # evicts client 2
    assert set(log.snapshot()) == {1, 3}
    narrow = RequestLog(max_window=3)
    for seq in (2, 3, 4, 5):  # seq 1 never arrives
        assert narrow.first_time(9, seq)
    assert narrow.snapshot() == {9: (5, ())}  # gave up on seq 1 ...
    assert not narrow.first_time(9, 1)  # ... so its late arrival counts as done


# --- argument checks: they fail before anything reaches Ray -------------------------------


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an actor would be created; Ray's local option checks still run."""
    real = _actor.RemoteCounterActor

    class Guard:
        def options(self, **options: object) -> Guard:
            real.options(**options)  # validates locally, sends nothing
            return self

        def remote(self, *args: object) -> None:
            raise AssertionError("a bad argument reached Ray")

    monkeypatch.setattr(_actor, "RemoteCounterActor", Guard())


BAD_CONSTRUCTOR_ARGS = [
    ({"start": "3"}, TypeError, r"'start' must be an int, got '3' \(str\)"),
    ({"start": True}, TypeError, r"'start' must be an int, got True \(bool\)"),
    ({"start": -1}, ValueError, r"'start' must be an int >= 0, got -1"),
    ({"store": "/tmp/x"}, TypeError, r"'store' must be a CheckpointStore, got the path"),
    ({"store": object()}, TypeError, r"'store' must be a CheckpointStore"),
    ({"checkpoint_every": 0}, ValueError, r"'checkpoint_every' must be an int >= 1, got 0"),
    ({"checkpoint_every": 5}, ValueError, r"'checkpoint_every' only applies .* 'store'"),
    ({"key": "hits"}, ValueError, r"'key' only applies to a counter with a 'store'"),
    ({"key": 7}, TypeError, r"'key' must be a str, got 7 \(int\)"),
    ({"timeout": 0}, ValueError, r"'timeout' must be a finite number > 0, got 0\.0"),
    ({"timeout": "5"}, TypeError, r"'timeout' must be a number of seconds"),
    ({"name": ""}, ValueError, r"'name' must be a non-empty str"),
    ({"name": 3}, TypeError, r"'name' must be a str, got 3 \(int\)"),
    ({"namespace": "shop"}, ValueError, r"'namespace' only applies to a named .*: pass name="),
    ({"actor_options": [("name", "x")]}, TypeError, r"'actor_options' must be a dict or None"),
    ({"actor_options": {"name": "x"}}, ValueError, r"may not set 'name': pass name='x' to"),
    ({"actor_options": {"namespace": "n"}}, ValueError, r"may not set 'namespace': pass"),
    ({"actor_options": {"get_if_exists": True}}, ValueError, "get_if_exists=True without a"),
    ({"actor_options": {"lifetime": "detached"}}, ValueError, "lifetime='detached' without"),
    ({"actor_options": {"nmae": "typo"}}, ValueError, r"refused by Ray: Invalid option keyword"),
    ({"actor_options": {"max_restarts": "2"}}, TypeError, r"refused by Ray.*max_restarts"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_CONSTRUCTOR_ARGS)
def test_counter_bad_arguments(
    no_ray: None, kwargs: dict, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Counter(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        *BAD_CONSTRUCTOR_ARGS,
        ({"n_shards": 0}, ValueError, r"'n_shards' must be an int >= 1, got 0"),
        ({"n_shards": "2"}, TypeError, r"'n_shards' must be an int, got '2' \(str\)"),
        ({"batch_size": 0}, ValueError, r"'batch_size' must be an int >= 1, got 0"),
        ({"flush_interval_s": 0}, ValueError, r"'flush_interval_s' must be a finite number > 0"),
        ({"flush_interval_s": "1"}, TypeError, r"'flush_interval_s' must be a number of seconds"),
        ({"key": ""}, ValueError, "'key' must be a non-empty str"),
    ],
)
def test_sharded_counter_bad_arguments(
    no_ray: None, tmp_path: Path, kwargs: dict, error: type[Exception], match: str
) -> None:
    if kwargs.get("key") == "":
        kwargs = {**kwargs, "store": DirectoryStore(tmp_path)}
    with pytest.raises(error, match=match):
        ShardedCounter(**kwargs)


def test_a_count_is_never_positional(no_ray: None) -> None:
    # Counter(5) used to set the start and ShardedCounter(5) the number of shards.
    with pytest.raises(TypeError, match="positional"):
        Counter(5)  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        ShardedCounter(5)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'shards'"):
        ShardedCounter(shards=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'flush_interval'"):
        ShardedCounter(flush_interval=1.0)  # type: ignore[call-arg]


def test_unknown_store_path_is_refused_at_the_call(no_ray: None) -> None:
    with pytest.raises(ValueError, match=r"'path' must be an existing directory"):
        Counter(store=DirectoryStore("/no/such/checkpoint/dir"))


# --- on the cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counter(ray_cluster: dict) -> Iterator[Counter]:
    with Counter() as c:
        yield c


@pytest.mark.parametrize(
    ("n", "error", "match"),
    [
        ("3", TypeError, r"'n' must be an int, got '3' \(str\)"),
        (True, TypeError, r"'n' must be an int, got True \(bool\)"),
        (2.0, TypeError, r"'n' must be an int, got 2.0 \(float\)"),
        (None, TypeError, r"'n' must be an int, got None \(NoneType\)"),
        (-1, ValueError, r"'n' must be an int >= 0, got -1"),
    ],
)
def test_increment_bad_n(counter: Counter, n: object, error: type[Exception], match: str) -> None:
    before = counter.value(timeout=TIMEOUT)
    with pytest.raises(error, match=match):
        counter.increment(n)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        counter.increment_async(n)  # type: ignore[arg-type]
    assert counter.value(timeout=TIMEOUT) == before


def test_a_bad_timeout_is_refused_before_the_increment_is_sent(counter: Counter) -> None:
    before = counter.value()
    with pytest.raises(ValueError, match=r"'timeout' must be a finite number > 0"):
        counter.increment(timeout=-1)
    assert counter.value() == before


def test_counter_basics(counter: Counter) -> None:
    import numpy as np
    import ray

    counter.reset(timeout=TIMEOUT)
    assert counter.increment(timeout=TIMEOUT) == 1
    assert counter.increment(np.int64(4)) == 5  # numpy ints are ints
    assert counter.increment(0) == 5
    assert ray.get([counter.increment_async(2) for _ in range(3)], timeout=TIMEOUT) == [7, 9, 11]
    assert ray.get(counter.value_async(), timeout=TIMEOUT) == 11
    ray.get(counter.reset_async(), timeout=TIMEOUT)
    assert counter.value() == 0
    assert counter.checkpoint() is None and counter.key is None
    assert ray.get(counter.checkpoint_async(), timeout=TIMEOUT) is None
    (pid,) = counter.pids()
    assert pid > 0
    stats = counter.stats()
    assert stats["kind"] == "Counter" and stats["value"] == 0 and stats["owned"]
    assert stats["timeout_s"] == 60.0 and stats["key"] is None
    assert repr(counter) == f"Counter(actor_id={actor_id_hex(counter.actor)!r}, key=None)"
    with pytest.raises(ValueError, match=r"'timeout' must be a finite number > 0"):
        counter.value(timeout=-1)


def test_copies_are_distinct_writers_that_do_not_own_the_actor(counter: Counter) -> None:
    import ray

    copy = pickle.loads(pickle.dumps(counter))
    assert copy.actor == counter.actor
    assert copy._client != counter._client  # so their request ids never collide
    assert counter.owned and not copy.owned
    before = counter.value()
    copy.increment()
    counter.increment()
    assert counter.value() == before + 2
    copy.close()  # releases: the actor keeps running
    assert counter.increment() == before + 3
    with pytest.raises(FacadeClosedError, match=r"Counter \(actor [0-9a-f]{8}\): increment called"):
        copy.increment()

    @ray.remote(num_cpus=0.5)
    def ids(c: Counter) -> tuple[int, bool]:
        return c._client, c.owned

    found = ray.get([ids.remote(counter) for _ in range(3)], timeout=TIMEOUT)
    assert len({client for client, _ in found}) == 3
    assert not any(owned for _, owned in found)


def _states(*handles: object) -> set[str]:
    return set(actor_states({actor_id_hex(h) for h in handles}).values())


def test_close_stops_the_actors_and_waits_until_ray_reports_them_dead(ray_cluster: dict) -> None:
    # ShardedCounter's close() used to flush and leave its actors running.
    with ShardedCounter(n_shards=2, batch_size=10) as sharded:
        sharded.increment(3)
        shards = sharded.actors
    assert sharded.closed and _states(*shards) == {"DEAD"}
    with pytest.raises(FacadeClosedError, match=r"ShardedCounter .*: value called after close"):
        sharded.value()
    sharded.close()  # idempotent

    counter = Counter()
    counter.increment()
    counter.close()
    assert _states(counter.actor) == {"DEAD"}


def test_counter_with_store_resumes_under_its_key(ray_cluster: dict, tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    with Counter(start=5, store=store, key="orders") as first:
        assert first.increment(2) == 7
        assert first.key == "orders"
        assert store.load("orders").state["value"] == 7  # written before increment returned
        assert first.stats()["checkpoint_version"] == 1
    with Counter(store=store, key="orders") as again:  # a new actor, same key: resumes
        assert again.value() == 7
    with Counter(store=store) as anonymous:
        assert anonymous.key.startswith("counter-")
    with Counter(store=store, name=f"orders-{time.monotonic_ns()}", namespace="shop") as named:
        assert named.key == f"shop/{named.name}"


def test_a_sharded_checkpoint_of_the_old_layout_restores(ray_cluster: dict, tmp_path: Path) -> None:
    # Releases before the shared layout saved shard i under "{key}/shard-{i}".
    store = DirectoryStore(tmp_path)
    for index, value in enumerate([5, 7]):
        state = CounterState(value)
        state.increment(0, (99, 1))  # a request applied before the upgrade
        store.save(f"hits/shard-{index}", state.snapshot(), 4)
    with ShardedCounter(n_shards=2, store=store, key="hits") as counter:
        assert counter.shard_values() == [5, 7]
        counter.increment(1)
        assert counter.value() == 13
        assert counter.stats()["checkpoint_versions"] in ([5, 4], [4, 5])
    moved = [store.load(f"hits/shard-{i}-of-2") for i in range(2)]
    assert sum(checkpoint.state["value"] for checkpoint in moved) == 13  # under the new keys
    assert all(99 in checkpoint.state["requests"] for checkpoint in moved)  # memory came along
    assert store.load("hits/shard-0").version == 4  # the old keys are left as they were


def test_twenty_tasks_a_hundred_increments_each_counter(ray_cluster: dict) -> None:
    import ray

    @ray.remote(num_cpus=0.5)
    def hammer(c: Counter, times: int) -> None:
        for _ in range(times):
            c.increment()

    with Counter() as shared:
        ray.get([hammer.remote(shared, 100) for _ in range(20)], timeout=TIMEOUT)
        assert shared.value() == 2_000


@pytest.mark.parametrize("batch_size", [None, 64], ids=["per-call", "batched"])
def test_twenty_tasks_a_hundred_increments_each_sharded(
    ray_cluster: dict, batch_size: int | None
) -> None:
    import ray

    @ray.remote(num_cpus=0.5)
    def hammer(c: ShardedCounter, times: int) -> None:
        if not c.batching:  # per call, 20 in flight at a time
            for _ in range(times // 20):
                ray.get([c.increment_async() for _ in range(20)], timeout=TIMEOUT)
            return
        with c:  # a batched copy flushes when the block ends (and leaves the shards running)
            for _ in range(times):
                c.increment()

    with ShardedCounter(n_shards=4, batch_size=batch_size) as shared:
        ray.get([hammer.remote(shared, 100) for _ in range(20)], timeout=TIMEOUT)
        assert shared.value() == 2_000
        assert sum(shared.shard_values()) == 2_000
        if batch_size is None:
            assert min(shared.shard_values()) > 0  # round robin reached every shard


def test_sharded_counter_basics(ray_cluster: dict) -> None:
    import ray

    with ShardedCounter(n_shards=3, start=10) as counter:
        assert counter.n_shards == 3 and repr(counter) == "ShardedCounter(n_shards=3)"
        assert counter.shard_values() == [10, 0, 0]
        for _ in range(6):
            counter.increment()
        assert counter.shard_values() == [12, 2, 2]
        assert ray.get(counter.shard_values_async(), timeout=TIMEOUT) == [12, 2, 2]
        ray.get([counter.increment_async(5) for _ in range(3)], timeout=TIMEOUT)
        assert ray.get(counter.value_async(), timeout=TIMEOUT) == 31
        stats = counter.stats()
        assert stats["value"] == 31 and sum(stats["shard_values"]) == 31
        assert stats["actors"] == 3 and stats["n_shards"] == 3 and stats["kind"] == "ShardedCounter"
        counter.reset()
        assert counter.value() == 0
        ray.get(counter.reset_async(), timeout=TIMEOUT)
        assert counter.checkpoint() == [None, None, None]
        assert len(set(counter.pids())) == 3
    with pytest.raises(FacadeClosedError, match="increment called after close"):
        counter.increment()


def _shard_sum(counter: ShardedCounter) -> int:
    """The shards' total as another client sees it (without flushing this one's buffer)."""
    import ray

    return sum(ray.get([a.value.remote() for a in counter.actors], timeout=TIMEOUT))


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        time.sleep(0.05)


def test_batching_flushes_by_size(ray_cluster: dict) -> None:
    counter = ShardedCounter(n_shards=2, batch_size=10)
    for _ in range(25):
        counter.increment()
    _wait_for(lambda: _shard_sum(counter) == 20)  # two full batches were sent
    assert _shard_sum(counter) == 20  # the last 5 wait in the buffer
    assert counter.stats()["buffered"] == 5
    with pytest.raises(PatternError, match="not available in batching mode"):
        counter.increment_async()
    copy = pickle.loads(pickle.dumps(counter))
    copy.increment(100)
    copy.close()  # flushes the copy's buffer and leaves the shards running
    counter.flush()
    assert _shard_sum(counter) == 125
    counter.close()
    counter.close()  # idempotent


def test_batching_flushes_by_time(ray_cluster: dict) -> None:
    counter = ShardedCounter(n_shards=2, flush_interval_s=0.2)
    assert repr(counter) == "ShardedCounter(n_shards=2, flush_interval_s=0.2)"
    for _ in range(5):
        counter.increment(2)
    _wait_for(lambda: _shard_sum(counter) == 10)  # the flush thread sent them
    counter.increment()
    assert counter.value() == 11  # value() flushes this facade's buffer first
    counter.close()
    assert counter._thread is not None
    counter._thread.join(timeout=10)
    assert not counter._thread.is_alive()


def test_a_batch_the_flush_thread_sent_to_a_dead_shard_is_raised(ray_cluster: dict) -> None:
    from patterns.errors import ActorLostError

    counter = ShardedCounter(n_shards=1, flush_interval_s=0.05)
    try:
        counter.kill()  # no store: the shard is not restarted
        counter.increment(3)
        _wait_for(lambda: counter._batcher.buffered == 0)  # the thread sent it
        with pytest.raises(ActorLostError, match=r"ShardedCounter \(actor [0-9a-f]{8}\): flush"):
            counter.flush()
    finally:
        counter.close()


def test_named_get_or_create_is_race_free_and_one_creator_owns(ray_cluster: dict) -> None:
    import ray

    name = f"test-hits-{time.monotonic_ns()}"
    # Detached: a named actor created in a task would otherwise end with that task.
    options = {"get_if_exists": True, "lifetime": "detached"}

    @ray.remote(num_cpus=0.5)
    def join(name: str, options: dict) -> tuple[str, bool]:
        c = Counter(name=name, actor_options=options)
        c.increment()
        return c.actor._actor_id.hex(), c.owned

    try:
        joined = ray.get([join.remote(name, options) for _ in range(4)], timeout=TIMEOUT)
        assert len({actor for actor, _ in joined}) == 1  # four creators, one actor
        assert sum(owned for _, owned in joined) == 1  # the one that created it
        with Counter.attach(name) as attached:
            assert attached.value() == 4 and not attached.owned
        again = Counter(name=name, actor_options=options)
        assert again.value() == 4 and not again.owned
    finally:
        # Detached: it would outlive the test session if a failed assertion skipped this.
        Counter.attach(name, own=True).close()
    with pytest.raises(ValueError, match="no live Counter actor named"):
        Counter.attach(name)


def test_attach_errors(ray_cluster: dict) -> None:
    import ray

    with pytest.raises(ValueError, match=r"no live Counter actor named 'no-such-counter'"):
        Counter.attach("no-such-counter")
    with pytest.raises(TypeError, match=r"'name' must be a str, got 3 \(int\)"):
        Counter.attach(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'own' must be a bool"):
        Counter.attach("x", own=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"no live ShardedCounter named 'no-such'"):
        ShardedCounter.attach("no-such")

    @ray.remote(num_cpus=0)
    class Other:
        def ping(self) -> int:
            return 1

    name = f"test-other-{time.monotonic_ns()}"
    other = Other.options(name=name).remote()
    with pytest.raises(TypeError, match="is not a counter of this library"):
        Counter.attach(name)
    ray.kill(other)

    sharded_name = f"test-sharded-{time.monotonic_ns()}"
    with ShardedCounter(n_shards=2, name=sharded_name) as sharded:
        with pytest.raises(TypeError, match="is a ShardedCounter, not a Counter"):
            Counter.attach(f"{sharded_name}/shard-0-of-2")
        with pytest.raises(ValueError, match=r"'n_shards' must match .* which has 2 shards, got 3"):
            ShardedCounter(n_shards=3, name=sharded_name, actor_options={"get_if_exists": True})
        joined = ShardedCounter(
            n_shards=2, name=sharded_name, actor_options={"get_if_exists": True}
        )
        assert joined.actors == sharded.actors and not joined.owned
        sharded.increment(4)
        with ShardedCounter.attach(sharded_name, batch_size=10) as attached:
            assert attached.value() == 4 and attached.batching and not attached.owned
            attached.increment(1)
        assert sharded.value() == 5  # the attached facade flushed on close
