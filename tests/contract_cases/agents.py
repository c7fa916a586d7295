"""Contract cases of the online-learning agents (`patterns.agents`).

The agent that runs user code (a `LearningAgent`'s estimator) gets a poison case: an
estimator whose ``partial_fit`` kills its process on one input, as a native library
dying on a bad row would. With a store the agent is
restartable with a finite retry count, so the poison feedback fails with the library's
error after a few attempts and the restarted agent serves the next call.

This module is imported by Ray workers too (the poisoned estimator is unpickled in the
agent's actor): it holds nothing that starts actors at import.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
from sklearn.linear_model import SGDRegressor

from patterns import (
    AgentPopulation,
    AgentReplicas,
    LearningAgent,
    LinUCBAgent,
    RandomAgent,
    RayKVStore,
    RolloutWorker,
    ThompsonSamplingAgent,
)
from tests.contract_cases import ContractCase

POISON = 13.0
"""A context whose first feature is this kills `PoisonedSGD`'s process."""

X = [0.5, -0.25]


class PoisonedSGD(SGDRegressor):
    """An SGDRegressor whose ``partial_fit`` kills its process on a poison row (user code
    gone wrong: every attempt of the call crashes the actor)."""

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        if np.any(np.asarray(X)[:, 0] == POISON):
            os._exit(1)
        return super().partial_fit(X, y, sample_weight=sample_weight)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _store() -> RayKVStore:
    return RayKVStore(namespace="contract-agents")


def _predict(agent: Any, timeout: float | None) -> Any:
    return agent.make_prediction(X, timeout=timeout)


def _poison(agent: Any, timeout: float | None) -> None:
    agent.receive_feedback([POISON, 0.0], 0, 1.0, timeout=timeout)


def _spaces(worker: RolloutWorker, timeout: float | None) -> Any:
    return worker.spaces(timeout=timeout)


def _linucb(**kwargs: Any) -> LinUCBAgent:
    return LinUCBAgent(n_actions=3, n_features=2, **kwargs)


def _learning() -> LearningAgent:
    return LearningAgent(
        PoisonedSGD(), n_actions=3, epsilon=0.0, seed=0, store=_store(), key=_unique("learning")
    )


CASES = [
    ContractCase(
        id="LinUCBAgent",
        facade=LinUCBAgent,
        make=lambda: _linucb(name=_unique("linucb")),
        call=_predict,
        bad_arguments=[
            (lambda: LinUCBAgent(n_actions=1, n_features=2), ValueError),
            (lambda: LinUCBAgent(n_actions=3, n_features=2, alpha="1"), TypeError),
            (lambda: LinUCBAgent(3, 2), TypeError),  # type: ignore[misc]  # counts: keywords
            (lambda: _linucb(actor_options={"name": "x"}), ValueError),
            (lambda: _linucb(timeout=0), ValueError),
        ],
        attach=lambda agent: LinUCBAgent.attach(agent.name),
    ),
    ContractCase(
        id="ThompsonSamplingAgent",
        facade=ThompsonSamplingAgent,
        make=lambda: ThompsonSamplingAgent(
            n_actions=3, n_features=2, seed=0, store=_store(), key=_unique("thompson")
        ),
        call=_predict,
        bad_arguments=[
            (lambda: ThompsonSamplingAgent(n_actions=3, n_features=0), ValueError),
            (lambda: ThompsonSamplingAgent(n_actions=3, n_features=2, key="k"), ValueError),
        ],
    ),
    ContractCase(
        id="RandomAgent",
        facade=RandomAgent,
        make=lambda: RandomAgent(n_actions=3, seed=0),
        call=_predict,
        bad_arguments=[
            (lambda: RandomAgent(n_actions=3, seed=-1), ValueError),
            (lambda: RandomAgent(n_actions=3, namespace="ns"), ValueError),
        ],
    ),
    ContractCase(
        id="LearningAgent-poison",
        facade=LearningAgent,
        make=_learning,
        call=_predict,
        bad_arguments=[
            (lambda: LearningAgent(SGDRegressor, n_actions=2), TypeError),
            (lambda: LearningAgent(SGDRegressor(), n_actions=2, epsilon=2), ValueError),
        ],
        poison=_poison,
    ),
    ContractCase(
        id="AgentReplicas",
        facade=AgentReplicas,
        make=lambda: AgentReplicas(
            LinUCBAgent,
            n_replicas=2,
            sync_every=4,
            agent_kwargs={"n_actions": 3, "n_features": 2},
            name=_unique("replicas"),
        ),
        call=_predict,
        bad_arguments=[
            (lambda: AgentReplicas(RandomAgent, n_replicas=2, sync_every=4), TypeError),
            (
                lambda: AgentReplicas(
                    LinUCBAgent,
                    n_replicas=0,
                    sync_every=4,
                    agent_kwargs={"n_actions": 3, "n_features": 2},
                ),
                ValueError,
            ),
            (
                lambda: AgentReplicas(
                    LinUCBAgent,
                    n_replicas=2,
                    sync_every=4,
                    agent_kwargs={"n_actions": 1, "n_features": 2},
                ),
                ValueError,
            ),
        ],
        attach=lambda replicas: AgentReplicas.attach(replicas.name),
    ),
    # The population runs no user code of its own: a poisoned member is the
    # LearningAgent case above (with a LearningAgent member the population's poison
    # check passes too; it is left out to keep the suite's time).
    ContractCase(
        id="AgentPopulation",
        facade=AgentPopulation,
        make=lambda: AgentPopulation(
            {"linucb": _linucb(), "random": RandomAgent(n_actions=3, seed=0)}
        ),
        call=lambda population, timeout: population.make_prediction(X, timeout=timeout),
        bad_arguments=[
            (lambda: AgentPopulation({}), ValueError),
            (lambda: AgentPopulation({"a": "agent"}), TypeError),  # type: ignore[dict-item]
        ],
    ),
    ContractCase(
        id="RolloutWorker",
        facade=RolloutWorker,
        make=lambda: RolloutWorker("CartPole-v1", name=_unique("rollout")),
        call=_spaces,
        bad_arguments=[
            (lambda: RolloutWorker(3), TypeError),  # type: ignore[arg-type]
            (lambda: RolloutWorker(actor_options={"namespace": "x"}), ValueError),
        ],
        attach=lambda worker: RolloutWorker.attach(worker.name),
    ),
]
