"""Models, gradient workers and the training loop (sync, async, stale synchronous parallel)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import ray
from ray import ObjectRef
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError

from patterns._actors import check_actor_options, make_actor, rebuild
from patterns._checks import check_choice, check_int, check_number, check_positive_float, describe
from patterns.parameter_servers._server import ParameterServer

__all__ = [
    "GradientModel",
    "GradientWorker",
    "SoftmaxRegression",
    "TrainingEvent",
    "TrainingHistory",
    "TrainingRecord",
    "train",
]

MODES = ("sync", "async", "ssp")

# A worker whose actor keeps dying is given up on after this many replacements in one
# `train` call: something is wrong with it (its data, its memory), not bad luck.
MAX_REPLACEMENTS = 5


# --- models ---------------------------------------------------------------------------------


@runtime_checkable
class GradientModel(Protocol):
    """What `GradientWorker` and `train` need from a model: any object with these methods.

    The model object holds no parameters: they live in the `ParameterServer`, and
    each method receives them as a dict of arrays. Keep it small and picklable; it is
    sent to every worker.

    Examples:
        >>> isinstance(SoftmaxRegression(4, 3), GradientModel)
        True
    """

    def init_params(self) -> dict[str, np.ndarray]:
        """The initial parameters: name -> array."""
        ...

    def loss_and_gradients(
        self, params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """The loss on ``(X, y)`` and its gradient for each parameter array."""
        ...

    def predict(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Predicted labels for the rows of ``X``."""
        ...


