"""The agent actor and its facades: `Agent` and the four agents users create.

One actor class serves every kind of agent: a `StatefulActor` holding an `AgentState`
(``_state.py``): it restores itself in ``__init__`` and saves before it acknowledges a
change. The facades are `ActorFacade`s: they check every argument, number the
mutating calls when the agent has a store, bound every wait, and offer typed sync
methods with ``*_async`` twins.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import (
    actor_info,
    attach_named,
    check_kind,
    check_options_and_naming,
    make_actor,
    rebuild,
    restartable_defaults,
)
from patterns._calls import DEFAULT, Timeout
from patterns._checkpointer import check_store_args, default_key
from patterns._checks import check_int, check_number, describe
from patterns._facade import ActorFacade, check_facade_timeout
from patterns._ray_internals import actor_id_hex
from patterns._requests import RequestIds, as_request
from patterns._stateful import StatefulActor
from patterns.agents._state import AgentState, LearningState, LinearState, state_class
from patterns.agents._validate import (
    check_action,
    check_actions,
    check_context,
    check_contexts,
    check_n_actions,
    check_reward,
    check_rewards,
)
from patterns.checkpointing import CheckpointStore

__all__ = ["Agent", "LearningAgent", "LinUCBAgent", "RandomAgent", "ThompsonSamplingAgent"]

A = TypeVar("A", bound="Agent")


def _fresh_state(kind: str, params: dict[str, Any]) -> AgentState:
    return state_class(kind)(**params)


class _AgentActor(StatefulActor):
    """The actor: an agent state on the library's stateful base (restore, apply, save)."""

    def __init__(
        self,
        kind: str,
        params: dict[str, Any],
        store: CheckpointStore | None,
        key: str | None,
        checkpoint_every: int,
        info: dict[str, Any],
        legacy_keys: Sequence[str] = (),
        replica: bool = False,
    ) -> None:
        super().__init__(
            fresh=functools.partial(_fresh_state, kind, params),
            restore=AgentState.from_snapshot,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            info=info,
            legacy_keys=legacy_keys,
        )
        if replica:
            # A replica keeps what it learns between merges (see _replicas.py), from its
            # first start on; a restart restores the deltas with the rest of the state.
            state = self._linear()
            if state.dA is None:
                state.track_deltas()
                self._checkpointer.save(state.snapshot())

    def _describe(self) -> dict[str, Any]:
        return {"n_features": self._state.n_features}

    # Predictions change no learnt state (at most the random stream): not checkpointed.
    def make_prediction(self, context: Any) -> int:
        return int(self._state.make_prediction(context))

    def make_predictions(self, contexts: Any) -> list[int]:
        return list(self._state.make_predictions(contexts))

    def receive_feedback(
        self,
        context: Any,
        action: int,
        reward: float,
        client: int | None = None,
        seq: int | None = None,
    ) -> None:
        request = as_request(client, seq)
        self._apply(self._state.receive_feedback, context, action, reward, request)

    def receive_feedbacks(
        self,
        contexts: Any,
        actions: Any,
        rewards: Any,
        client: int | None = None,
        seq: int | None = None,
    ) -> None:
        request = as_request(client, seq)
        self._apply(self._state.receive_feedbacks, contexts, actions, rewards, request)

    def get_params(self) -> dict[str, Any]:
        return dict(self._state.get_params())

    def set_params(
        self, params: dict[str, Any], client: int | None = None, seq: int | None = None
    ) -> None:
        self._apply(self._state.set_params, params, as_request(client, seq))

    def get_model(self) -> list[Any]:
        return self._learning().get_model()

    def set_model(
        self, models: list[Any], client: int | None = None, seq: int | None = None
    ) -> None:
        self._apply(self._learning().set_model, models, as_request(client, seq))

    def _learning(self) -> LearningState:
        if not isinstance(self._state, LearningState):
            raise TypeError("only a LearningAgent has scikit-learn models")
        return self._state

    def _linear(self) -> LinearState:
        if not isinstance(self._state, LinearState):
            raise TypeError("only linear bandits (LinUCB, Thompson sampling) merge statistics")
        return self._state

    # Replicas (see _replicas.py): deltas since the last merge, and merges.
    def delta(self) -> dict[str, Any]:
        return self._linear().delta()

    def merge(
        self,
        total: dict[str, Any],
        own: dict[str, Any],
        client: int | None = None,
        seq: int | None = None,
    ) -> None:
        self._apply(self._linear().merge, total, own, as_request(client, seq))

    def statistics(self) -> dict[str, Any]:
        state = self._linear()
        return {"A": state.A.copy(), "b": state.b.copy()}

    def stats(self) -> dict[str, Any]:
        return {**self._state.stats(), "restored_version": self._info["restored_version"]}


