"""Every public facade through the same contract (`patterns.testing.check_facade`).

The cases live in ``tests/contract_cases/<family>.py``. What each run measured (how long
a call to a hung actor took to raise, how long a poison call took to fail, how long
``close()`` took) is printed at the end of the session, and written as JSON to the file
``RAP_CONTRACT_REPORT`` names, if set.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
from collections.abc import Iterator
from dataclasses import asdict

import pytest

import patterns
from patterns._facade import ActorFacade
from patterns.testing import ContractReport, check_facade
from tests import contract_cases
from tests.contract_cases import ContractCase

# Every public class whose instances start actors: each must be an ActorFacade with a
# contract case. (A new facade is added here and in its family's case module.)
FACADES = (
    "AgentPopulation",
    "AgentReplicas",
    "BridgePool",
    "Counter",
    "GradientWorker",
    "LearningAgent",
    "LinUCBAgent",
    "ParameterServer",
    "RandomAgent",
    "RolloutWorker",
    "ShardedCounter",
    "Supervisor",
    "ThompsonSamplingAgent",
)


def _cases() -> list[ContractCase]:
    found: list[ContractCase] = []
    for module in pkgutil.iter_modules(contract_cases.__path__):
        found += importlib.import_module(f"tests.contract_cases.{module.name}").CASES
    return found


CASES = _cases()
_REPORTS: list[ContractReport] = []


@pytest.fixture(scope="module", autouse=True)
def _report_measurements() -> Iterator[None]:
    yield
    if not _REPORTS:
        return
    rows = [asdict(report) for report in _REPORTS]
    target = os.environ.get("RAP_CONTRACT_REPORT")
    if target:
        with open(target, "w") as handle:
            json.dump(rows, handle, indent=2)
    for row in rows:
        poison = "-" if row["poison_s"] is None else f"{row['poison_s']:.2f} s"
        print(
            f"\ncontract {row['kind']}: hang {row['hang_s']:.2f} s, poison {poison}, "
            f"close {row['close_s']:.2f} s"
        )


def test_every_public_facade_is_an_actor_facade_with_a_case() -> None:
    covered = {case.facade.__name__ for case in CASES}
    for name in FACADES:
        cls = getattr(patterns, name)
        assert issubclass(cls, ActorFacade), f"{name} is not built on ActorFacade"
        assert name in covered, f"{name} has no contract case in tests/contract_cases/"


@pytest.mark.parametrize(
    "case",
    # A case that needs Spark carries the `spark` mark: `make test-fast` deselects it.
    [pytest.param(case, marks=[pytest.mark.spark] if case.needs_spark else []) for case in CASES],
    ids=[case.id for case in CASES],
)
def test_facade_contract(case: ContractCase, ray_cluster: dict) -> None:
    if case.needs_spark and ray_cluster["launcher"] is None:
        pytest.fail(f"{case.id} needs the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    report = check_facade(
        case.make,
        call=case.call,
        bad_arguments=case.bad_arguments,
        poison=case.poison,
        attach=case.attach,
        hang_timeout_s=case.hang_timeout_s,
    )
    assert report.checks[-1] == "close"
    _REPORTS.append(report)
