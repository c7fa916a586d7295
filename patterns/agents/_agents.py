"""The agent actor and its facades: `Agent` and the four agents users create.

One actor class serves every kind of agent: it holds an `AgentState`
(``_state.py``) and a `Checkpointer`, restores itself in ``__init__`` and saves
before it acknowledges a change. The facades check every argument, number the
mutating calls when the agent has a store, and offer typed sync methods with
``*_async`` twins.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import (
    actor_info,
    attach_named,
    check_actor_options,
    check_kind,
    make_actor,
    rebuild,
    restartable_defaults,
)
from patterns._checkpointer import Checkpointer, check_store_args, default_key
from patterns._checks import check_int, check_number, check_positive_float, describe
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

Request = tuple[int, int] | None


def _request(client: int | None, seq: int | None) -> Request:
    return None if client is None or seq is None else (client, seq)


class _AgentActor:
    """The actor: an agent state plus checkpointing. Restores itself in ``__init__``."""

    def __init__(
        self,
        kind: str,
        params: dict[str, Any],
        store: CheckpointStore | None,
        key: str | None,
        checkpoint_every: int,
        info: dict[str, Any],
    ) -> None:
        self._checkpointer = Checkpointer(store, key or "", checkpoint_every)
        restored = self._checkpointer.restore()
        if restored is not None:
            self._state = AgentState.from_snapshot(restored.state)
        else:
            self._state = state_class(kind)(**params)
        self._info = {**info, "key": key, "restored_version": self._checkpointer.version}

    def _applied(self, before: int) -> None:
        if self._state.changes != before:
            # Saved before the reply leaves: an acknowledged feedback is in the store.
            self._checkpointer.changed(self._state.snapshot)

    # Predictions change no learnt state (at most the random stream): not checkpointed.
    def make_prediction(self, context: Any) -> int:
        return self._state.make_prediction(context)

    def make_predictions(self, contexts: Any) -> list[int]:
        return self._state.make_predictions(contexts)

    def receive_feedback(
        self,
        context: Any,
        action: int,
        reward: float,
        client: int | None = None,
        seq: int | None = None,
    ) -> None:
        before = self._state.changes
        self._state.receive_feedback(context, action, reward, _request(client, seq))
        self._applied(before)

    def receive_feedbacks(
        self,
        contexts: Any,
        actions: Any,
        rewards: Any,
        client: int | None = None,
        seq: int | None = None,
    ) -> None:
        before = self._state.changes
        self._state.receive_feedbacks(contexts, actions, rewards, _request(client, seq))
        self._applied(before)

    def get_params(self) -> dict[str, Any]:
        return self._state.get_params()

    def set_params(
        self, params: dict[str, Any], client: int | None = None, seq: int | None = None
    ) -> None:
        before = self._state.changes
        self._state.set_params(params, _request(client, seq))
        self._applied(before)

    def get_model(self) -> list[Any]:
        return self._learning().get_model()

    def set_model(
        self, models: list[Any], client: int | None = None, seq: int | None = None
    ) -> None:
        before = self._state.changes
        self._learning().set_model(models, _request(client, seq))
        self._applied(before)

    def _learning(self) -> LearningState:
        if not isinstance(self._state, LearningState):
            raise TypeError("only a LearningAgent has scikit-learn models")
        return self._state

    def _linear(self) -> LinearState:
        if not isinstance(self._state, LinearState):
            raise TypeError("only linear bandits (LinUCB, Thompson sampling) merge statistics")
        return self._state

    # Replicas (see _replicas.py): deltas since the last merge, and merges.
    def track_deltas(self) -> None:
        state = self._linear()
        if state.dA is None:
            state.track_deltas()
            self._checkpointer.save(state.snapshot())  # a restart must keep tracking

    def delta(self) -> dict[str, Any]:
        return self._linear().delta()

    def merge(
        self,
        total: dict[str, Any],
        own: dict[str, Any],
        client: int | None = None,
        seq: int | None = None,
    ) -> None:
        before = self._state.changes
        self._linear().merge(total, own, _request(client, seq))
        self._applied(before)

    def statistics(self) -> dict[str, Any]:
        state = self._linear()
        return {"A": state.A.copy(), "b": state.b.copy()}

    def stats(self) -> dict[str, Any]:
        return {**self._state.stats(), "restored_version": self._info["restored_version"]}

    def checkpoint(self) -> int | None:
        return self._checkpointer.save(self._state.snapshot())

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return {**self._info, "n_features": self._state.n_features}


_RemoteAgentActor = ray.remote(_AgentActor)


def _check_timeout(timeout: object) -> float | None:
    return None if timeout is None else check_positive_float("timeout", timeout)


def _check_seed(seed: object) -> int | None:
    return None if seed is None else check_int("seed", seed, minimum=0)


class Agent:
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

    **With a store** every acknowledged feedback survives the actor's process
    dying: the actor checkpoints its model and counters before a feedback call
    returns, Ray restarts it (``max_restarts=-1``, ``max_task_retries=-1`` by
    default) and it restores the newest checkpoint; feedback calls carry request
    ids, so a call Ray re-sends after a crash is not applied twice. Predictions
    are not checkpointed: they change no learnt state. An agent that explores at
    random (Thompson sampling, epsilon-greedy, random) restores its random
    generator as it was at the last checkpoint, so after a crash it repeats the
    random draws made since then: the run stays a valid run, but it is not the
    run an uninterrupted agent would have made.

    Examples:
        >>> agent = LinUCBAgent(n_actions=3, n_features=2)
        >>> action = agent.make_prediction([0.5, -1.0])
        >>> action in range(3)
        True
        >>> agent.receive_feedback([0.5, -1.0], action, reward=1.0)
        >>> agent.stats()["feedbacks"]
        1
        >>> agent.set_params(alpha=0.5)
        >>> agent.get_params()["alpha"]
        0.5
        >>> agent.kill()
    """

    _state_kind: ClassVar[str] = ""
    # Hyperparameters set_params may change on a live agent, with their checks.
    _settable: ClassVar[tuple[str, ...]] = ()

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
        actor_options: object,
        extra_info: Mapping[str, Any] | None = None,
    ) -> None:
        checked_store, every = check_store_args(
            store, key, checkpoint_every, what=type(self).__name__
        )
        options = check_actor_options(actor_options, defaults=restartable_defaults(checked_store))
        checked_key = default_key(key, options, "agent") if checked_store is not None else None
        info = {
            "kind": type(self).__name__,
            "n_actions": n_actions,
            "n_features": n_features,
            "binary": binary,
            "key": checked_key,
            **(extra_info or {}),
        }
        actor = make_actor(
            _RemoteAgentActor,
            options,
            self._state_kind,
            params,
            checked_store,
            checked_key,
            every,
            info,
        )
        if options.get("get_if_exists"):  # the actor may have existed: trust what it says
            found = actor_info(actor, options["name"], what="agent")
            check_kind(found, options["name"], type(self).__name__)
            info = found
        self._setup(actor, info)

    def _setup(self, actor: ActorHandle[Any], info: Mapping[str, Any]) -> None:
        from patterns._requests import RequestIds

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

    def _ids(self) -> tuple[int, int] | tuple[()]:
        return self._requests.next() if self._exactly_once else ()

    @classmethod
    def attach(cls: type[A], name: str, *, namespace: str | None = None) -> A:
        """Return a facade for the live agent actor called ``name``.

        Args:
            name: The actor's name (``actor_options["name"]`` when it was created).
            namespace: The Ray namespace it lives in (default: this job's).

        Returns:
            A new facade (with its own request ids) for that actor.

        Raises:
            TypeError: If the actor is not an agent of this class.
            ValueError: If there is no live actor with that name.
        """
        if cls is Agent:
            raise TypeError("attach through the agent's class, e.g. LinUCBAgent.attach(name)")
        actor, info = attach_named(name, namespace, kind=cls.__name__, what="agent")
        return rebuild(cls, actor, info)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (in a task, another actor) gets fresh request ids.
        info = {**self._info, "n_features": self._n_features}
        return (rebuild, (type(self), self._actor, info))

    def __repr__(self) -> str:
        actor_id = self._actor._actor_id.hex()
        return f"{type(self).__name__}(n_actions={self._n_actions}, actor_id={actor_id!r})"

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

    def make_prediction(self, context: Any, *, timeout: float | None = None) -> int:
        """Choose an action for ``context``.

        Args:
            context: A 1-D array (or list) of ``n_features`` finite numbers.
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            An action in ``range(n_actions)``.

        Raises:
            TypeError: If ``context`` is not an array of real numbers.
            ValueError: If it has the wrong shape or a non-finite value.
        """
        timeout = _check_timeout(timeout)
        return int(ray.get(self._predict.remote(self._context(context)), timeout=timeout))

    def make_prediction_async(self, context: Any) -> ObjectRef[int]:
        """Send ``context`` and return at once: an ObjectRef to the action."""
        ref: ObjectRef[int] = self._predict.remote(self._context(context))
        return ref

    def make_predictions(self, contexts: Any, *, timeout: float | None = None) -> list[int]:
        """Choose an action for each row of ``contexts``, in one call.

        Args:
            contexts: A 2-D array of shape ``(n, n_features)``.
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            ``n`` actions, one per row.

        Raises:
            TypeError: If ``contexts`` is not an array of real numbers.
            ValueError: If it has the wrong shape or a non-finite value.
        """
        timeout = _check_timeout(timeout)
        actions: list[int] = ray.get(self.make_predictions_async(contexts), timeout=timeout)
        return list(actions)

    def make_predictions_async(self, contexts: Any) -> ObjectRef[list[int]]:
        """Send a batch of contexts and return at once: an ObjectRef to the actions."""
        ref: ObjectRef[list[int]] = self._actor.make_predictions.remote(self._contexts(contexts))
        return ref

    # --- feedback -----------------------------------------------------------------

    def receive_feedback(
        self, context: Any, action: int, reward: float, *, timeout: float | None = None
    ) -> None:
        """Teach the agent that ``action`` earned ``reward`` in ``context``.

        When this returns the feedback is applied (acknowledged): with a store and
        ``checkpoint_every=1`` it is in the checkpoint, and is never lost or applied
        twice.

        Args:
            context: The context the action was chosen for.
            action: The action played, an int in ``range(n_actions)``.
            reward: What it earned: a finite number (0 or 1 for a classifier).
            timeout: Seconds to wait for the acknowledgement (None waits forever).

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If the context has the wrong shape or a non-finite value,
                the action is out of range or the reward is not finite.
        """
        timeout = _check_timeout(timeout)
        ray.get(self.receive_feedback_async(context, action, reward), timeout=timeout)

    def receive_feedback_async(self, context: Any, action: int, reward: float) -> ObjectRef[None]:
        """Send one feedback and return at once: acknowledged when the ref resolves."""
        x = self._context(context)
        a = check_action(action, self._n_actions)
        r = check_reward(reward, self._binary)
        ref: ObjectRef[None] = self._feedback.remote(x, a, r, *self._ids())
        return ref

    def receive_feedbacks(
        self, contexts: Any, actions: Any, rewards: Any, *, timeout: float | None = None
    ) -> None:
        """Teach the agent a batch of feedbacks, as one call (applied together).

        Args:
            contexts: A 2-D array of shape ``(n, n_features)``.
            actions: ``n`` actions, each in ``range(n_actions)``.
            rewards: ``n`` finite rewards.
            timeout: Seconds to wait for the acknowledgement (None waits forever).

        Raises:
            TypeError: If an argument has the wrong type.
            ValueError: If shapes disagree, an action is out of range or a value
                is not finite.
        """
        timeout = _check_timeout(timeout)
        ray.get(self.receive_feedbacks_async(contexts, actions, rewards), timeout=timeout)

    def receive_feedbacks_async(self, contexts: Any, actions: Any, rewards: Any) -> ObjectRef[None]:
        """Send a batch of feedbacks and return at once: acknowledged when the ref resolves."""
        xs = self._contexts(contexts)
        acts = check_actions(actions, self._n_actions, len(xs))
        rs = check_rewards(rewards, len(xs), self._binary)
        ref: ObjectRef[None] = self._actor.receive_feedbacks.remote(xs, acts, rs, *self._ids())
        return ref

    # --- parameters, stats, lifecycle ---------------------------------------------

    def get_params(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The agent's hyperparameters as they are now (its constructor arguments).

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            A dict of hyperparameter names to values.
        """
        timeout = _check_timeout(timeout)
        params: dict[str, Any] = ray.get(self.get_params_async(), timeout=timeout)
        return params

    def get_params_async(self) -> ObjectRef[dict[str, Any]]:
        """Ask for the hyperparameters and return at once."""
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

    def set_params(self, *, timeout: float | None = None, **params: Any) -> None:
        """Change hyperparameters of the live agent (the seeds' ``set_coef``).

        What it has learnt stays; the next prediction uses the new values. Checked
        here, before anything is sent.

        Args:
            timeout: Seconds to wait for the acknowledgement (None waits forever).
            **params: The hyperparameters to change (see each agent's class).

        Raises:
            ValueError: If a name cannot be changed on a live agent, or a value is
                out of range.
            TypeError: If a value has the wrong type.
        """
        timeout = _check_timeout(timeout)
        ray.get(self.set_params_async(**params), timeout=timeout)

    def set_params_async(self, **params: Any) -> ObjectRef[None]:
        """Send a change of hyperparameters and return at once (see `set_params`)."""
        checked = self._check_params(dict(params))
        ref: ObjectRef[None] = self._actor.set_params.remote(checked, *self._ids())
        return ref

    def stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Counters of the agent.

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            ``kind``, ``n_actions``, ``n_features``, ``predictions``, ``feedbacks``
            (applied), ``reward_sum``, ``mean_reward``, ``restored_version`` (the
            checkpoint the actor restored at its last start, 0 if none) and what
            the agent kind adds.
        """
        timeout = _check_timeout(timeout)
        stats: dict[str, Any] = ray.get(self.stats_async(), timeout=timeout)
        return stats

    def stats_async(self) -> ObjectRef[dict[str, Any]]:
        """Ask for the counters and return at once."""
        ref: ObjectRef[dict[str, Any]] = self._actor.stats.remote()
        return ref

    def checkpoint(self, *, timeout: float | None = None) -> int | None:
        """Write a checkpoint now (before a planned stop with ``checkpoint_every > 1``).

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            The version written (None without a store).
        """
        timeout = _check_timeout(timeout)
        ref: ObjectRef[int | None] = self._actor.checkpoint.remote()
        return ray.get(ref, timeout=timeout)

    def pid(self, *, timeout: float | None = None) -> int:
        """The process id of the actor (for crash demos and fault tests).

        Args:
            timeout: Seconds to wait for the reply (None waits forever).
        """
        timeout = _check_timeout(timeout)
        return int(ray.get(self.pid_async(), timeout=timeout))

    def pid_async(self) -> ObjectRef[int]:
        """Ask for the actor's process id and return at once."""
        ref: ObjectRef[int] = self._actor.pid.remote()
        return ref

    def kill(self) -> None:
        """Terminate the actor for good (its checkpoints stay in the store)."""
        with contextlib.suppress(Exception):
            ray.kill(self._actor, no_restart=True)


def _check_alpha(value: object) -> float:
    return check_number("alpha", value, positive=True)


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
        n_actions: object,
        n_features: object,
        alpha: object,
        l2_lambda: object,
        seed: object,
        store: object,
        key: object,
        checkpoint_every: object,
        actor_options: object,
    ) -> None:
        k = check_n_actions(n_actions)
        d = check_int("n_features", n_features, minimum=1)
        params = {
            "n_actions": k,
            "n_features": d,
            "alpha": _check_alpha(alpha),
            "l2_lambda": check_number("l2_lambda", l2_lambda, positive=True),
            "seed": _check_seed(seed),
        }
        self._start(
            params,
            n_actions=k,
            n_features=d,
            binary=False,
            store=store,
            key=key,
            checkpoint_every=checkpoint_every,
            actor_options=actor_options,
            extra_info={"mergeable": True},
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
    exactly: see `AgentReplicas`.

    Args:
        n_actions: Number of actions (an int >= 2).
        n_features: Length of a context (an int >= 1).
        alpha: Width of the confidence bonus (> 0); settable on a live agent.
        l2_lambda: Ridge regularisation (> 0).
        seed: Unused by LinUCB (accepted so every agent takes one).
        store: Checkpoint store (see `Agent`); None keeps the model in memory only.
        key: Checkpoint key (default: the actor's name, else a random key).
        checkpoint_every: Checkpoint after every N applied changes.
        actor_options: Options for the actor (``name``, ``num_cpus``, ...).

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2``, ``n_features < 1``, ``alpha <= 0``,
            ``l2_lambda <= 0``, or the store arguments are inconsistent.

    Examples:
        >>> agent = LinUCBAgent(2, 2, alpha=1.0)
        >>> agent.make_prediction([1.0, 0.0])  # nothing learnt: a tie, the lowest action
        0
        >>> agent.receive_feedback([1.0, 0.0], action=0, reward=-1.0)
        >>> agent.make_prediction([1.0, 0.0])  # action 0 disappointed here
        1
        >>> agent.kill()
    """

    _state_kind = "linucb"

    def __init__(
        self,
        n_actions: int,
        n_features: int,
        *,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        seed: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._start_linear(
            n_actions,
            n_features,
            alpha,
            l2_lambda,
            seed,
            store,
            key,
            checkpoint_every,
            actor_options,
        )


class ThompsonSamplingAgent(_LinearAgent):
    """Linear Thompson sampling (Agrawal and Goyal, 2013) in one actor.

    The same statistics as `LinUCBAgent`; instead of a bonus, the agent samples a
    plausible reward for each action, normal around its estimate with standard
    deviation ``alpha * sqrt(x^T A_a^-1 x)``, and plays the best sample. (Sampling
    the scalar ``theta~ . x`` directly is equivalent to sampling ``theta~`` from the
    posterior, and costs what LinUCB costs.)

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
        actor_options: Options for the actor.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2``, ``n_features < 1``, ``alpha <= 0``,
            ``l2_lambda <= 0``, ``seed < 0``, or the store arguments are
            inconsistent.

    Examples:
        >>> agent = ThompsonSamplingAgent(3, 2, seed=7)
        >>> actions = agent.make_predictions([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> all(a in range(3) for a in actions)
        True
        >>> agent.kill()
    """

    _state_kind = "thompson"

    def __init__(
        self,
        n_actions: int,
        n_features: int,
        *,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
        seed: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._start_linear(
            n_actions,
            n_features,
            alpha,
            l2_lambda,
            seed,
            store,
            key,
            checkpoint_every,
            actor_options,
        )


class RandomAgent(Agent):
    """Plays uniformly at random and learns nothing: the baseline every agent must beat.

    Args:
        n_actions: Number of actions (an int >= 2).
        n_features: Length of a context; None accepts any length, fixed by the
            first context seen.
        seed: Seed of the random stream (None: fresh entropy).
        store: Checkpoint store (it keeps the counters and random state).
        key: Checkpoint key.
        checkpoint_every: Checkpoint after every N applied changes.
        actor_options: Options for the actor.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2`` or ``seed < 0``.

    Examples:
        >>> agent = RandomAgent(4, seed=0)
        >>> agent.make_predictions([[0.0], [0.0], [0.0]])
        [3, 2, 2]
        >>> agent.kill()
    """

    _state_kind = "random"

    def __init__(
        self,
        n_actions: int,
        *,
        n_features: int | None = None,
        seed: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
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
        actor_options: Options for the actor.

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
        >>> agent = LearningAgent(SGDRegressor(), n_actions=2, epsilon=0.0, seed=0)
        >>> agent.receive_feedbacks([[1.0, 0.0], [1.0, 0.0]], [0, 1], [1.0, -1.0])
        >>> agent.make_prediction([1.0, 0.0])
        0
        >>> agent.set_params(epsilon=0.2)
        >>> [type(model).__name__ for model in agent.get_model()]
        ['SGDRegressor', 'SGDRegressor']
        >>> agent.kill()
    """

    _state_kind = "learning"
    _settable = ("epsilon", "retrain_every")

    def __init__(
        self,
        estimator: Any,
        n_actions: int,
        *,
        epsilon: float = 0.1,
        retrain_every: int = 1,
        seed: int | None = None,
        n_features: int | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
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

    def get_model(self, *, timeout: float | None = None) -> list[Any]:
        """Copies of the per-action models as fitted now (action 0 first).

        Args:
            timeout: Seconds to wait for the reply (None waits forever).

        Returns:
            ``n_actions`` fitted (or not yet fitted) estimators.
        """
        timeout = _check_timeout(timeout)
        models: list[Any] = ray.get(self.get_model_async(), timeout=timeout)
        return models

    def get_model_async(self) -> ObjectRef[list[Any]]:
        """Ask for copies of the models and return at once."""
        ref: ObjectRef[list[Any]] = self._actor.get_model.remote()
        return ref

    def set_model(self, models: Sequence[Any], *, timeout: float | None = None) -> None:
        """Install per-action models (e.g. from `get_model` of another agent).

        Args:
            models: ``n_actions`` estimators with ``partial_fit``, action 0 first.
            timeout: Seconds to wait for the acknowledgement (None waits forever).

        Raises:
            TypeError: If ``models`` is not a sequence of estimators with partial_fit.
            ValueError: If it does not hold ``n_actions`` models.
        """
        timeout = _check_timeout(timeout)
        ray.get(self.set_model_async(models), timeout=timeout)

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
