"""Contract cases of the parameter-server family: `ParameterServer`, `GradientWorker`.

User code runs in both: a worker runs the model (`GradientModel.loss_and_gradients`), a
shard runs the checkpoint store (``save``). Each poison case makes that user code kill
its process on every attempt for one input:

- `PoisonModel` crashes on parameters whose ``b[0]`` is `POISON`;
- `PoisonStore` crashes when it is asked to save weights at or below `POISON_WEIGHT`,
  which a push of `POISON_GRADIENT` produces (every shard, so no shard keeps it).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from patterns import GradientWorker, ParameterServer, RayKVStore, SoftmaxRegression
from tests.contract_cases import ContractCase

POISON = 13.0
POISON_GRADIENT = 4e6  # times the learning rate 0.5: every weight at -2e6
POISON_WEIGHT = -1e6

_names = itertools.count()


def _name(prefix: str) -> str:
    return f"contract-{prefix}-{os.getpid()}-{next(_names)}"


class PoisonModel(SoftmaxRegression):
    """A softmax regression whose gradients kill the process for ``b[0] == POISON``."""

    def loss_and_gradients(
        self, params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        if params["b"][0] == POISON:
            os._exit(1)  # every attempt: the process dies
        return super().loss_and_gradients(params, X, y)


class PoisonStore(RayKVStore):
    """A checkpoint store (in Ray's GCS) whose ``save`` kills the process for one push."""

    def save(self, key: str, state: Any, version: int) -> None:
        if any((values <= POISON_WEIGHT).any() for values in state["pieces"].values()):
            os._exit(1)  # the shard dies before the push is acknowledged
        super().save(key, state, version)


X, Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([0, 1, 1])
MODEL = PoisonModel(2, 2)
PARAMS = MODEL.init_params()
POISON_PARAMS = {"W": PARAMS["W"], "b": np.array([POISON, 0.0])}


def _server(**kwargs: Any) -> ParameterServer:
    return ParameterServer({"w": np.zeros(4)}, n_shards=2, learning_rate=0.5, **kwargs)


CASES = [
    ContractCase(
        id="ParameterServer",
        facade=ParameterServer,
        make=lambda: _server(name=_name("ps")),
        call=lambda server, timeout: server.version(timeout=timeout),
        bad_arguments=[
            (lambda: ParameterServer({}), ValueError),
            (lambda: ParameterServer({"w": [True, False]}), TypeError),
            (lambda: ParameterServer({"w": [[1.0], [1.0, 2.0]]}), ValueError),
            (lambda: ParameterServer({"w": np.zeros(2)}, n_shards=3), ValueError),
            (lambda: ParameterServer({"w": np.zeros(2)}, actor_options={"name": "x"}), ValueError),
            (lambda: ParameterServer({"w": np.zeros(2)}, timeout=0), ValueError),
        ],
        attach=lambda server: ParameterServer.attach(server.name),
    ),
    ContractCase(
        id="ParameterServer-with-poison-store",
        facade=ParameterServer,
        make=lambda: _server(store=PoisonStore(namespace=f"contract-ps-{uuid.uuid4().hex}")),
        call=lambda server, timeout: server.version(timeout=timeout),
        poison=lambda server, timeout: server.push(
            {"w": np.full(4, POISON_GRADIENT)}, timeout=timeout
        ),
    ),
    ContractCase(
        id="GradientWorker",
        facade=GradientWorker,
        make=lambda: GradientWorker(MODEL, X, Y, name=_name("worker")),
        call=lambda worker, timeout: worker.compute_gradients(PARAMS, timeout=timeout),
        bad_arguments=[
            (lambda: GradientWorker(object(), X, Y), TypeError),  # type: ignore[arg-type]
            (lambda: GradientWorker(MODEL, X > 0, Y), TypeError),
            (lambda: GradientWorker(MODEL, [[1.0], [1.0, 2.0]], [0, 1]), ValueError),
            (lambda: GradientWorker(MODEL, X, Y[:2]), ValueError),
            (lambda: GradientWorker(MODEL, X, Y, batch_size=0), ValueError),
            (lambda: GradientWorker(MODEL, X, Y, actor_options={"name": "w"}), ValueError),
        ],
        poison=lambda worker, timeout: worker.compute_gradients(POISON_PARAMS, timeout=timeout),
        attach=lambda worker: GradientWorker.attach(worker.name),
    ),
]