class SoftmaxRegression:
    """Multinomial logistic regression in numpy: ``softmax(X @ W + b)``.

    Parameters ``W`` (``n_features x n_classes``) and ``b`` (``n_classes``); the loss
    is the mean cross-entropy plus ``l2 / 2 * ||W||^2``. Labels are class indices
    ``0 .. n_classes - 1``. It implements the `GradientModel` protocol.

    Args:
        n_features: Columns of ``X``.
        n_classes: Number of classes (>= 2).
        l2: L2 penalty on ``W`` (>= 0).
        seed: Seed of the small random initial ``W`` (``b`` starts at 0).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_features < 1``, ``n_classes < 2`` or ``l2 < 0``.

    Examples:
        >>> import numpy as np
        >>> model = SoftmaxRegression(n_features=2, n_classes=2)
        >>> params = {"W": np.array([[1.0, -1.0], [0.0, 0.0]]), "b": np.zeros(2)}
        >>> model.predict(params, np.array([[3.0, 0.0], [-3.0, 0.0]])).tolist()
        [0, 1]
        >>> loss, grads = model.loss_and_gradients(params, np.array([[3.0, 0.0]]), np.array([0]))
        >>> round(loss, 4), grads["W"].shape
        (0.0025, (2, 2))
    """

    def __init__(self, n_features: int, n_classes: int, *, l2: float = 0.0, seed: int = 0):
        self.n_features = check_int("n_features", n_features, minimum=1)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.l2 = check_number("l2", l2, minimum=0.0)
        self.seed = check_int("seed", seed, minimum=0)

    def __repr__(self) -> str:
        return (
            f"SoftmaxRegression(n_features={self.n_features}, n_classes={self.n_classes}, "
            f"l2={self.l2:g}, seed={self.seed})"
        )

    def init_params(self) -> dict[str, np.ndarray]:
        """Small random ``W`` (normal, scale 0.01, from ``seed``) and zero ``b``."""
        rng = np.random.default_rng(self.seed)
        return {
            "W": rng.normal(0.0, 0.01, size=(self.n_features, self.n_classes)),
            "b": np.zeros(self.n_classes),
        }

    def predict_proba(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per sample."""
        logits = np.asarray(X, dtype=np.float64) @ params["W"] + params["b"]
        logits -= logits.max(axis=1, keepdims=True)  # exp() of the largest logit is 1
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return np.asarray(probs)

    def loss_and_gradients(
        self, params: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy (+ L2) on ``(X, y)`` and its gradients for ``W`` and ``b``."""
        X = np.asarray(X, dtype=np.float64)
        rows = np.arange(len(y))
        probs = self.predict_proba(params, X)
        loss = float(-np.log(np.maximum(probs[rows, y], 1e-300)).mean())
        probs[rows, y] -= 1.0  # d(loss)/d(logits), times n
        probs /= len(y)
        grad_w = X.T @ probs
        if self.l2:
            loss += 0.5 * self.l2 * float(np.sum(params["W"] * params["W"]))
            grad_w += self.l2 * params["W"]
        return loss, {"W": grad_w, "b": probs.sum(axis=0)}

    def predict(self, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
        """The most likely class index of each row of ``X``."""
        logits = np.asarray(X, dtype=np.float64) @ params["W"] + params["b"]
        return np.asarray(np.argmax(logits, axis=1))


def _check_model(model: object) -> GradientModel:
    missing = [
        name
        for name in ("init_params", "loss_and_gradients", "predict")
        if not callable(getattr(model, name, None))
    ]
    if missing:
        msg = (
            f"'model' must have init_params, loss_and_gradients and predict "
            f"(the GradientModel protocol); {describe(model)} lacks {', '.join(missing)}"
        )
        raise TypeError(msg)
    return model  # type: ignore[return-value]


def check_data(X: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    """``X`` as a 2-D numeric array and ``y`` as a 1-D array of the same length."""
    X_array = np.asarray(X)
    if X_array.dtype.kind not in "iuf" or X_array.ndim != 2:
        msg = f"'X' must be a 2-D numeric array, got {describe(X)}"
        raise TypeError(msg)
    y_array = np.asarray(y)
    if y_array.ndim != 1:
        msg = f"'y' must be a 1-D array, got shape {y_array.shape}"
        raise ValueError(msg)
    if len(X_array) != len(y_array):
        msg = f"'X' and 'y' must have the same length, got {len(X_array)} and {len(y_array)}"
        raise ValueError(msg)
    if len(X_array) == 0:
        msg = "'X' and 'y' must hold at least one sample, got 0"
        raise ValueError(msg)
    return X_array, y_array


# --- gradient workers -----------------------------------------------------------------------


class _WorkerActor:
    """Keeps one data partition in memory and computes gradients on it."""

    def __init__(
        self,
        model: GradientModel,
        X: np.ndarray,
        y: np.ndarray,
        batch_size: int | None,
        seed: int,
        delay_s: float,
    ) -> None:
        self._model = model
        self._X, self._y = X, y
        self._batch_size = batch_size
        self._rng = np.random.default_rng(seed)
        self._delay_s = delay_s

    def compute_gradients(
        self, params: Mapping[str, np.ndarray]
    ) -> tuple[float, dict[str, np.ndarray]]:
        X, y = self._X, self._y
        if self._batch_size is not None and self._batch_size < len(y):
            rows = self._rng.choice(len(y), size=self._batch_size, replace=False)
            X, y = X[rows], y[rows]
        loss, gradients = self._model.loss_and_gradients(params, X, y)
        if self._delay_s:
            time.sleep(self._delay_s)  # a straggler: a slower machine, a busier node
        return float(loss), gradients

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return {"kind": "GradientWorker", "samples": len(self._y), "pid": os.getpid()}


_RemoteWorkerActor = ray.remote(_WorkerActor)


class GradientWorker:
    """A Ray actor that holds one partition of the training data and computes gradients.

    The partition is put in Ray's object store once, when the worker is created; the
    actor keeps it in memory, so each step ships only the parameters in and the
    gradients out. If the actor dies, `replace` starts a new one on the same partition
    (`train` does it for you).

    Args:
        model: Any `GradientModel` (e.g. `SoftmaxRegression`); sent to the actor.
        X: The partition's features (2-D, numeric).
        y: Its labels (1-D, as the model expects them), as many as rows of ``X``.
        batch_size: Rows sampled (without replacement) per gradient; None uses the
            whole partition every time.
        seed: Seed of the minibatch sampling.
        delay_s: Seconds to sleep after each gradient: makes a straggler on purpose.
        actor_options: Options for the actor (``num_cpus``, ``resources``, ...).

    Raises:
        TypeError: If ``model`` lacks a protocol method or ``X`` is not a 2-D numeric array.
        ValueError: If ``X`` and ``y`` differ in length or are empty, ``batch_size < 1``,
            ``seed < 0`` or ``delay_s < 0``.

    Examples:
        >>> import numpy as np
        >>> model = SoftmaxRegression(n_features=2, n_classes=2)
        >>> X, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
        >>> worker = GradientWorker(model, X, y)
        >>> loss, grads = worker.compute_gradients(model.init_params())
        >>> round(loss, 2), sorted(grads)
        (0.69, ['W', 'b'])
        >>> worker.kill()
    """

    def __init__(
        self,
        model: GradientModel,
        X: Any,
        y: Any,
        *,
        batch_size: int | None = None,
        seed: int = 0,
        delay_s: float = 0.0,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        model = _check_model(model)
        X_array, y_array = check_data(X, y)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        delay_s = check_number("delay_s", delay_s, minimum=0.0)
        options = check_actor_options(actor_options)
        # Put once: the replacement of a dead actor reads the same objects, and the
        # driver need not keep its own copy of the partition.
        data = (ray.put(X_array), ray.put(y_array))
        config = {"batch_size": batch_size, "seed": seed, "delay_s": delay_s}
        self._setup(None, model, data, len(y_array), config, options)
        self._start()

    def _setup(
        self,
        actor: ActorHandle[Any] | None,
        model: GradientModel,
        data: tuple[ObjectRef[np.ndarray], ObjectRef[np.ndarray]],
        samples: int,
        config: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        self._actor = actor
        self._model = model
        self._data = data
        self._samples = samples
        self._config = config
        self._options = options
        self.replacements = 0

    def _start(self) -> None:
        c = self._config
        self._actor = make_actor(
            _RemoteWorkerActor,
            self._options,
            self._model,
            *self._data,
            c["batch_size"],
            c["seed"],
            c["delay_s"],
        )

    def __reduce__(self) -> tuple[Any, ...]:
        state = (self._actor, self._model, self._data, self._samples, self._config, self._options)
        return (rebuild, (GradientWorker, *state))

    def __repr__(self) -> str:
        return f"GradientWorker({self._model!r}, samples={self._samples})"

    @property
    def model(self) -> GradientModel:
        """The model the worker computes gradients of."""
        return self._model

    @property
    def samples(self) -> int:
        """Rows in the worker's partition."""
        return self._samples

    @property
    def delay_s(self) -> float:
        """Seconds the worker sleeps after each gradient (a straggler when > 0)."""
        return float(self._config["delay_s"])

    @property
    def actor(self) -> ActorHandle[Any]:
        """The current Ray actor handle (a new one after `replace`)."""
        assert self._actor is not None
        return self._actor

    def compute_gradients_async(
        self, params: Mapping[str, np.ndarray] | ObjectRef[Any]
    ) -> ObjectRef[tuple[float, dict[str, np.ndarray]]]:
        """Start a gradient computation on ``params`` and return at once.

        Args:
            params: Name -> array, or an ObjectRef to such a dict (e.g. from
                ``ray.put``, so several workers share one copy).

        Returns:
            An ObjectRef to ``(loss, gradients)``.
        """
        if not isinstance(params, Mapping | ObjectRef):
            msg = (
                f"'params' must be a dict of arrays or an ObjectRef to one, got {describe(params)}"
            )
            raise TypeError(msg)
        ref: ObjectRef[tuple[float, dict[str, np.ndarray]]] = self.actor.compute_gradients.remote(
            params
        )
        return ref

    def compute_gradients(
        self, params: Mapping[str, np.ndarray] | ObjectRef[Any], *, timeout: float | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Compute ``(loss, gradients)`` of the model on this worker's data at ``params``.

        Args:
            params: Name -> array, or an ObjectRef to such a dict.
            timeout: Seconds to wait (None waits forever).

        Returns:
            The loss (a float) and name -> gradient array.
        """
        timeout = None if timeout is None else check_positive_float("timeout", timeout)
        return ray.get(self.compute_gradients_async(params), timeout=timeout)

    def pid(self, *, timeout: float | None = None) -> int:
        """Return the process id of the worker's actor (for fault demos)."""
        timeout = None if timeout is None else check_positive_float("timeout", timeout)
        ref: ObjectRef[int] = self.actor.pid.remote()
        return int(ray.get(ref, timeout=timeout))

    def replace(self) -> None:
        """Start a new actor on the same partition (killing the old one if it still runs).

        Examples:
            >>> import numpy as np
            >>> worker = GradientWorker(SoftmaxRegression(2, 2), np.eye(2), np.array([0, 1]))
            >>> old = worker.pid()
            >>> worker.replace()
            >>> worker.pid() != old, worker.replacements
            (True, 1)
            >>> worker.kill()
        """
        self.kill()
        self._start()
        self.replacements += 1

    def kill(self) -> None:
        """Terminate the worker's actor (its partition stays available to `replace`)."""
        if self._actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(self._actor, no_restart=True)


# --- training history -----------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRecord:
    """One update of a training run (or its start, ``update=0``).

    Attributes:
        update: Pushes sent so far (0: before the first).
        version: The server's version after this update.
        seconds: Wall-clock seconds since training started.
        loss: The training loss the gradients reported (the workers' mean in sync
            mode); None for the start record.
        accuracy: Accuracy on ``eval_data`` after this update, when it was evaluated.
        worker: The worker whose gradients were pushed (None in sync mode: all).
        staleness: Versions applied since the gradients' parameters were pulled.
        applied: False if the server dropped the push as stale.

    Examples:
        >>> TrainingRecord(update=1, version=1, seconds=0.1, loss=2.3, accuracy=None)
        TrainingRecord(update=1, version=1, seconds=0.1, loss=2.3, accuracy=None, worker=None,
                       staleness=0, applied=True)
    """

    update: int
    version: int
    seconds: float
    loss: float | None
    accuracy: float | None
    worker: int | None = None
    staleness: int = 0
    applied: bool = True


@dataclass(frozen=True)
class TrainingEvent:
    """Something that happened to a training run besides updates: a worker replaced.

    Attributes:
        update: Pushes sent when it happened.
        seconds: Wall-clock seconds since training started.
        kind: ``"worker_replaced"``.
        worker: The index of the worker concerned.
        detail: The error that caused it.

    Examples:
        >>> TrainingEvent(3, 0.5, "worker_replaced", 1, "ActorDiedError").kind
        'worker_replaced'
    """

    update: int
    seconds: float
    kind: str
    worker: int
    detail: str


@dataclass
class TrainingHistory:
    """What `train` did: one record per update, the events, and the final accuracy.

    Attributes:
        mode: ``"sync"``, ``"async"`` or ``"ssp"``.
        workers: How many workers trained.
        steps: Gradient steps per worker.
        records: A `TrainingRecord` per update, plus one at the start when there was
            evaluation data.
        events: A `TrainingEvent` per replaced worker.
        seconds: Wall-clock duration of the run.

    Examples:
        >>> history = TrainingHistory("sync", workers=2, steps=1)
        >>> history.records.append(TrainingRecord(1, 1, 0.2, 0.7, 0.9))
        >>> history.final_accuracy, history.time_to_accuracy(0.8)
        (0.9, 0.2)
    """

    mode: str
    workers: int
    steps: int
    records: list[TrainingRecord] = field(default_factory=list)
    events: list[TrainingEvent] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float | None:
        """Accuracy on the evaluation data after the last update (None without it)."""
        evaluated = [r.accuracy for r in self.records if r.accuracy is not None]
        return evaluated[-1] if evaluated else None

    @property
    def updates(self) -> int:
        """Pushes sent."""
        return max((r.update for r in self.records), default=0)

    @property
    def applied(self) -> int:
        """Pushes the server applied."""
        return sum(1 for r in self.records if r.update > 0 and r.applied)

    @property
    def dropped(self) -> int:
        """Pushes the server dropped as stale."""
        return sum(1 for r in self.records if r.update > 0 and not r.applied)

    @property
    def replaced_workers(self) -> list[int]:
        """Indexes of the workers replaced, once per replacement."""
        return [e.worker for e in self.events if e.kind == "worker_replaced"]

    def accuracy_curve(self) -> tuple[list[float], list[float]]:
        """Seconds and accuracy of every evaluated record (for a plot)."""
        points = [(r.seconds, r.accuracy) for r in self.records if r.accuracy is not None]
        return [s for s, _ in points], [a for _, a in points]

    def time_to_accuracy(self, target: float) -> float | None:
        """Seconds until accuracy first reached ``target`` (None if it never did)."""
        for seconds, accuracy in zip(*self.accuracy_curve(), strict=True):
            if accuracy >= target:
                return seconds
        return None


# --- the training loop ----------------------------------------------------------------------


def _check_train_args(
    server: object,
    workers: object,
    mode: object,
    steps: object,
    staleness: object,
    eval_data: object,
    eval_every: object,
    timeout: object,
) -> tuple[list[GradientWorker], str, int, int | None, tuple[np.ndarray, np.ndarray] | None]:
    if not isinstance(server, ParameterServer):
        msg = f"'server' must be a ParameterServer, got {describe(server)}"
        raise TypeError(msg)
    if not isinstance(workers, Sequence) or isinstance(workers, str):
        msg = f"'workers' must be a list of GradientWorker, got {describe(workers)}"
        raise TypeError(msg)
    if not workers:
        msg = "'workers' must hold at least one GradientWorker, got []"
        raise ValueError(msg)
    for worker in workers:
        if not isinstance(worker, GradientWorker):
            msg = f"'workers' must hold GradientWorker objects, got {describe(worker)}"
            raise TypeError(msg)
    mode = check_choice("mode", mode, MODES)
    steps = check_int("steps", steps, minimum=1)
    if staleness is not None:
        staleness = check_int("staleness", staleness, minimum=0)
        if mode != "ssp":
            msg = f"'staleness' only applies to mode='ssp', got mode={mode!r}"
            raise ValueError(msg)
    elif mode == "ssp":
        msg = "mode='ssp' needs 'staleness' (how many steps the fastest worker may lead)"
        raise ValueError(msg)
    data = None
    if eval_data is not None:
        if not isinstance(eval_data, tuple | list) or len(eval_data) != 2:
            msg = f"'eval_data' must be a pair (X, y), got {describe(eval_data)}"
            raise TypeError(msg)
        data = check_data(*eval_data)
    if eval_every is not None:
        check_int("eval_every", eval_every, minimum=1)
        if data is None:
            msg = "'eval_every' only applies with 'eval_data', got eval_data=None"
            raise ValueError(msg)
    if timeout is not None:
        check_positive_float("timeout", timeout)
    return list(workers), mode, steps, staleness, data


class _Run:
    """The state of one `train` call: clock, records, evaluation, worker replacement."""

    def __init__(
        self,
        server: ParameterServer,
        workers: list[GradientWorker],
        mode: str,
        steps: int,
        data: tuple[np.ndarray, np.ndarray] | None,
        eval_every: int | None,
        timeout: float | None,
    ) -> None:
        self.server = server
        self.workers = workers
        self.model = workers[0].model
        self.data = data
        self.eval_every = eval_every
        self.timeout = timeout
        self.history = TrainingHistory(mode, workers=len(workers), steps=steps)
        self.started = time.perf_counter()
        self.update = 0
        self.version = 0
        self.replaced = [0] * len(workers)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def accuracy(self, params: Mapping[str, np.ndarray]) -> float | None:
        if self.data is None:
            return None
        X, y = self.data
        return float(np.mean(self.model.predict(params, X) == y))

    def due(self, last: bool) -> bool:
        if self.data is None:
            return False
        return last or (self.eval_every is not None and self.update % self.eval_every == 0)

    def pull(self) -> tuple[dict[str, np.ndarray], int]:
        return self.server._pull_with_version(self.timeout)

    def start(self) -> tuple[dict[str, np.ndarray], int]:
        # Actors start in the background: wait for every one, so that the clock
        # measures training, not process start-up.
        ray.get([worker.actor.pid.remote() for worker in self.workers], timeout=self.timeout)
        params, self.version = self.pull()
        self.started = time.perf_counter()
        if self.data is not None:
            self.history.records.append(
                TrainingRecord(0, self.version, 0.0, None, self.accuracy(params))
            )
        return params, self.version

    def push(
        self,
        gradients: Mapping[str, np.ndarray],
        version: int,
        loss: float,
        worker: int | None,
    ) -> bool:
        staleness = max(0, self.version - version)
        applied = self.server.push(gradients, version=version, timeout=self.timeout)
        self.update += 1
        if applied:
            self.version += 1
        self.history.records.append(
            TrainingRecord(
                self.update, self.version, self.seconds(), loss, None, worker, staleness, applied
            )
        )
        return applied

    def evaluate(self, params: Mapping[str, np.ndarray]) -> None:
        """Put the accuracy of ``params`` into the latest record."""
        last = self.history.records[-1]
        self.history.records[-1] = TrainingRecord(
            last.update,
            last.version,
            last.seconds,
            last.loss,
            self.accuracy(params),
            last.worker,
            last.staleness,
            last.applied,
        )

    def replace(self, index: int, error: BaseException) -> None:
        self.replaced[index] += 1
        if self.replaced[index] > MAX_REPLACEMENTS:
            msg = f"worker {index} died {self.replaced[index]} times in this run: giving up"
            raise RuntimeError(msg) from error
        self.workers[index].replace()
        self.history.events.append(
            TrainingEvent(
                self.update, self.seconds(), "worker_replaced", index, type(error).__name__
            )
        )

    def finish(self) -> TrainingHistory:
        self.history.seconds = self.seconds()
        return self.history


def _gather(run: _Run, params_ref: ObjectRef[Any]) -> list[tuple[float, dict[str, np.ndarray]]]:
    """Every worker's gradients on the same parameters; dead workers replaced and re-asked."""
    refs = [worker.compute_gradients_async(params_ref) for worker in run.workers]
    results: list[tuple[float, dict[str, np.ndarray]]] = []
    for index, ref in enumerate(refs):
        while True:
            try:
                results.append(ray.get(ref, timeout=run.timeout))
                break
            except RayActorError as error:
                run.replace(index, error)
                ref = run.workers[index].compute_gradients_async(params_ref)
    return results


def _train_sync(run: _Run, steps: int) -> None:
    params, version = run.start()
    n = len(run.workers)
    for step in range(steps):
        results = _gather(run, ray.put(params))
        # Summed in worker order, then divided: the same arithmetic on every run.
        mean: dict[str, np.ndarray] = {
            name: np.asarray(sum(g[name] for _, g in results)) / n for name in results[0][1]
        }
        loss = sum(loss for loss, _ in results) / n
        run.push(mean, version, loss, None)
        params, version = run.pull()
        if run.due(last=step == steps - 1):
            run.evaluate(params)


def _train_async(run: _Run, steps: int, staleness: int | None) -> None:
    """Async (``staleness=None``) or stale synchronous parallel (a bound on the lead)."""
    params, version = run.start()
    n = len(run.workers)
    clocks = [0] * n  # gradients each worker has had pushed
    pending: dict[ObjectRef[Any], tuple[int, int]] = {}
    waiting: list[int] = []  # workers held back by the staleness bound
    params_ref = ray.put(params)

    def submit(index: int) -> None:
        pending[run.workers[index].compute_gradients_async(params_ref)] = (index, version)

    for index in range(n):
        submit(index)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=run.timeout)
        if not ready:
            msg = f"no worker returned gradients within {run.timeout} s"
            raise GetTimeoutError(msg)
        index, computed_on = pending.pop(ready[0])
        try:
            loss, gradients = ray.get(ready[0])
        except RayActorError as error:
            run.replace(index, error)
            params, version = run.pull()
            params_ref = ray.put(params)
            submit(index)
            continue
        run.push(gradients, computed_on, loss, index)
        clocks[index] += 1
        if clocks[index] < steps:
            waiting.append(index)
        # SSP (Ho et al. 2013): a worker may start its next step only while it leads
        # the slowest worker by at most `staleness` steps; async has no bound.
        slowest = min(clocks)
        starting = [
            held for held in waiting if staleness is None or clocks[held] - slowest <= staleness
        ]
        evaluate = run.due(last=sum(clocks) == n * steps)
        if starting or evaluate:
            params, version = run.pull()  # the parameters right after this push
            params_ref = ray.put(params)
        if evaluate:
            run.evaluate(params)
        for held in starting:
            waiting.remove(held)
            submit(held)


def train(
    server: ParameterServer,
    workers: Sequence[GradientWorker],
    *,
    mode: str = "sync",
    steps: int,
    staleness: int | None = None,
    eval_data: tuple[Any, Any] | None = None,
    eval_every: int | None = None,
    timeout: float | None = None,
) -> TrainingHistory:
    """Train the model of ``workers`` on ``server``: each worker takes ``steps`` steps.

    The loop runs in the calling process; the workers compute, the server applies.

    - ``"sync"`` (bulk synchronous): each step, every worker computes gradients on
      the same parameters; the loop waits for all of them, averages and pushes once.
      ``steps`` pushes; the slowest worker sets the pace.
    - ``"async"``: each worker's gradients are pushed as soon as they arrive (a
      ``ray.wait`` loop) and that worker goes on with freshly pulled parameters while
      the others are still computing. ``steps * len(workers)`` pushes, each
      computed on parameters that may be a few versions old.
    - ``"ssp"`` (stale synchronous parallel, Ho et al. 2013): as async, but a worker
      may be at most ``staleness`` steps ahead of the slowest one; it waits otherwise.
      ``staleness=0`` is lock-step; a large bound is async.

    The server's own ``max_staleness`` still applies: pushes it drops are recorded
    with ``applied=False``. A worker whose actor dies is replaced on the same partition
    (`GradientWorker.replace`), its step is computed again, and the history records a
    `TrainingEvent`. A server shard that dies comes back by itself if the server has
    a checkpoint store; without one, the push fails and so does `train`.

    `train` assumes it is the only client pushing to ``server`` while it runs (the
    versions it records are counted on that basis).

    Args:
        server: The `ParameterServer` holding the model's parameters.
        workers: One or more `GradientWorker` objects sharing one model.
        mode: ``"sync"``, ``"async"`` or ``"ssp"``.
        steps: Gradient steps per worker (>= 1).
        staleness: For ``"ssp"`` only, and required there: the bound (>= 0).
        eval_data: ``(X, y)`` to measure accuracy on, with the model's ``predict``.
        eval_every: Measure accuracy every this many updates (and after the last);
            without it, only at the start and the end.
        timeout: Seconds to wait for any one result (None waits forever).

    Returns:
        The `TrainingHistory` of the run.

    Raises:
        TypeError: If ``server`` or ``workers`` has the wrong type.
        ValueError: If ``mode`` is unknown, ``steps < 1``, ``staleness < 0``,
            ``staleness`` is missing for ``"ssp"`` (or given for another mode), or
            ``eval_data``'s ``X`` and ``y`` differ in length.
        RuntimeError: If a worker died more than 5 times in the run.

    Examples:
        >>> import numpy as np
        >>> X = np.array([[1.0, 0.0], [0.0, 1.0]] * 10); y = np.array([0, 1] * 10)
        >>> model = SoftmaxRegression(2, 2)
        >>> server = ParameterServer(model.init_params(), learning_rate=0.5)
        >>> workers = [GradientWorker(model, X[:10], y[:10]), GradientWorker(model, X[10:], y[10:])]
        >>> history = train(server, workers, mode="sync", steps=5, eval_data=(X, y))
        >>> history.updates, server.version(), history.final_accuracy
        (5, 5, 1.0)
        >>> server.kill(); [w.kill() for w in workers]
        [None, None]
    """
    worker_list, mode, steps, staleness, data = _check_train_args(
        server, workers, mode, steps, staleness, eval_data, eval_every, timeout
    )
    timeout = None if timeout is None else float(timeout)
    eval_every = None if eval_every is None else int(eval_every)
    run = _Run(server, worker_list, mode, steps, data, eval_every, timeout)
    if mode == "sync":
        _train_sync(run, steps)
    else:
        _train_async(run, steps, staleness)
    return run.finish()
