"""Contract cases of the counters: `Counter`, `ShardedCounter` (per call and batched).

No user code runs in a counter's actor except its checkpoint store's ``save`` and
``load``. The poison call is therefore a store that kills the process whenever a
snapshot's value reaches `POISON`: ``increment(POISON)`` crashes the actor on every
attempt (Ray re-sends it to the restarted actor, which restores the last checkpoint and
applies it again), until Ray gives up after ``max_task_retries`` retries. Smaller values
never reach it, so the restarted counter serves the next calls.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

from patterns import Counter, RayKVStore, ShardedCounter
from tests.contract_cases import ContractCase

POISON = 1_000_000
"""A snapshot whose value reaches this kills the process that saves it."""

_names = itertools.count()


class PoisonStore(RayKVStore):
    """A `RayKVStore` whose ``save`` kills the process when the value reaches `POISON`.

    As a crash does (``os._exit``: nothing is cleaned up, nothing saved), for every
    attempt of the call that got there.
    """

    def save(self, key: str, state: Any, version: int) -> None:
        if isinstance(state, dict) and state.get("value", 0) >= POISON:
            os._exit(1)
        super().save(key, state, version)


def poison_store() -> PoisonStore:
    return PoisonStore(namespace=f"contract-counters-{uuid.uuid4().hex}")


def _name(kind: str) -> str:
    return f"contract-{kind}-{os.getpid()}-{next(_names)}"


def _value(facade: Any, timeout: float | None) -> Any:
    return facade.value(timeout=timeout)


def _poison(facade: Any, timeout: float | None) -> None:
    facade.increment(POISON, timeout=timeout)


def _poison_batched(facade: ShardedCounter, timeout: float | None) -> None:
    facade.increment(POISON, timeout=timeout)  # buffered ...
    facade.flush(timeout=timeout)  # ... sent, and the batch crashes its shard


CASES = [
    ContractCase(
        id="Counter",
        facade=Counter,
        make=lambda: Counter(store=poison_store(), name=_name("counter")),
        call=_value,
        bad_arguments=[
            (lambda: Counter(start=-1), ValueError),
            (lambda: Counter(start="1"), TypeError),  # type: ignore[arg-type]
            (lambda: Counter(actor_options={"name": "x"}), ValueError),
            (lambda: Counter(key="k"), ValueError),
            (lambda: Counter(timeout=0), ValueError),
        ],
        poison=_poison,
        attach=lambda counter: Counter.attach(counter.name),
    ),
    ContractCase(
        id="ShardedCounter",
        facade=ShardedCounter,
        make=lambda: ShardedCounter(n_shards=2, store=poison_store(), name=_name("sharded")),
        call=_value,
        bad_arguments=[
            (lambda: ShardedCounter(n_shards=0), ValueError),
            (lambda: ShardedCounter(n_shards=2.0), TypeError),  # type: ignore[arg-type]
            (lambda: ShardedCounter(flush_interval_s=-1), ValueError),
            (lambda: ShardedCounter(batch_size="10"), TypeError),  # type: ignore[arg-type]
            (lambda: ShardedCounter(actor_options={"get_if_exists": True}), ValueError),
        ],
        poison=_poison,
        attach=lambda counter: ShardedCounter.attach(counter.name),
    ),
    ContractCase(
        id="ShardedCounter-batched",
        facade=ShardedCounter,
        make=lambda: ShardedCounter(
            n_shards=2,
            store=poison_store(),
            batch_size=1_000,
            flush_interval_s=0.5,
            name=_name("batched"),
        ),
        call=_value,
        poison=_poison_batched,
        attach=lambda counter: ShardedCounter.attach(counter.name, batch_size=10),
    ),
]