_RemoteAgentActor = ray.remote(_AgentActor)


def _check_seed(seed: object) -> int | None:
    return None if seed is None else check_int("seed", seed, minimum=0)


class Agent(ActorFacade):
    """An online learning agent living in one Ray actor: what every agent here offers.

    Do not create an ``Agent`` directly: create a `LearningAgent`,
    `LinUCBAgent`, `ThompsonSamplingAgent` or `RandomAgent`. They share this
    interface, so loops, `run_bandit`, `AgentReplicas` and `AgentPopulation` work
    with any of them.

    The loop is the seeds': ``make_prediction(context)`` returns an action in
    ``range(n_actions)``; ``receive_feedback(context, action, reward)`` teaches the
    agent what that action earned. The model never leaves the actor: each call
    sends a context (a few hundred bytes) and gets an int back.

    Arguments are checked where you call, before anything is sent: a context of
    the wrong length, a NaN in it, an action outside ``range(n_actions)`` or a
    reward that is not a finite number raises ``ValueError``/``TypeError`` on your
    line and changes nothing.

    **Lifecycle.** ``close()`` (what ``with`` does) stops the actor and returns
    once Ray reports it dead; its checkpoints stay in the store. A facade from
    `attach`, or a copy unpickled in a task or another actor, does not own the
    actor: its ``close()`` releases it and the actor keeps running. ``kill()`` is
    the crash simulation of the fault demos (the process dies as in a crash, and
    Ray restarts an agent that has a store).

    **Timeouts.** Every call waits at most ``timeout=`` seconds (default: the
    agent's ``timeout``, itself 60 s unless given; ``None`` waits without a
    bound) and raises `patterns.CallTimeoutError` naming the agent and the
    method; every other runtime failure is a `patterns.PatternError` too.

    **With a store** every acknowledged feedback survives the actor's process
    dying: the actor checkpoints its model and counters before a feedback call
    returns, Ray restarts it (``max_restarts=-1`` by default) and it restores the
    newest checkpoint; feedback calls carry request ids, so a call Ray re-sends
    after a crash is not applied twice. Ray re-sends a call at most 3 times
    (``max_task_retries=3``): a call that crashes the process on every attempt (a
    poison feedback) fails with `patterns.ActorLostError`, and the restarted
    agent serves the other calls. Predictions are not checkpointed: they change
    no learnt state. An agent that explores at random (Thompson sampling,
    epsilon-greedy, random) restores its random generator as it was at the last
    checkpoint, so after a crash it repeats the random draws made since then:
    the run stays a valid run, but it is not the run an uninterrupted agent
    would have made.

    Examples:
        >>> with LinUCBAgent(n_actions=3, n_features=2) as agent:
        ...     action = agent.make_prediction([0.5, -1.0])
        ...     agent.receive_feedback([0.5, -1.0], action, reward=1.0)
        ...     agent.set_params(alpha=0.5)
        ...     print(action in range(3), agent.stats()["feedbacks"], agent.get_params()["alpha"])
        True 1 0.5
    """

    _state_kind: ClassVar[str] = ""
    # Hyperparameters set_params may change on a live agent, with their checks.
    _settable: ClassVar[tuple[str, ...]] = ()

    _actor: ActorHandle[Any]
    _info: dict[str, Any]

    def __init__(self) -> None:
        raise TypeError(
            "Agent is the common interface; create a LearningAgent, LinUCBAgent, "
            "ThompsonSamplingAgent or RandomAgent"
        )

    def _start(
        self,
        params: dict[str, Any],
        *,
        n_actions: int,
        n_features: int | None,
        binary: bool,
        store: object,
        key: object,
        checkpoint_every: object,
        name: object,
        namespace: object,
        timeout: object,
        actor_options: object,
        extra_info: Mapping[str, Any] | None = None,
        legacy_keys: Sequence[str] = (),
        replica: bool = False,
    ) -> None:
        kind = type(self).__name__
        checked_store, every = check_store_args(store, key, checkpoint_every, what=kind)
        seconds = check_facade_timeout(timeout)
        options, checked_name, checked_namespace, naming = check_options_and_naming(
            actor_options,
            name,
            namespace,
            defaults=restartable_defaults(checked_store),
            facade=kind,
        )
        checked_key = default_key(key, naming, "agent") if checked_store is not None else None
        info = {
            "kind": kind,
            "n_actions": n_actions,
            "n_features": n_features,
            "binary": binary,
            "key": checked_key,
            "name": checked_name,
            "namespace": checked_namespace,
            **(extra_info or {}),
        }
        actor = make_actor(
            _RemoteAgentActor,
            {**options, **naming},
            self._state_kind,
            params,
            checked_store,
            checked_key,
            every,
            info,
            list(legacy_keys),
            replica,
        )
        if options.get("get_if_exists") and checked_name:  # it may have existed: trust it
            found = actor_info(actor, checked_name, what="agent", timeout=seconds)
            check_kind(found, checked_name, kind)
            info = {**found, "name": checked_name, "namespace": checked_namespace}
        self._setup(actor, info, seconds)

    def _setup(
        self, actor: ActorHandle[Any], info: Mapping[str, Any], timeout: float | None
    ) -> None:
        self._actor = actor
        self._info = dict(info)
        self._key: str | None = info.get("key")
        self._n_actions: int = info["n_actions"]
        self._n_features: int | None = info.get("n_features")
        self._binary: bool = bool(info.get("binary"))
        self._exactly_once = self._key is not None  # request ids only matter with a store
        self._requests = RequestIds()
        # Bound once: looking up an actor method on a handle costs a little every time.
        self._predict: Any = actor.make_prediction
        self._feedback: Any = actor.receive_feedback
        self._init_facade(
            [actor],
            name=info.get("name"),
            namespace=info.get("namespace"),
            owned=True,
            timeout=timeout,
        )

    def _ids(self) -> tuple[int, int] | tuple[()]:
        return self._requests.next() if self._exactly_once else ()

    @classmethod
    def attach(
        cls: type[A],
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Timeout = DEFAULT,
    ) -> A:
        """Return a facade for the live agent actor called ``name``.

        The facade does not own the actor unless ``own=True``: its ``close()``
        releases it and the actor keeps running (``own=True`` takes it over, e.g. to
        stop a detached agent from another program).

        Args:
            name: The actor's name (``name=`` when it was created).
            namespace: The Ray namespace it lives in (default: this job's).
            own: Take the actor over: ``close()`` stops it.
            timeout: The facade's timeout for its calls (default 60 s).

        Returns:
            A new facade (with its own request ids) for that actor.

        Raises:
            TypeError: If the actor is not an agent of this class.
            ValueError: If there is no live actor with that name.
        """
        if cls is Agent:
            raise TypeError("attach through the agent's class, e.g. LinUCBAgent.attach(name)")
        seconds = check_facade_timeout(timeout)
        actor, info = attach_named(name, namespace, kind=cls.__name__, what="agent")
        info = {**info, "name": name, "namespace": namespace}
        return rebuild(cls, actor, info, seconds, owned=bool(own))

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) gets fresh request ids and does not own the actor.
        info = {**self._info, "n_features": self._n_features}
        return (rebuild, (type(self), self._actor, info, self.timeout))

    def __repr__(self) -> str:
        who = f"name={self.name!r}" if self.name else f"actor_id={actor_id_hex(self._actor)!r}"
        return (
            f"{type(self).__name__}(n_actions={self._n_actions}, "
            f"n_features={self._n_features}, {who})"
        )

    @property
    def actor(self) -> ActorHandle[Any]:
        """The Ray actor handle behind the facade."""
        return self._actor

    @property
    def key(self) -> str | None:
        """The checkpoint key (None without a store)."""
        return self._key

    @property
    def n_actions(self) -> int:
        """The number of actions: predictions are in ``range(n_actions)``."""
        return self._n_actions

    @property
    def n_features(self) -> int | None:
        """The length of a context (None until an agent that learns it has seen one)."""
        return self._n_features

    # --- predictions --------------------------------------------------------------

    def _context(self, context: object) -> Any:
        x = check_context(context, self._n_features)
        if self._n_features is None:
            self._n_features = int(x.shape[0])
        return x

    def _contexts(self, contexts: object) -> Any:
        xs = check_contexts(contexts, self._n_features)
        if self._n_features is None and len(xs):
            self._n_features = int(xs.shape[1])
        return xs

    def make_prediction(self, context: Any, *, timeout: Timeout = DEFAULT) -> int:
        """Choose an action for ``context``.

        Args:
            context: A 1-D array (or list) of ``n_features`` finite numbers.
            timeout: Seconds to wait for the reply (default: the agent's timeout;
                None: no bound).

        Returns:
            An action in ``range(n_actions)``.

        Raises:
            TypeError: If ``context`` is not an array of real numbers.
            ValueError: If it has the wrong shape or a non-finite value.
            CallTimeoutError: No reply within ``timeout``.
        """
        seconds = self._seconds(timeout)
        ref = self.make_prediction_async(context)
        return int(self._get(ref, timeout=seconds, method="make_prediction"))

    def make_prediction_async(self, context: Any) -> ObjectRef[int]:
        """Send ``context`` and return at once: an ObjectRef to the action."""
        x = self._context(context)
        self._check_open("make_prediction_async")
        ref: ObjectRef[int] = self._predict.remote(x)
        return ref

    def make_predictions(self, contexts: Any, *, timeout: Timeout = DEFAULT) -> list[int]:
        """Choose an action for each row of ``contexts``, in one call.

        Args:
            contexts: A 2-D array of shape ``(n, n_features)``.
            timeout: Seconds to wait for the reply (default: the agent's timeout).

        Returns:
            ``n`` actions, one per row.

        Raises:
            TypeError: If ``contexts`` is not an array of real numbers.
            ValueError: If it has the wrong shape or a non-finite value.
            CallTimeoutError: No reply within ``timeout``.
        """
        seconds = self._seconds(timeout)
        ref = self.make_predictions_async(contexts)
        actions: list[int] = self._get(ref, timeout=seconds, method="make_predictions")
        return list(actions)

    def make_predictions_async(self, contexts: Any) -> ObjectRef[list[int]]:
        """Send a batch of contexts and return at once: an ObjectRef to the actions."""
        xs = self._contexts(contexts)
        self._check_open("make_predictions_async")
        ref: ObjectRef[list[int]] = self._actor.make_predictions.remote(xs)
        return ref

    # --- feedback -----------------------------------------------------------------

    def receive_feedback(
        self, context: Any, action: int, reward: float, *, timeout: Timeout = DEFAULT
    ) -> None:
        """Teach the agent that ``action`` earned ``reward`` in ``context``.

        When this returns the feedback is applied (acknowledged): with a store and
        ``checkpoint_every=1`` it is in the checkpoint, and is never lost or applied
        twice.

        Args:
            context: The context the action was chosen for.
            action: The action played, an int in ``range(n_actions)``.
            reward: What it earned: a finite number (for a classifier, the number 0
                or 1: pass ``float(clicked)``, not a bool).
            timeout: Seconds to wait for the acknowledgement (default: the agent's
                timeout). A call that times out may still be applied later.

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If the context has the wrong shape or a non-finite value,
                the action is out of range or the reward is not finite.
            CallTimeoutError: No acknowledgement within ``timeout``.
            ActorLostError: The feedback crashed the agent's process on every
                attempt (e.g. an estimator that dies on this input); it was not
                applied, and the restarted agent serves the other calls.
            RemoteCallError: The feedback raised inside the agent (e.g. in the
                estimator's ``partial_fit``).
        """
        seconds = self._seconds(timeout)
        ref = self.receive_feedback_async(context, action, reward)
        self._get(ref, timeout=seconds, method="receive_feedback")

    def receive_feedback_async(self, context: Any, action: int, reward: float) -> ObjectRef[None]:
        """Send one feedback and return at once: acknowledged when the ref resolves."""
        x = self._context(context)
        a = check_action(action, self._n_actions)
        r = check_reward(reward, self._binary)
        self._check_open("receive_feedback_async")
        ref: ObjectRef[None] = self._feedback.remote(x, a, r, *self._ids())
        return ref

    def receive_feedbacks(
        self, contexts: Any, actions: Any, rewards: Any, *, timeout: Timeout = DEFAULT
    ) -> None:
        """Teach the agent a batch of feedbacks, as one call (applied together).

        Args:
            contexts: A 2-D array of shape ``(n, n_features)``.
            actions: ``n`` actions, each in ``range(n_actions)``.
            rewards: ``n`` finite rewards (for a classifier, numbers 0 and 1: pass
                ``clicked.astype(float)``, not an array of bool).
            timeout: Seconds to wait for the acknowledgement (default: the agent's
                timeout).

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If shapes disagree, an action is out of range or a value
                is not finite.
            CallTimeoutError: No acknowledgement within ``timeout``.
            ActorLostError: The batch crashed the agent's process on every attempt.
            RemoteCallError: The batch raised inside the agent.
        """
        seconds = self._seconds(timeout)
        ref = self.receive_feedbacks_async(contexts, actions, rewards)
        self._get(ref, timeout=seconds, method="receive_feedbacks")

    def receive_feedbacks_async(self, contexts: Any, actions: Any, rewards: Any) -> ObjectRef[None]:
        """Send a batch of feedbacks and return at once: acknowledged when the ref resolves."""
        xs = self._contexts(contexts)
        acts = check_actions(actions, self._n_actions, len(xs))
        rs = check_rewards(rewards, len(xs), self._binary)
        self._check_open("receive_feedbacks_async")
        ref: ObjectRef[None] = self._actor.receive_feedbacks.remote(xs, acts, rs, *self._ids())
        return ref

    # --- parameters, checkpoints --------------------------------------------------

    def get_params(self, *, timeout: Timeout = DEFAULT) -> dict[str, Any]:
        """The agent's hyperparameters as they are now (its constructor arguments).

        Args:
            timeout: Seconds to wait for the reply (default: the agent's timeout).

        Returns:
            A dict of hyperparameter names to values.
        """
        seconds = self._seconds(timeout)
        params: dict[str, Any] = self._get(
            self.get_params_async(), timeout=seconds, method="get_params"
        )
        return params

    def get_params_async(self) -> ObjectRef[dict[str, Any]]:
        """Ask for the hyperparameters and return at once."""
        self._check_open("get_params_async")
        ref: ObjectRef[dict[str, Any]] = self._actor.get_params.remote()
        return ref

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = [name for name in params if name not in self._settable]
        if unknown:
            can = ", ".join(repr(n) for n in self._settable) or "nothing"
            msg = (
                f"{type(self).__name__}.set_params cannot change {unknown[0]!r} on a live "
                f"agent (it can change {can})"
            )
            raise ValueError(msg)
        return params

    def set_params(self, *, timeout: Timeout = DEFAULT, **params: Any) -> None:
        """Change hyperparameters of the live agent (the seeds' ``set_coef``).

        What it has learnt stays; the next prediction uses the new values. Checked
        here, before anything is sent.

        Args:
            timeout: Seconds to wait for the acknowledgement (default: the agent's
                timeout).
            **params: The hyperparameters to change (see each agent's class).

        Raises:
            ValueError: If a name cannot be changed on a live agent, or a value is
                out of range.
            TypeError: If a value has the wrong type.
        """
        seconds = self._seconds(timeout)
        self._get(self.set_params_async(**params), timeout=seconds, method="set_params")

    def set_params_async(self, **params: Any) -> ObjectRef[None]:
        """Send a change of hyperparameters and return at once (see `set_params`)."""
        checked = self._check_params(dict(params))
        self._check_open("set_params_async")
        ref: ObjectRef[None] = self._actor.set_params.remote(checked, *self._ids())
        return ref

    def checkpoint(self, *, timeout: Timeout = DEFAULT) -> int | None:
        """Write a checkpoint now (before a planned stop with ``checkpoint_every > 1``).

        Args:
            timeout: Seconds to wait (default: the agent's timeout).

        Returns:
            The version written (None without a store).
        """
        seconds = self._seconds(timeout)
        version: int | None = self._get(
            self.checkpoint_async(), timeout=seconds, method="checkpoint"
        )
        return version

    def checkpoint_async(self) -> ObjectRef[int | None]:
        """Ask for a checkpoint and return at once: an ObjectRef to the version written."""
        self._check_open("checkpoint_async")
        ref: ObjectRef[int | None] = self._actor.checkpoint.remote()
        return ref

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        # stats(): the common keys, and the agent's counters: n_actions, n_features,
        # predictions, feedbacks (applied), reward_sum, mean_reward, restored_version
        # (the checkpoint restored at the actor's last start, 0 if none) and what the
        # agent kind adds.
        ref: ObjectRef[dict[str, Any]] = self._actor.stats.remote()
        return ref


