"""Gradient workers: an actor holding one partition of the data, and its `GradientWorker` facade."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import (
    RESTARTABLE_OPTIONS,
    attach_named,
    check_actor_options,
    check_naming,
    make_actor,
    rebuild,
)
from patterns._calls import DEFAULT, check_timeout, stop_actors
from patterns._checks import check_bool, check_int, check_number, describe
from patterns._facade import ActorFacade, check_facade_timeout
from patterns.errors import PatternError
from patterns.parameter_servers._models import GradientModel, check_data, check_model

__all__ = ["GradientWorker"]

KIND = "GradientWorker"


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
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._delay_s = delay_s
        self._gradients = 0

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
        self._gradients += 1
        return float(loss), gradients

    def pid(self) -> int:
        return os.getpid()

    def stats(self) -> dict[str, Any]:
        return {
            "samples": len(self._y),
            "gradients": self._gradients,
            "batch_size": self._batch_size,
            "delay_s": self._delay_s,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "model": self._model,
            "samples": len(self._y),
            "config": {
                "batch_size": self._batch_size,
                "seed": self._seed,
                "delay_s": self._delay_s,
            },
        }


_RemoteWorkerActor = ray.remote(_WorkerActor)


class GradientWorker(ActorFacade):
    """A Ray actor that holds one partition of the training data and computes gradients.

    A worker is defined by what it computes: the gradients of ``model`` on ``(X, y)``,
    the three positional arguments (as in scikit-learn's ``fit(X, y)``, ``X`` and ``y``
    are the partition); everything else is keyword-only.

    The partition is put in Ray's object store once, when the worker is created; the
    actor keeps it in memory, so each step ships only the parameters in and the
    gradients out.

    **Failures.** The actor is restartable (``max_restarts=-1``, a few task retries,
    `patterns._calls.MAX_TASK_RETRIES`): if its process dies, Ray starts a new one on
    the same partition and re-sends the call that was running (a minibatch worker then
    starts its random sampling over from ``seed``). A call that kills the process on
    every attempt (a model that crashes on some parameters) fails with
    `patterns.errors.ActorLostError` after those retries, and the restarted actor serves
    the next calls. `replace` starts a fresh actor on the same partition (`train` does it
    for a worker that does not answer in time).

    **Lifecycle.** ``close()`` (or leaving a ``with`` block) stops the actor and waits
    until Ray reports it dead; a worker from `attach` or unpickled in a task releases it
    instead. ``kill()`` crashes the process as a SIGKILL would (Ray restarts it).

    Args:
        model: Any `GradientModel` (e.g. `SoftmaxRegression`); sent to the actor.
        X: The partition's features (2-D, numeric, finite).
        y: Its labels (1-D, as the model expects them), as many as rows of ``X``.
        batch_size: Rows sampled (without replacement) per gradient; None uses the
            whole partition every time.
        seed: Seed of the minibatch sampling.
        delay_s: Seconds to sleep after each gradient: makes a straggler on purpose.
        name: Names the actor (so another process can `attach` to it).
        namespace: The Ray namespace of the named actor (None: the job's).
        actor_options: Options for the actor (``num_cpus``, ``resources``,
            ``max_restarts``, ...; not ``name``/``namespace``, which are arguments).
        timeout: Seconds each call waits by default (`patterns._calls.DEFAULT_TIMEOUT_S`
            unless given; None: no bound).

    Raises:
        TypeError: If ``model`` lacks a protocol method, or ``X`` or ``y`` is not an
            array of numbers (bool arrays are refused).
        ValueError: If ``X`` is not 2-D or ``y`` not 1-D, a list is ragged, a value is
            not finite, ``X`` and ``y`` differ in length or are empty, ``batch_size < 1``,
            ``seed < 0`` or ``delay_s < 0``.

    Examples:
        >>> import numpy as np
        >>> from patterns import SoftmaxRegression
        >>> model = SoftmaxRegression(n_features=2, n_classes=2)
        >>> X, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
        >>> with GradientWorker(model, X, y) as worker:
        ...     loss, grads = worker.compute_gradients(model.init_params())
        >>> round(loss, 2), sorted(grads)
        (0.69, ['W', 'b'])
    """

    _actor: ActorHandle[Any]
    _data: tuple[ObjectRef[np.ndarray], ObjectRef[np.ndarray]] | None

    def __init__(
        self,
        model: GradientModel,
        X: Any,
        y: Any,
        *,
        batch_size: int | None = None,
        seed: int = 0,
        delay_s: float = 0.0,
        name: str | None = None,
        namespace: str | None = None,
        actor_options: Mapping[str, Any] | None = None,
        timeout: Any = DEFAULT,
    ) -> None:
        model = check_model(model)
        X_array, y_array = check_data(X, y)
        if batch_size is not None:
            batch_size = check_int("batch_size", batch_size, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        delay_s = check_number("delay_s", delay_s, minimum=0.0)
        options = check_actor_options(actor_options, defaults=RESTARTABLE_OPTIONS)
        name, namespace = check_naming(name, namespace, options, facade=KIND)
        seconds = check_facade_timeout(timeout)
        # Put once: the replacement of a dead actor reads the same objects, and the
        # driver need not keep its own copy of the partition.
        data = (ray.put(X_array), ray.put(y_array))
        config = {"batch_size": batch_size, "seed": seed, "delay_s": delay_s}
        if name is not None:
            options |= {"name": name} | ({"namespace": namespace} if namespace else {})
        actor = self._start_actor(model, data, config, options)
        self._setup(actor, model, data, len(y_array), config, options, name, namespace, seconds)
        self._facade_owned = True

    @staticmethod
    def _start_actor(
        model: GradientModel,
        data: tuple[ObjectRef[np.ndarray], ObjectRef[np.ndarray]],
        config: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> ActorHandle[Any]:
        c = config
        return make_actor(
            _RemoteWorkerActor, options, model, *data, c["batch_size"], c["seed"], c["delay_s"]
        )

    def _setup(
        self,
        actor: ActorHandle[Any],
        model: GradientModel,
        data: tuple[ObjectRef[np.ndarray], ObjectRef[np.ndarray]] | None,
        samples: int,
        config: dict[str, Any],
        options: dict[str, Any] | None,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
    ) -> None:
        self._actor = actor
        self._model = model
        self._data = data
        self._samples = samples
        self._config = config
        self._options = options
        self.replacements = 0
        self._init_facade([actor], name=name, namespace=namespace, owned=False, timeout=timeout)

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Any = DEFAULT,
    ) -> GradientWorker:
        """A facade for the running worker ``name``.

        It computes gradients like the original, and releases the actor on ``close()``
        unless ``own=True`` (then ``close()`` stops it). It cannot `replace` the actor:
        the partition's objects belong to the process that created the worker.

        Raises:
            ValueError: No live actor of that name.
            TypeError: The actor of that name is not a GradientWorker.
        """
        own = check_bool("own", own)
        seconds = check_facade_timeout(timeout)
        actor, info = attach_named(name, namespace, kind=KIND)
        state = (actor, info["model"], None, info["samples"], info["config"], None)
        return rebuild(cls, *state, name, namespace, seconds, owned=own)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) shares the actor and does not own it.
        state = (self._actor, self._model, self._data, self._samples, self._config, None)
        return (rebuild, (GradientWorker, *state, self.name, self.namespace, self.timeout))

    def __repr__(self) -> str:
        named = f", name={self.name!r}" if self.name is not None else ""
        return f"GradientWorker({self._model!r}, samples={self._samples}{named})"

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
        self._check_open("compute_gradients_async")
        if not isinstance(params, Mapping | ObjectRef):
            msg = (
                f"'params' must be a dict of arrays or an ObjectRef to one, got {describe(params)}"
            )
            raise TypeError(msg)
        ref: ObjectRef[tuple[float, dict[str, np.ndarray]]] = self._actor.compute_gradients.remote(
            params
        )
        return ref

    def compute_gradients(
        self, params: Mapping[str, np.ndarray] | ObjectRef[Any], *, timeout: Any = DEFAULT
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Compute ``(loss, gradients)`` of the model on this worker's data at ``params``.

        Args:
            params: Name -> array, or an ObjectRef to such a dict.
            timeout: Seconds to wait (default: the worker's timeout).

        Returns:
            The loss (a float) and name -> gradient array.

        Raises:
            patterns.errors.CallTimeoutError: No reply within ``timeout``.
            patterns.errors.ActorLostError: The call killed the worker's process on
                every attempt.
            patterns.errors.RemoteCallError: The model raised (``remote_type`` names
                the exception).
        """
        check_timeout(timeout)
        ref = self.compute_gradients_async(params)
        result: tuple[float, dict[str, np.ndarray]] = self._get(
            ref, timeout=timeout, method="compute_gradients"
        )
        return result

    def replace(self, *, timeout: Any = DEFAULT) -> None:
        """Start a new actor on the same partition, once the old one's process is gone.

        The old actor is stopped, and the new one is created only when Ray reports the
        old one dead *and* its process has exited, so the two never run side by side (a
        process that is stopped or stuck takes Ray a few seconds to kill). Needs the
        facade that created the worker: a copy or an attached worker does not own the
        actor (nor the partition's objects).

        Args:
            timeout: Seconds for the old actor to stop (default: the worker's timeout).

        Raises:
            patterns.errors.CallTimeoutError: The old process still ran after
                ``timeout`` (no new actor was started).
            patterns.errors.PatternError: This facade does not own the actor.

        Examples:
            >>> import numpy as np
            >>> from patterns import SoftmaxRegression
            >>> worker = GradientWorker(SoftmaxRegression(2, 2), np.eye(2), np.array([0, 1]))
            >>> old = worker.pids()
            >>> worker.replace()
            >>> worker.pids() != old, worker.replacements
            (True, 1)
            >>> worker.close()
        """
        seconds = self._seconds(timeout)
        self._check_open("replace")
        if not self.owned or self._data is None or self._options is None:
            msg = (
                f"{self._who}: replace needs the facade that created the worker (this one is "
                "a copy or attached: it does not own the actor)"
            )
            raise PatternError(msg)
        stop_actors([self._actor], timeout=seconds, who=self._who)
        self._actor = self._start_actor(self._model, self._data, self._config, self._options)
        self._facade_actors = [self._actor]
        self.replacements += 1

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        ref: ObjectRef[dict[str, Any]] = self._actor.stats.remote()
        return ref

    def _base_stats(self) -> dict[str, Any]:
        return {**super()._base_stats(), "replacements": self.replacements}

    def stats(self, *, timeout: Any = DEFAULT) -> dict[str, Any]:
        """Return the common facade entries and the worker's own.

        Besides the entries every facade reports (``kind``, ``name``, ``namespace``,
        ``actors``, ``owned``, ``closed``, ``timeout_s``): ``samples``, ``gradients``
        (computed by the current process), ``batch_size``, ``delay_s`` and
        ``replacements`` (by this facade's `replace`).

        Args:
            timeout: Seconds to wait (default: the worker's timeout).
        """
        return super().stats(timeout=timeout)
