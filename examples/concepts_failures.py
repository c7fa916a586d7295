"""What Ray promises when an actor's process dies in the middle of a call.

Shown on the Fault tolerance page. ``main()`` expects a connected Ray cluster.
The crash is simulated with ``os._exit``, which ends the actor's process as
abruptly as a killed machine would: no cleanup, no reply.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import suppress

import ray
from ray.exceptions import ActorUnavailableError, RayActorError


# --8<-- [start:state_lost]
@ray.remote(max_restarts=1)
class Tally:
    def __init__(self) -> None:
        self.value = 0  # runs again on every restart

    def add(self, n: int) -> int:
        self.value += n
        return self.value

    def read(self) -> int:
        return self.value

    def crash(self) -> None:
        os._exit(1)


def read_when_back(tally: ray.actor.ActorHandle, timeout_s: float = 60.0) -> int:
    # While Ray restarts an actor, calls without retries fail at once with
    # ActorUnavailableError. A read changes nothing, so it is safe to repeat.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(tally.read.remote(), timeout=timeout_s)
        except ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --8<-- [end:state_lost]


# --8<-- [start:bank]
@ray.remote(num_cpus=0)
class Bank:
    """The outside world: a service whose effects a restart cannot undo."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.charges: list[int] = []

    def charge(self, request_id: str, amount: int, *, dedupe: bool) -> int:
        self.requests[request_id] += 1
        if not (dedupe and self.requests[request_id] > 1):
            self.charges.append(amount)
        return self.requests[request_id]  # which attempt this was

    def total(self) -> int:
        return sum(self.charges)


@ray.remote(max_restarts=1)
class Cashier:
    def __init__(self, bank: ray.actor.ActorHandle, *, dedupe: bool) -> None:
        self.bank = bank
        self.dedupe = dedupe

    def pay(self, request_id: str, amount: int) -> int:
        charge = self.bank.charge.remote(request_id, amount, dedupe=self.dedupe)
        attempt = ray.get(charge)
        if attempt == 1:
            os._exit(1)  # worst moment: the bank acted, the caller has no reply
        return attempt


# --8<-- [end:bank]


def main() -> None:
    # --8<-- [start:state_lost_run]
    tally = Tally.remote()
    assert ray.get([tally.add.remote(5) for _ in range(3)]) == [5, 10, 15]
    with suppress(RayActorError):  # the call that kills the process fails...
        ray.get(tally.crash.remote(), timeout=60)  # ...and Ray restarts the actor
    assert read_when_back(tally) == 0  # back, but from zero
    # --8<-- [end:state_lost_run]

    # --8<-- [start:at_most_once]
    bank = Bank.remote()
    cashier = Cashier.options(max_task_retries=0).remote(bank, dedupe=False)
    try:
        ray.get(cashier.pay.remote("order-1", 10), timeout=60)
        raise AssertionError("the crash should have reached the caller")
    except RayActorError:
        pass  # did the charge happen? The caller cannot tell from here.
    assert ray.get(bank.total.remote()) == 10  # it did, once
    # --8<-- [end:at_most_once]

    # --8<-- [start:at_least_once]
    bank = Bank.remote()
    cashier = Cashier.options(max_task_retries=-1).remote(bank, dedupe=False)
    assert ray.get(cashier.pay.remote("order-2", 10), timeout=60) == 2  # second try
    assert ray.get(bank.total.remote()) == 20  # one call, two charges
    # --8<-- [end:at_least_once]

    # --8<-- [start:idempotent]
    bank = Bank.remote()
    cashier = Cashier.options(max_task_retries=-1).remote(bank, dedupe=True)
    assert ray.get(cashier.pay.remote("order-3", 10), timeout=60) == 2
    assert ray.get(bank.total.remote()) == 10  # retried, but charged once
    # --8<-- [end:idempotent]

    for actor in (tally, bank, cashier):
        ray.kill(actor)


if __name__ == "__main__":
    ray.init()
    try:
        main()
    finally:
        ray.shutdown()