def _check_alpha(value: object) -> float:
    return check_number("alpha", value, positive=True)


def linear_params(
    *,
    n_actions: object,
    n_features: object,
    alpha: object = 1.0,
    l2_lambda: object = 1.0,
    seed: object = None,
) -> dict[str, Any]:
    """The checked state parameters of a linear bandit (what LinUCB and Thompson take)."""
    return {
        "n_actions": check_n_actions(n_actions),
        "n_features": check_int("n_features", n_features, minimum=1),
        "alpha": _check_alpha(alpha),
        "l2_lambda": check_number("l2_lambda", l2_lambda, positive=True),
        "seed": _check_seed(seed),
    }


class _LinearAgent(Agent):
    """What LinUCB and Thompson sampling share: statistics that replicas can merge."""

    _settable = ("alpha",)

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        params = super()._check_params(params)
        if "alpha" in params:
            params["alpha"] = _check_alpha(params["alpha"])
        return params

    def _start_linear(
        self,
        params: dict[str, Any],
        *,
        store: object,
        key: object,
        checkpoint_every: object,
        name: object,
        namespace: object,
        timeout: object,
        actor_options: object,
        extra_info: Mapping[str, Any] | None = None,
        legacy_keys: Sequence[str] = (),
        replica: bool = False,
    ) -> None:
        self._start(
            params,
            n_actions=params["n_actions"],
            n_features=params["n_features"],
            binary=False,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            name=name,
            namespace=namespace,
            timeout=timeout,
            actor_options=actor_options,
            extra_info={"mergeable": True, **(extra_info or {})},
            legacy_keys=legacy_keys,
            replica=replica,
        )


