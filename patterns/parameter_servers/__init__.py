"""Parameter servers: sharded, checkpointed model parameters that workers pull and push.

The pieces, from the bottom up (one module each):

- `ParameterServer` (``_server``, on the plain shard state of ``_state``) holds named
  numpy arrays in one or more Ray actors (shards, balanced by size; one big matrix is
  cut into row ranges). ``pull()`` returns the parameters, ``push(gradients,
  version=...)`` applies one optimizer step (``"sgd"``, ``"momentum"``, ``"adam"``)
  on every shard; ``version()`` counts the pushes applied.
- `SoftmaxRegression` (``_models``) is a numpy model; any object with
  ``init_params``, ``loss_and_gradients`` and ``predict`` is a model (`GradientModel`).
- `GradientWorker` (``_worker``) is an actor that keeps one partition of the data in
  memory and computes gradients on it.
- `train` (``_loop``) runs workers against a server: ``"sync"`` (bulk synchronous),
  ``"async"`` and ``"ssp"`` (stale synchronous parallel, with a bound on how far the
  fastest worker may lead), and returns a `TrainingHistory` (``_history``).
- `ParameterServerClassifier` (``_sklearn``) wraps all of it as a scikit-learn
  estimator.

**What it promises.**

- *Same result on any number of shards*: the optimizers are elementwise and run in the
  parameters' dtype, so a sync run with the same seed ends with bit-identical
  parameters for ``n_shards=1, 2, 3, ...``.
- *One decision per push*: with ``max_staleness=s`` a push more than ``s`` versions
  old is dropped (``push`` returns False, nothing changes). Shard 0 decides, once per
  push, and the other shards receive its answer, so all shards apply the same pushes.
- *Exactly-once with a store*: each push carries a request id per shard, each shard
  remembers what it applied and checkpoints before replying (``checkpoint_every=1``),
  and Ray restarts a killed shard, which restores its newest checkpoint. A push that
  returned is applied exactly once, and ``version()`` equals the pushes acknowledged.
- *Bounded*: every call waits at most its ``timeout`` (60 s unless the facade or the
  call says otherwise) and `train` at most its ``budget_s``; a call that crashes its
  actor on every attempt fails with `patterns.errors.ActorLostError` after a few
  retries, and the restarted actor serves the next calls.
- *Training survives failures*: Ray restarts a worker whose process dies and re-sends
  its step; `train` replaces a worker that does not answer in time (or that Ray gave
  up on) on the same partition; a shard with a store comes back by itself.

**What it does not promise.** Pushes from *several* clients at once are each applied
whole, with one staleness decision, but shards may apply two concurrent pushes in
different orders (each shard runs one caller's calls in order, not calls from
different callers). With ``"sgd"`` that changes only rounding; with momentum or adam
the shards' trajectories differ slightly. `train` pushes from one loop, so its runs
are ordered. A push that raised was not acknowledged and may have been applied on some
shards only. With ``checkpoint_every=N > 1`` a killed shard loses up to N - 1 of its
own updates. Without a store a killed shard's parameters are lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from patterns.parameter_servers._history import TrainingEvent, TrainingHistory, TrainingRecord
from patterns.parameter_servers._loop import train
from patterns.parameter_servers._models import GradientModel, SoftmaxRegression
from patterns.parameter_servers._server import ParameterServer
from patterns.parameter_servers._worker import GradientWorker

if TYPE_CHECKING:
    from patterns.parameter_servers._sklearn import ParameterServerClassifier

__all__ = [
    "GradientModel",
    "GradientWorker",
    "ParameterServer",
    "ParameterServerClassifier",
    "SoftmaxRegression",
    "TrainingEvent",
    "TrainingHistory",
    "TrainingRecord",
    "train",
]


def __getattr__(name: str) -> Any:
    # scikit-learn takes seconds of CPU to import. Every shard and worker process
    # imports this package to run its actor, and none of them needs the classifier.
    if name == "ParameterServerClassifier":
        from patterns.parameter_servers._sklearn import ParameterServerClassifier

        return ParameterServerClassifier
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
