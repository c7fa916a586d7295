"""Counters: state logic without Ray, argument checks, and behaviour on the shared cluster.

Fault tests (killing actor processes) are in test_counters_faults.py.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patterns import Counter, DirectoryStore, ShardedCounter, counters
from patterns._requests import RequestLog
from patterns.counters import _CounterState

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


# --- plain state: no Ray -----------------------------------------------------------------


def test_state_increments_and_resets() -> None:
    state = _CounterState(start=3)
    assert state.increment() == 4
    assert state.increment(6) == 10
    state.reset()
    assert state.value == 0
    assert state.changes == 3


def test_state_applies_each_request_once() -> None:
    state = _CounterState()
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
    state = _CounterState()
    for seq in (1, 2, 4):
        state.increment(1, (42, seq))
    copy = _CounterState.from_snapshot(pickle.loads(pickle.dumps(state.snapshot())))
    assert copy.value == 3
    assert copy.increment(1, (42, 4)) == 3  # the memory of applied requests came along
    assert copy.increment(1, (42, 3)) == 4
    with pytest.raises(ValueError, match="unknown counter snapshot format"):
        _CounterState.from_snapshot({"format": 99})


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
    real = counters._RemoteCounterActor

    class Guard:
        def options(self, **options: object) -> Guard:
            real.options(**options)  # validates locally, sends nothing
            return self

        def remote(self, *args: object) -> None:
            raise AssertionError("a bad argument reached Ray")

    monkeypatch.setattr(counters, "_RemoteCounterActor", Guard())


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
    ({"actor_options": [("name", "x")]}, TypeError, r"'actor_options' must be a dict or None"),
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
        ({"shards": 0}, ValueError, r"'shards' must be an int >= 1, got 0"),
        ({"shards": "2"}, TypeError, r"'shards' must be an int, got '2' \(str\)"),
        ({"batch_size": 0}, ValueError, r"'batch_size' must be an int >= 1, got 0"),
        ({"flush_interval": 0}, ValueError, r"'flush_interval' must be a finite number > 0"),
        ({"flush_interval": "1"}, TypeError, r"'flush_interval' must be a number of seconds"),
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


def test_unknown_store_path_is_refused_at_the_call(no_ray: None) -> None:
    with pytest.raises(ValueError, match=r"'path' must be an existing directory"):
        Counter(store=DirectoryStore("/no/such/checkpoint/dir"))


# --- on the cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counter(ray_cluster: dict) -> Iterator[Counter]:
    c = Counter()
    yield c
    c.kill()


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
    assert counter.pid() > 0
    with pytest.raises(ValueError, match=r"'timeout' must be a finite number > 0"):
        counter.value(timeout=-1)


def test_copies_are_distinct_writers(counter: Counter) -> None:
    import ray

    copy = pickle.loads(pickle.dumps(counter))
    assert copy.actor == counter.actor
    assert copy._client != counter._client  # so their request ids never collide
    before = counter.value()
    copy.increment()
    counter.increment()
    assert counter.value() == before + 2

    @ray.remote(num_cpus=0.5)
    def ids(c: Counter) -> int:
        return c._client

    assert len({*ray.get([ids.remote(counter) for _ in range(3)], timeout=TIMEOUT)}) == 3


def test_counter_with_store_resumes_under_its_key(ray_cluster: dict, tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    first = Counter(5, store=store, key="orders")
    assert first.increment(2) == 7
    assert first.key == "orders"
    assert store.load("orders").state["value"] == 7  # written before increment returned
    first.kill()
    again = Counter(store=store, key="orders")  # a new actor, same key: resumes
    assert again.value() == 7
    again.kill()
    anonymous = Counter(store=store)
    assert anonymous.key.startswith("counter-")
    anonymous.kill()


def test_fifty_tasks_two_hundred_increments_each_counter(ray_cluster: dict) -> None:
    import ray

    @ray.remote(num_cpus=0.5)
    def hammer(c: Counter, times: int) -> None:
        for _ in range(times):
            c.increment()

    shared = Counter()
    ray.get([hammer.remote(shared, 200) for _ in range(50)], timeout=TIMEOUT)
    assert shared.value() == 10_000
    shared.kill()


@pytest.mark.parametrize("batch_size", [None, 64], ids=["per-call", "batched"])
def test_fifty_tasks_two_hundred_increments_each_sharded(
    ray_cluster: dict, batch_size: int | None
) -> None:
    import ray

    @ray.remote(num_cpus=0.5)
    def hammer(c: ShardedCounter, times: int) -> None:
        if not c.batching:  # per call, 20 in flight at a time
            for _ in range(times // 20):
                ray.get([c.increment_async() for _ in range(20)], timeout=TIMEOUT)
            return
        with c:  # a batched copy flushes when the block ends
            for _ in range(times):
                c.increment()

    shared = ShardedCounter(4, batch_size=batch_size)
    ray.get([hammer.remote(shared, 200) for _ in range(50)], timeout=TIMEOUT)
    assert shared.value() == 10_000
    assert sum(shared.shard_values()) == 10_000
    if batch_size is None:
        assert min(shared.shard_values()) > 0  # round robin reached every shard
    shared.kill()


def test_sharded_counter_basics(ray_cluster: dict) -> None:
    import ray

    counter = ShardedCounter(3, start=10)
    assert counter.shard_values() == [10, 0, 0]
    for _ in range(6):
        counter.increment()
    assert counter.shard_values() == [12, 2, 2]
    ray.get([counter.increment_async(5) for _ in range(3)], timeout=TIMEOUT)
    assert ray.get(counter.value_async(), timeout=TIMEOUT) == 31
    counter.reset()
    assert counter.value() == 0
    assert counter.checkpoint() == [None, None, None]
    assert len(set(counter.pids())) == 3
    counter.close()
    with pytest.raises(RuntimeError, match="closed"):
        counter.increment()
    counter.kill()


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
    counter = ShardedCounter(2, batch_size=10)
    for _ in range(25):
        counter.increment()
    _wait_for(lambda: _shard_sum(counter) == 20)  # two full batches were sent
    assert _shard_sum(counter) == 20  # the last 5 wait in the buffer
    with pytest.raises(RuntimeError, match="not available in batching mode"):
        counter.increment_async()
    counter.close()
    assert _shard_sum(counter) == 25  # close flushed them
    counter.close()  # idempotent
    counter.kill()


def test_batching_flushes_by_time(ray_cluster: dict) -> None:
    counter = ShardedCounter(2, flush_interval=0.2)
    for _ in range(5):
        counter.increment(2)
    _wait_for(lambda: _shard_sum(counter) == 10)  # the flush thread sent them
    counter.increment()
    assert counter.value() == 11  # value() flushes this facade's buffer first
    counter.close()
    assert counter._thread is not None
    counter._thread.join(timeout=10)
    assert not counter._thread.is_alive()
    counter.kill()


def test_named_get_or_create_is_race_free(ray_cluster: dict) -> None:
    import ray

    name = f"test-hits-{time.monotonic_ns()}"
    # Detached: a named actor created in a task would otherwise end with that task.
    options = {"name": name, "get_if_exists": True, "lifetime": "detached"}

    @ray.remote(num_cpus=0.5)
    def join(options: dict) -> str:
        c = Counter(actor_options=options)
        c.increment()
        return c.actor._actor_id.hex()

    try:
        ids = ray.get([join.remote(options) for _ in range(4)], timeout=TIMEOUT)
        assert len(set(ids)) == 1  # four creators, one actor
        attached = Counter.attach(name)
        assert attached.value() == 4
        assert Counter(actor_options=options).value() == 4
    finally:
        # Detached: it would outlive the test session if a failed assertion skipped this.
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name), no_restart=True)


def test_attach_errors(ray_cluster: dict) -> None:
    import ray

    with pytest.raises(ValueError, match=r"no live Counter actor named 'no-such-counter'"):
        Counter.attach("no-such-counter")
    with pytest.raises(TypeError, match=r"'name' must be a str, got 3 \(int\)"):
        Counter.attach(3)  # type: ignore[arg-type]

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
    sharded = ShardedCounter(2, actor_options={"name": sharded_name})
    with pytest.raises(TypeError, match="is a ShardedCounter, not a Counter"):
        Counter.attach(f"{sharded_name}/shard-0")
    with pytest.raises(ValueError, match=r"'shards' must match .* which has 2 shards, got 3"):
        ShardedCounter(3, actor_options={"name": sharded_name, "get_if_exists": True})
    sharded.increment(4)
    assert ShardedCounter.attach(sharded_name, batch_size=10).value() == 4
    sharded.kill()
