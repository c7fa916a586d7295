"""The shared facade and actor bases, through a minimal pattern built on them.

``Tally`` is what a user's own pattern looks like when it follows the library's rules:
a plain state class, an actor on `StatefulActor`, a facade on `ActorFacade`.
`patterns.testing.check_facade` runs the contract on it, and the checks that must fail
on a facade that breaks a rule are shown failing.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Any

import pytest
import ray

from patterns._actors import check_actor_options, make_actor, rebuild, restartable_defaults
from patterns._calls import DEFAULT
from patterns._checks import check_int
from patterns._facade import ActorFacade, check_facade_timeout
from patterns._sharded import ShardedFacade
from patterns._stateful import StatefulActor
from patterns.checkpointing import DirectoryStore
from patterns.errors import CallTimeoutError, FacadeClosedError
from patterns.testing import check_facade


class _TallyState:
    def __init__(self, start: int = 0) -> None:
        self.value = start
        self.changes = 0

    def add(self, n: int) -> int:
        if n == 13:
            os._exit(1)  # the poison input: every attempt crashes the process
        self.value += n
        self.changes += 1
        return self.value

    def snapshot(self) -> int:
        return self.value


class _TallyActor(StatefulActor):
    def __init__(self, start: int, store: Any, key: str | None) -> None:
        super().__init__(
            fresh=lambda: _TallyState(start),
            restore=_TallyState,
            store=store,
            key=key,
            checkpoint_every=1,
            info={"kind": "Tally"},
            legacy_keys=[f"old-{key}"] if key else [],
        )

    def add(self, n: int) -> int:
        return self._apply(self._state.add, n)

    def value(self) -> int:
        return int(self._state.value)


_RemoteTally = ray.remote(_TallyActor)


class Tally(ActorFacade):
    """A minimal facade on the shared bases (a test fixture, not a library pattern)."""

    def __init__(
        self,
        *,
        start: int = 0,
        store: Any = None,
        key: str | None = None,
        timeout: Any = DEFAULT,
    ) -> None:
        start = check_int("start", start, minimum=0)
        seconds = check_facade_timeout(timeout)
        options = check_actor_options(None, defaults=restartable_defaults(store))
        actor = make_actor(_RemoteTally, options, start, store, key)
        self._setup(actor, seconds, True)

    def _setup(self, actor: Any, timeout: float | None, owned: bool) -> None:
        self._actor = actor
        self._init_facade([actor], name=None, namespace=None, owned=owned, timeout=timeout)

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild, (Tally, self._actor, self.timeout, False))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(timeout={self.timeout})"

    def add(self, n: int, *, timeout: object = DEFAULT) -> int:
        value: int = self._get(self._actor.add.remote(n), timeout=timeout, method="add")
        return value

    def value(self, *, timeout: object = DEFAULT) -> int:
        value: int = self._get(self._actor.value.remote(), timeout=timeout, method="value")
        return value


def _value(tally: Tally, timeout: float | None) -> int:
    return tally.value(timeout=timeout)


def test_a_pattern_on_the_shared_bases_passes_the_contract(ray_cluster: dict) -> None:
    with tempfile.TemporaryDirectory() as path:
        store = DirectoryStore(path)
        report = check_facade(
            lambda: Tally(store=store, key="t"),
            call=_value,
            bad_arguments=[
                (lambda: Tally(start=-1), ValueError),
                (lambda: Tally(start="1"), TypeError),
            ],
            poison=lambda tally, timeout: tally.add(13, timeout=timeout),
        )
    assert report.checks == ["bad arguments", "repr", "stats", "copy", "hang", "poison", "close"]
    assert report.hang_s is not None and report.hang_s >= 2.0
    assert report.poison_s is not None


def test_the_contract_fails_a_facade_that_starts_an_actor_before_checking() -> None:
    class Careless(Tally):
        def __init__(self, *, start: int = 0) -> None:
            make_actor(_RemoteTally, {}, 0, None, None)  # started first ...
            check_int("start", start, minimum=0)  # ... checked after

    with pytest.raises(AssertionError, match="started 1 actor"):
        check_facade(
            lambda: Tally(),
            call=_value,
            bad_arguments=[(lambda: Careless(start=-1), ValueError)],
        )


def test_the_contract_fails_a_copy_that_stops_the_actors(ray_cluster: dict) -> None:
    class Greedy(Tally):
        def __reduce__(self) -> tuple[Any, ...]:
            return (_greedy_copy, (self._actor, self.timeout))

    with pytest.raises(AssertionError, match="'copy' failed: an unpickled copy owns the actors"):
        check_facade(lambda: Greedy(), call=_value)


def test_the_contract_fails_a_facade_whose_calls_ignore_the_timeout(ray_cluster: dict) -> None:
    class Patient(Tally):
        def value(self, *, timeout: object = DEFAULT) -> int:
            return int(ray.get(self._actor.value.remote()))  # no bound: the mistake

    with pytest.raises(AssertionError, match=r"'hang' failed: no CallTimeoutError within 1\.0 s"):
        check_facade(lambda: Patient(), call=_value, hang_timeout_s=1.0)


def test_the_contract_fails_a_poison_call_that_is_retried_forever(ray_cluster: dict) -> None:
    class Forever(Tally):
        def __init__(self) -> None:
            options = {"max_restarts": -1, "max_task_retries": -1}  # the old default
            self._setup(make_actor(_RemoteTally, options, 0, None, None), 60.0, True)

    with pytest.raises(AssertionError, match="'poison' failed: no answer within 5 s"):
        check_facade(
            lambda: Forever(),
            call=_value,
            poison=lambda tally, timeout: tally.add(13, timeout=timeout),
            poison_bound_s=5,
        )


def _greedy_copy(actor: Any, timeout: float | None) -> Tally:
    copy = Tally.__new__(Tally)
    copy._setup(actor, timeout, True)  # a copy that claims the actors: close() would stop them
    return copy


def test_close_waits_until_dead_and_a_closed_facade_refuses_calls(ray_cluster: dict) -> None:
    tally = Tally()
    assert tally.add(2) == 2
    tally.close()
    tally.close()  # idempotent
    with pytest.raises(
        FacadeClosedError, match=r"Tally \(actor [0-9a-f]{8}\): value called after close"
    ):
        tally.value()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(tally._actor.value.remote(), timeout=30)


def test_a_copy_releases_and_the_owner_stops(ray_cluster: dict) -> None:
    tally = Tally()
    copy = pickle.loads(pickle.dumps(tally))
    assert (tally.owned, copy.owned) == (True, False)
    copy.close()
    assert tally.add(1) == 1  # the copy's close left the actor running
    tally.close()


def test_timeouts_follow_call_then_facade_then_library_default(ray_cluster: dict) -> None:
    assert Tally().timeout == 60.0
    assert Tally(timeout=None).timeout is None
    with pytest.raises(ValueError, match=r"'timeout' must be a finite number > 0, got 0\.0"):
        Tally(timeout=0)
    tally = Tally(timeout=1.5)
    (pid,) = tally.pids(timeout=60)  # the first call waits for the actor to start
    os.kill(pid, 19)  # SIGSTOP
    try:
        with pytest.raises(CallTimeoutError, match=r"value got no reply within 1\.5 s"):
            tally.value()
        with pytest.raises(CallTimeoutError, match=r"within 0\.5 s"):
            tally.value(timeout=0.5)
    finally:
        os.kill(pid, 18)  # SIGCONT
    assert tally.value(timeout=None) == 0
    tally.close()


def test_a_checkpoint_under_an_old_key_restores_and_moves_to_the_new_key(
    ray_cluster: dict,
) -> None:
    with tempfile.TemporaryDirectory() as path:
        store = DirectoryStore(path)
        store.save("old-t", 41, 3)
        tally = Tally(store=store, key="t")
        assert tally.add(1) == 42
        tally.close()
        assert store.load("t").state == 42  # saved under the new key
        assert store.load("old-t").state == 41  # the old one is left as it was


class ShardedTally(ShardedFacade):
    """Two tallies as shards of one facade (a fixture for the sharded base)."""

    def __init__(self, *, n_shards: int, name: str | None = None, store: Any = None) -> None:
        options = check_actor_options(None, defaults=restartable_defaults(store))
        shards = self._start_shards(
            _RemoteTally,
            options,
            n_shards,
            lambda index, key: (0, store, key),
            name=name,
            namespace=None,
            key="tallies" if store is not None else None,
        )
        self._setup(shards, name, True)

    def _setup(self, shards: list[Any], name: str | None, owned: bool) -> None:
        key = "tallies" if name else None
        self._setup_shards(shards, key=key, name=name, namespace=None, owned=owned, timeout=60.0)

    @classmethod
    def attach(cls, name: str) -> ShardedTally:
        shards, _ = cls._find_shards(name, None, kind="Tally", timeout=60)
        return rebuild(cls, shards, name, False)

    def __repr__(self) -> str:
        return f"ShardedTally(n_shards={self.n_shards})"


def test_sharded_members_are_named_and_keyed_with_their_count(ray_cluster: dict) -> None:
    with tempfile.TemporaryDirectory() as path:
        store = DirectoryStore(path)
        with ShardedTally(n_shards=2, name="tallies-doc", store=store) as tallies:
            ray.get([shard.add.remote(i + 1) for i, shard in enumerate(tallies.actors)])
            attached = ShardedTally.attach("tallies-doc")
            assert attached.n_shards == 2 and not attached.owned
            assert ray.get([s.value.remote() for s in attached.actors]) == [1, 2]
            assert tallies.checkpoint() == [2, 2]
        assert store.load("tallies/shard-1-of-2").state == 2
    with pytest.raises(ValueError, match="no live Tally named 'tallies-doc'"):
        ShardedTally.attach("tallies-doc")