class LinUCBAgent(_LinearAgent):
    """LinUCB (Li et al., 2010): a linear upper-confidence-bound bandit in one actor.

    For each action the agent keeps ridge-regression statistics ``A = l2_lambda I +
    sum x x^T`` and ``b = sum r x`` of the feedback it received, and plays
    ``argmax_a theta_a . x + alpha * sqrt(x^T A_a^-1 x)``: the estimated reward
    plus a bonus for what it is unsure of. The inverses are updated with the
    Sherman-Morrison formula on each feedback (O(d^2)), never recomputed for a
    prediction, and the bonuses of all actions come from one matrix-vector product.
    LinUCB draws no random numbers: its predictions are a function of its state.

    Its statistics add, so several replicas can learn in parallel and merge
    exactly: see `AgentReplicas`. Lifecycle, timeouts and checkpoints: see `Agent`.

    Args:
        n_actions: Number of actions (an int >= 2).
        n_features: Length of a context (an int >= 1).
        alpha: Width of the confidence bonus (> 0); settable on a live agent.
        l2_lambda: Ridge regularisation (> 0).
        seed: Unused by LinUCB (accepted so every agent takes one).
        store: Checkpoint store (see `Agent`); None keeps the model in memory only.
        key: Checkpoint key (default: the actor's name, else a random key).
        checkpoint_every: Checkpoint after every N applied changes.
        name: Name of the actor (None: unnamed); `attach` finds it by name.
        namespace: Ray namespace of the named actor (None: the job's).
        timeout: Seconds each call waits by default (default 60; None: no bound).
        actor_options: Other options for the actor (``num_cpus``, ``lifetime``,
            ``get_if_exists``, ...; not ``name``).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2``, ``n_features < 1``, ``alpha <= 0``,
            ``l2_lambda <= 0``, or the store arguments are inconsistent.

    Examples:
        >>> with LinUCBAgent(n_actions=2, n_features=2, alpha=1.0) as agent:
        ...     print(agent.make_prediction([1.0, 0.0]))  # nothing learnt: a tie, the lowest
        ...     agent.receive_feedback([1.0, 0.0], action=0, reward=-1.0)
        ...     print(agent.make_prediction([1.0, 0.0]))  # action 0 disappointed here
        0
        1
    """

    _state_kind = "linucb"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        seed: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        params = linear_params(
            n_actions=n_actions, n_features=n_features, alpha=alpha, l2_lambda=l2_lambda, seed=seed
        )
        self._start_linear(
            params,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            name=name,
            namespace=namespace,
            timeout=timeout,
            actor_options=actor_options,
        )


