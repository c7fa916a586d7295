"""Contract cases of the actor-trees family: `Supervisor`.

The facade's actor is the root supervisor; the call is a call to one of its children
through `Supervisor.call` (the lookup goes through the root, so a stopped root is a
hang), and the poison call is a child method that kills its own process: the caller
gets the library's error at once, and the supervisor restarts the child, which serves
the next call.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

import ray.cloudpickle

from patterns import ChildSpec, Supervisor, SupervisorSpec
from tests.contract_cases import ContractCase


class Echo:
    """A child with a cheap call and a poison one."""

    def ping(self) -> str:
        return "pong"

    def explode(self) -> None:
        os._exit(1)  # the process dies on every call


# Ray workers cannot import the tests package: the child class travels by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _tree() -> Supervisor:
    return Supervisor(
        [ChildSpec("echo", Echo), SupervisorSpec("team", [ChildSpec("inner", Echo)])],
        name=f"contract-tree-{uuid.uuid4().hex[:8]}",
        health_check_interval_s=0.5,
        health_check_timeout_s=5.0,  # a busy host answers slowly: no false alarm
    )


def _call(sup: Supervisor, timeout: float | None) -> Any:
    return sup.call("echo", "ping", timeout=timeout)


def _poison(sup: Supervisor, timeout: float | None) -> Any:
    return sup.call("echo", "explode", timeout=timeout)


def _one() -> list[ChildSpec]:
    return [ChildSpec("echo", Echo)]


CASES = [
    ContractCase(
        id="Supervisor",
        facade=Supervisor,
        make=_tree,
        call=_call,
        bad_arguments=[
            (lambda: Supervisor(_one(), strategy="one_for_some"), ValueError),
            (lambda: Supervisor(_one(), max_restarts=-1), ValueError),
            (lambda: Supervisor(ChildSpec("echo", Echo)), TypeError),  # type: ignore[arg-type]
            (lambda: Supervisor([*_one(), *_one()]), ValueError),
            (lambda: Supervisor(_one(), actor_options={"name": "root"}), ValueError),
            (lambda: Supervisor(_one(), timeout=0), ValueError),
            (lambda: Supervisor([ChildSpec("a/b", Echo)]), ValueError),
        ],
        poison=_poison,
        attach=lambda sup: Supervisor.attach(sup.name),
    ),
]