class ThompsonSamplingAgent(_LinearAgent):
    """Linear Thompson sampling (Agrawal and Goyal, 2013) in one actor.

    The same statistics as `LinUCBAgent`; instead of a bonus, the agent samples a
    plausible reward for each action, normal around its estimate with standard
    deviation ``alpha * sqrt(x^T A_a^-1 x)``, and plays the best sample. (Sampling
    the scalar ``theta~ . x`` directly is equivalent to sampling ``theta~`` from the
    posterior, and costs what LinUCB costs.) Lifecycle, timeouts and checkpoints:
    see `Agent`.

    Args:
        n_actions: Number of actions (an int >= 2).
        n_features: Length of a context (an int >= 1).
        alpha: Scale of the posterior (> 0); settable on a live agent.
        l2_lambda: Ridge regularisation (> 0).
        seed: Seed of the sampling (None: fresh entropy). See `Agent` for what a
            restart does to the random stream.
        store: Checkpoint store (see `Agent`).
        key: Checkpoint key.
        checkpoint_every: Checkpoint after every N applied changes.
        name: Name of the actor (None: unnamed).
        namespace: Ray namespace of the named actor.
        timeout: Seconds each call waits by default (default 60; None: no bound).
        actor_options: Other options for the actor.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2``, ``n_features < 1``, ``alpha <= 0``,
            ``l2_lambda <= 0``, ``seed < 0``, or the store arguments are
            inconsistent.

    Examples:
        >>> with ThompsonSamplingAgent(n_actions=3, n_features=2, seed=7) as agent:
        ...     actions = agent.make_predictions([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> all(a in range(3) for a in actions)
        True
    """

    _state_kind = "thompson"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        seed: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        params = linear_params(
            n_actions=n_actions, n_features=n_features, alpha=alpha, l2_lambda=l2_lambda, seed=seed
        )
        self._start_linear(
            params,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            name=name,
            namespace=namespace,
            timeout=timeout,
            actor_options=actor_options,
        )


class RandomAgent(Agent):
    """Plays uniformly at random and learns nothing: the baseline every agent must beat.

    Lifecycle, timeouts and checkpoints: see `Agent`.

    Args:
        n_actions: Number of actions (an int >= 2).
        n_features: Length of a context; None accepts any length, fixed by the
            first context seen.
        seed: Seed of the random stream (None: fresh entropy).
        store: Checkpoint store (it keeps the counters and random state).
        key: Checkpoint key.
        checkpoint_every: Checkpoint after every N applied changes.
        name: Name of the actor (None: unnamed).
        namespace: Ray namespace of the named actor.
        timeout: Seconds each call waits by default (default 60; None: no bound).
        actor_options: Other options for the actor.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2`` or ``seed < 0``.

    Examples:
        >>> with RandomAgent(n_actions=4, seed=0) as agent:
        ...     agent.make_predictions([[0.0], [0.0], [0.0]])
        [3, 2, 2]
    """

    _state_kind = "random"

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int | None = None,
        seed: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        k = check_n_actions(n_actions)
        d = None if n_features is None else check_int("n_features", n_features, minimum=1)
        params = {"n_actions": k, "n_features": d, "seed": _check_seed(seed)}
        self._start(
            params,
            n_actions=k,
            n_features=d,
            binary=False,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            name=name,
            namespace=namespace,
            timeout=timeout,
            actor_options=actor_options,
        )


def _check_estimator(estimator: object) -> Any:
    if isinstance(estimator, type):
        name = estimator.__name__
        msg = f"'estimator' must be an estimator instance, got the class {name}: use {name}()"
        raise TypeError(msg)
    if not callable(getattr(estimator, "partial_fit", None)) or not callable(
        getattr(estimator, "get_params", None)
    ):
        msg = (
            "'estimator' must be a scikit-learn estimator with partial_fit (SGDRegressor, "
            f"SGDClassifier, MLPRegressor, ...), got {describe(estimator)}"
        )
        raise TypeError(msg)
    return estimator


class LearningAgent(Agent):
    """The seeds' learning agent: any scikit-learn estimator with ``partial_fit``, in one actor.

    The agent keeps one clone of ``estimator`` per action, each predicting that
    action's reward from the context: ``predict`` for a regressor; for a
    classifier, on 0/1 rewards, the probability of reward 1 (``predict_proba``,
    or ``decision_function`` when it has no probabilities). It plays the best
    prediction, or with probability ``epsilon`` a uniformly random action
    (epsilon-greedy); an action whose model has not been fitted yet is tried
    first. Feedback is buffered in the actor and fed to ``partial_fit`` every
    ``retrain_every`` feedbacks.

    This is the seed's claim made concrete: the models stay in the actor's memory
    and are never pickled between cycles (the benchmark measures what that saves).

    For a classifier the rewards are the numbers 0 and 1 (``float(clicked)``, or
    ``clicked.astype(float)`` for a batch); bools and arrays of bool are refused,
    as everywhere in the library.

    The estimator is user code running in the actor. With a store, a feedback
    whose ``partial_fit`` crashes the process (a native library dying on one
    input) is re-sent by Ray at most 3 times, then fails with
    `patterns.ActorLostError` naming the agent and ``receive_feedback``; it was
    not applied, every acknowledged feedback stays applied once, and the restarted
    agent serves the other calls. With ``retrain_every > 1`` the input is
    acknowledged into the buffer first, and every later call that trains the
    buffer fails: keep ``retrain_every=1`` for an estimator that may crash on an
    input. Lifecycle and timeouts: see `Agent`.

    Args:
        estimator: A scikit-learn estimator with ``partial_fit`` (not fitted: it
            is cloned per action).
        n_actions: Number of actions (an int >= 2).
        epsilon: Probability of a random action, in [0, 1]; settable live.
        retrain_every: Feed the buffer to ``partial_fit`` every N feedbacks (an int
            >= 1); settable live.
        seed: Seed of the exploration (None: fresh entropy). With a seed, the
            per-action models whose ``random_state`` is None get one derived from
            it (SGD shuffles each batch it learns from), so the agent is
            reproducible.
        n_features: Length of a context; None fixes it at the first context.
        store: Checkpoint store (it keeps the models, the buffer, the counters
            and the random state).
        key: Checkpoint key.
        checkpoint_every: Checkpoint after every N applied changes.
        name: Name of the actor (None: unnamed).
        namespace: Ray namespace of the named actor.
        timeout: Seconds each call waits by default (default 60; None: no bound).
        actor_options: Other options for the actor.

    ``set_params`` also takes the estimator's own hyperparameters as
    ``estimator__<name>`` (scikit-learn's convention); the live models keep what
    they learnt.

    Raises:
        TypeError: If ``estimator`` has no ``partial_fit``, or another argument
            has the wrong type.
        ValueError: If ``n_actions < 2``, ``epsilon`` is outside [0, 1],
            ``retrain_every < 1`` or the store arguments are inconsistent.

    Examples:
        >>> from sklearn.linear_model import SGDRegressor
        >>> with LearningAgent(SGDRegressor(), n_actions=2, epsilon=0.0, seed=0) as agent:
        ...     agent.receive_feedbacks([[1.0, 0.0], [1.0, 0.0]], [0, 1], [1.0, -1.0])
        ...     print(agent.make_prediction([1.0, 0.0]))
        ...     agent.set_params(epsilon=0.2)
        ...     print([type(model).__name__ for model in agent.get_model()])
        0
        ['SGDRegressor', 'SGDRegressor']
    """

    _state_kind = "learning"
    _settable = ("epsilon", "retrain_every")

    def __init__(
        self,
        estimator: Any,
        *,
        n_actions: int,
        epsilon: float = 0.1,
        retrain_every: int = 1,
        seed: int | None = None,
        n_features: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        from sklearn.base import clone, is_classifier

        estimator = _check_estimator(estimator)
        k = check_n_actions(n_actions)
        d = None if n_features is None else check_int("n_features", n_features, minimum=1)
        template = clone(estimator)
        params = {
            "n_actions": k,
            "n_features": d,
            "seed": _check_seed(seed),
            "estimator": template,
            "epsilon": check_number("epsilon", epsilon, minimum=0, maximum=1),
            "retrain_every": check_int("retrain_every", retrain_every, minimum=1),
        }
        self._start(
            params,
            n_actions=k,
            n_features=d,
            binary=bool(is_classifier(estimator)),
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            name=name,
            namespace=namespace,
            timeout=timeout,
            actor_options=actor_options,
            extra_info={"estimator": template},
        )

    def _check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        nested = {k: v for k, v in params.items() if k.startswith("estimator__")}
        plain = super()._check_params({k: v for k, v in params.items() if k not in nested})
        if "epsilon" in plain:
            plain["epsilon"] = check_number("epsilon", plain["epsilon"], minimum=0, maximum=1)
        if "retrain_every" in plain:
            plain["retrain_every"] = check_int("retrain_every", plain["retrain_every"], minimum=1)
        if nested:
            _check_estimator_params(self._info["estimator"], nested)
        return {**plain, **nested}

    def get_model(self, *, timeout: Timeout = DEFAULT) -> list[Any]:
        """Copies of the per-action models as fitted now (action 0 first).

        Args:
            timeout: Seconds to wait for the reply (default: the agent's timeout).

        Returns:
            ``n_actions`` fitted (or not yet fitted) estimators.
        """
        seconds = self._seconds(timeout)
        models: list[Any] = self._get(self.get_model_async(), timeout=seconds, method="get_model")
        return models

    def get_model_async(self) -> ObjectRef[list[Any]]:
        """Ask for copies of the models and return at once."""
        self._check_open("get_model_async")
        ref: ObjectRef[list[Any]] = self._actor.get_model.remote()
        return ref

    def set_model(self, models: Sequence[Any], *, timeout: Timeout = DEFAULT) -> None:
        """Install per-action models (e.g. from `get_model` of another agent).

        Args:
            models: ``n_actions`` estimators with ``partial_fit``, action 0 first.
            timeout: Seconds to wait for the acknowledgement (default: the agent's
                timeout).

        Raises:
            TypeError: If ``models`` is not a sequence of estimators with partial_fit.
            ValueError: If it does not hold ``n_actions`` models.
        """
        seconds = self._seconds(timeout)
        self._get(self.set_model_async(models), timeout=seconds, method="set_model")

    def set_model_async(self, models: Sequence[Any]) -> ObjectRef[None]:
        """Send models to install and return at once (see `set_model`)."""
        if isinstance(models, str | bytes) or not isinstance(models, Sequence):
            msg = f"'models' must be a sequence of estimators, got {describe(models)}"
            raise TypeError(msg)
        if len(models) != self._n_actions:
            msg = f"'models' must hold {self._n_actions} models (one per action), got {len(models)}"
            raise ValueError(msg)
        for model in models:
            if not callable(getattr(model, "partial_fit", None)):
                msg = f"'models' must hold estimators with partial_fit, got {describe(model)}"
                raise TypeError(msg)
        self._check_open("set_model_async")
        ref: ObjectRef[None] = self._actor.set_model.remote(list(models), *self._ids())
        return ref


def _check_estimator_params(template: Any, nested: Mapping[str, Any]) -> None:
    from sklearn.base import clone

    names = {k.split("__", 1)[1]: v for k, v in nested.items()}
    known = template.get_params(deep=False)
    for name in names:
        if name not in known:
            msg = (
                f"'estimator__{name}' is not a parameter of {type(template).__name__} "
                f"(it has {', '.join(sorted(known))})"
            )
            raise ValueError(msg)
    trial = clone(template).set_params(**names)
    validate = getattr(trial, "_validate_params", None)
    if callable(validate):  # scikit-learn >= 1.2 checks types and ranges here
        try:
            validate()
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"'estimator__' parameters refused: {exc}") from None
