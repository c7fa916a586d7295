"""Several agents at once: replicas that merge what they learn, and a population that competes."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray import ObjectRef
from ray.util import list_named_actors

from patterns._actors import actor_info, check_options_and_naming, rebuild
from patterns._calls import DEFAULT, Timeout, get, stop_actors
from patterns._checkpointer import check_store_args, default_key, member_key
from patterns._checks import check_int, check_name, check_positive_float, describe
from patterns._facade import ActorFacade, check_facade_timeout, gather
from patterns.agents._agents import (
    Agent,
    LinUCBAgent,
    ThompsonSamplingAgent,
    _LinearAgent,
    linear_params,
)
from patterns.agents._env import BanditHistory, ContextualBanditEnv, _rounds
from patterns.agents._validate import check_action, check_context, check_contexts, check_reward
from patterns.checkpointing import CheckpointStore
from patterns.errors import CallTimeoutError, PatternError

__all__ = ["AgentPopulation", "AgentReplicas"]

# What agent_kwargs may hold: the linear bandits' own hyperparameters. Where the actors
# live, how they are named and checkpointed is the replicas' business, set on the facade.
_AGENT_KWARGS = ("n_actions", "n_features", "alpha", "l2_lambda", "seed")
_FACADE_ARGS = ("store", "key", "checkpoint_every", "name", "namespace", "timeout", "actor_options")
_REPLICA_NAME = re.compile(r"^(?P<base>.+)/replica-(?P<index>\d+)-of-(?P<count>\d+)$")


@ray.remote(num_cpus=0)
def _sum_deltas(*deltas: dict[str, Any]) -> dict[str, Any]:
    """One total for every replica: summed once, in one place, in a fixed order."""
    return {
        "A": np.sum([d["A"] for d in deltas], axis=0),
        "b": np.sum([d["b"] for d in deltas], axis=0),
        "feedbacks": sum(d["feedbacks"] for d in deltas),
    }


@ray.remote(num_cpus=0)
def _replica_stats(syncs: int, *each: dict[str, Any]) -> dict[str, Any]:
    return {
        "replicas": list(each),
        "feedbacks": sum(s["feedbacks"] for s in each),
        "predictions": sum(s["predictions"] for s in each),
        "syncs": syncs,
    }


def _check_agent_class(agent_class: object) -> type[_LinearAgent]:
    if not (isinstance(agent_class, type) and issubclass(agent_class, _LinearAgent)):
        msg = (
            "'agent_class' must be LinUCBAgent or ThompsonSamplingAgent (their statistics "
            f"merge), got {describe(agent_class)}"
        )
        raise TypeError(msg)
    return agent_class


def _check_agent_kwargs(agent_kwargs: object, kind: str) -> dict[str, Any]:
    if agent_kwargs is None:
        agent_kwargs = {}
    if not isinstance(agent_kwargs, Mapping):
        msg = f"'agent_kwargs' must be a dict of {kind} arguments, got {describe(agent_kwargs)}"
        raise TypeError(msg)
    for key in agent_kwargs:
        if key in _FACADE_ARGS:
            msg = (
                f"'agent_kwargs' may not set {key!r}: pass {key}= to AgentReplicas(...), "
                "which sets it for every replica"
            )
            raise ValueError(msg)
        if key not in _AGENT_KWARGS:
            msg = (
                f"'agent_kwargs' holds {key!r}, which is not an argument of {kind} "
                f"(it takes {', '.join(_AGENT_KWARGS)})"
            )
            raise TypeError(msg)
    missing = [key for key in ("n_actions", "n_features") if key not in agent_kwargs]
    if missing:
        msg = f"'agent_kwargs' must give {' and '.join(missing)} (every replica's sizes)"
        raise TypeError(msg)
    return dict(agent_kwargs)


def _replica_seed(seed: int | None, index: int) -> int | None:
    """Replica ``index``'s seed: its own stream, derived from ``(seed, index)``."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _check_legacy_keys(legacy_keys: object, n: int, has_store: bool) -> list[list[str]]:
    if legacy_keys is None:
        return [[] for _ in range(n)]
    if not has_store:
        raise ValueError("'legacy_keys' only applies to AgentReplicas with a 'store'")
    if isinstance(legacy_keys, str | bytes) or not isinstance(legacy_keys, Sequence):
        msg = (
            f"'legacy_keys' must be a list of {n} keys (one per replica), "
            f"got {describe(legacy_keys)}"
        )
        raise TypeError(msg)
    if len(legacy_keys) != n:
        msg = f"'legacy_keys' must hold {n} keys (one per replica), got {len(legacy_keys)}"
        raise ValueError(msg)
    return [[check_name("legacy_keys[i]", key)] for key in legacy_keys]


@dataclass(frozen=True)
class _Merge:
    """One replica's merge call of one sync, in flight."""

    sync: int
    replica: int
    ref: ObjectRef[None]


class AgentReplicas(ActorFacade):
    """Several actors of one linear bandit that learn in parallel and merge exactly.

    ``agent_class`` (`LinUCBAgent` or `ThompsonSamplingAgent`) is built
    ``n_replicas`` times with ``agent_kwargs``; each replica of a seeded Thompson
    agent draws from its own stream, derived from ``(seed, i)``. Predictions and
    feedbacks go to the replicas in turn, so ``R`` replicas serve about ``R``
    times the calls of one actor when there are cores for them. Every
    ``sync_every`` feedbacks (counted by this facade) the replicas merge:

    1. each replica reports its *delta*, the statistics ``(A, b)`` it added since
       the last merge (a read: nothing changes);
    2. one task sums the deltas;
    3. each replica adds the total and subtracts its own delta, then recomputes
       its inverses once.

    The statistics of a linear bandit are sums over feedbacks, so after a merge
    with no feedback in between, every replica holds exactly the statistics one
    agent would have after all the feedbacks (up to the order of floating-point
    additions), and all replicas hold the same bits. Feedback that reaches a
    replica during a merge is kept for the next one. Between merges a replica
    only knows the merged past and its own recent feedback, which costs some
    regret (measured on the tutorial page).

    Nothing blocks: the merge calls queue behind the feedback already sent to each
    replica (Ray runs one caller's calls to an actor in order). A merge that
    fails (a replica lost, a store that cannot write) is raised by the next
    feedback call, `sync` or ``close()``, once, naming the sync and the replica.
    `sync` forces a merge and waits for every merge in flight.

    Replica ``i`` of ``n`` is named ``{name}/replica-{i}-of-{n}`` and, with a
    store, checkpoints under ``{key}/replica-{i}-of-{n}``; merges carry request
    ids, so a merge re-sent after a crash is applied once. A new facade with the
    same store, key and ``n_replicas`` resumes from those checkpoints (call
    `sync` before ``close()`` so that every replica holds the last merge).
    ``close()`` waits for the merges in flight, then stops the replicas; a copy
    unpickled in a task, or a facade from `attach`, releases them instead.

    Args:
        agent_class: `LinUCBAgent` or `ThompsonSamplingAgent`.
        n_replicas: Number of replicas (an int >= 1).
        sync_every: Merge every N feedbacks (an int >= 1).
        agent_kwargs: The replicas' arguments: ``n_actions`` and ``n_features``
            (required), ``alpha``, ``l2_lambda``, ``seed``.
        store: Checkpoint store of every replica (None: in memory only).
        key: Checkpoint key prefix (default: the name, else a random key).
        checkpoint_every: Each replica checkpoints after every N applied changes.
        legacy_keys: With a store, one key per replica under which it saved
            checkpoints before (when replicas were made one by one, each with its
            own key): replica ``i`` restores from ``legacy_keys[i]`` when its own
            key holds nothing yet, and saves under its own key from then on.
        name: Name prefix of the replicas' actors (None: unnamed); `attach` finds
            them by it.
        namespace: Ray namespace of the named actors.
        timeout: Seconds each call waits by default (default 60; None: no bound).
        actor_options: Other options for every replica's actor.

    Raises:
        TypeError: If ``agent_class`` is not a linear bandit agent, or an argument
            has the wrong type.
        ValueError: If ``n_replicas < 1``, ``sync_every < 1``, an agent argument
            is out of range, or the store arguments are inconsistent.

    Examples:
        >>> from patterns import LinUCBAgent
        >>> with AgentReplicas(
        ...     LinUCBAgent, n_replicas=2, sync_every=4,
        ...     agent_kwargs={"n_actions": 3, "n_features": 2},
        ... ) as replicas:
        ...     for _ in range(4):
        ...         action = replicas.make_prediction([1.0, 0.5])
        ...         replicas.receive_feedback([1.0, 0.5], action, reward=1.0)
        ...     replicas.sync()
        ...     print([s["merged_feedbacks"] for s in replicas.stats()["replicas"]])
        [2, 2]
    """

    _agents: list[_LinearAgent]

    def __init__(
        self,
        agent_class: type[LinUCBAgent] | type[ThompsonSamplingAgent],
        *,
        n_replicas: int,
        sync_every: int,
        agent_kwargs: Mapping[str, Any] | None = None,
        store: CheckpointStore | None = None,
        key: str | None = None,
        checkpoint_every: int = 1,
        legacy_keys: Sequence[str] | None = None,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        cls = _check_agent_class(agent_class)
        n = check_int("n_replicas", n_replicas, minimum=1)
        every = check_int("sync_every", sync_every, minimum=1)
        kwargs = _check_agent_kwargs(agent_kwargs, cls.__name__)
        params = linear_params(**kwargs)
        checked_store, checkpoints = check_store_args(
            store, key, checkpoint_every, what="AgentReplicas"
        )
        seconds = check_facade_timeout(timeout)
        options, checked_name, checked_namespace, naming = check_options_and_naming(
            actor_options, name, namespace, defaults=None, facade="AgentReplicas"
        )
        base_key = default_key(key, naming, "agent-replicas") if checked_store is not None else None
        legacy = _check_legacy_keys(legacy_keys, n, checked_store is not None)
        agents: list[_LinearAgent] = []
        try:
            for index in range(n):
                member = f"replica-{index}-of-{n}"
                agent = cls.__new__(cls)
                agent._start_linear(
                    {**params, "seed": _replica_seed(params["seed"], index)},
                    store=checked_store,
                    key=None if base_key is None else member_key(base_key, member),
                    checkpoint_every=checkpoints,
                    name=None if checked_name is None else f"{checked_name}/{member}",
                    namespace=checked_namespace,
                    timeout=seconds,
                    actor_options=options,
                    extra_info={"replica": index, "n_replicas": n, "sync_every": every},
                    legacy_keys=legacy[index],
                    replica=True,
                )
                agents.append(agent)
        except BaseException:
            stop_actors([agent.actor for agent in agents], who="AgentReplicas")
            raise
        self._setup(agents, every, checked_name, checked_namespace, seconds)

    def _setup(
        self,
        agents: list[_LinearAgent],
        sync_every: int,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
    ) -> None:
        self._agents = list(agents)
        self._sync_every = sync_every
        # Separate turns for predictions and feedbacks: interleaved calls must not
        # send every prediction to one replica and every feedback to another.
        self._next_prediction = itertools.count()
        self._next_feedback = itertools.count()
        self._since_sync = 0
        self._syncs = 0
        self._merges: list[_Merge] = []  # every merge in flight, of every sync
        self._failed: list[PatternError] = []  # failed merges not reported yet
        self._init_facade(
            [agent.actor for agent in agents],
            name=name,
            namespace=namespace,
            owned=True,
            timeout=timeout,
        )

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Timeout = DEFAULT,
    ) -> AgentReplicas:
        """Return a facade for the live replicas named ``{name}/replica-{i}-of-{n}``.

        The facade does not own the replicas unless ``own=True``: its ``close()``
        releases them. It merges every ``sync_every`` feedbacks, as the replicas
        were created with, counting its own feedbacks.

        Args:
            name: The ``name=`` the replicas were created with.
            namespace: Their Ray namespace (default: this job's).
            own: Take the replicas over: ``close()`` stops them.
            timeout: The facade's timeout for its calls (default 60 s).

        Raises:
            TypeError: If the actors are not replicas of a linear bandit agent.
            ValueError: If no complete set of live replicas has that name.
        """
        check_name("name", name)
        if namespace is not None:
            check_name("namespace", namespace)
        seconds = check_facade_timeout(timeout)
        where = namespace or ray.get_runtime_context().namespace
        found: dict[int, tuple[int, str]] = {}
        for entry in list_named_actors(all_namespaces=True):
            match = _REPLICA_NAME.match(entry["name"])
            if match and match["base"] == name and entry["namespace"] == where:
                found[int(match["index"])] = (int(match["count"]), entry["name"])
        counts = {count for count, _ in found.values()}
        if not found or len(counts) != 1 or sorted(found) != list(range(counts.pop())):
            msg = f"no complete set of live AgentReplicas named {name!r} in namespace {where!r}"
            raise ValueError(msg)
        agents: list[_LinearAgent] = []
        sync_every = 1
        for index in sorted(found):
            member = found[index][1]
            actor = ray.get_actor(member, namespace=where)
            info = actor_info(actor, member, what="agent replica", timeout=seconds)
            agent_cls = {"LinUCBAgent": LinUCBAgent, "ThompsonSamplingAgent": ThompsonSamplingAgent}
            if info.get("kind") not in agent_cls or "sync_every" not in info:
                msg = f"the actor named {member!r} is not a replica of AgentReplicas"
                raise TypeError(msg)
            sync_every = int(info["sync_every"])
            info = {**info, "name": member, "namespace": namespace}
            agents.append(rebuild(agent_cls[info["kind"]], actor, info, seconds, owned=False))
        return rebuild(AgentReplicas, agents, sync_every, name, namespace, seconds, owned=bool(own))

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy gets copies of the replica facades (fresh request ids, not owning).
        state = (self._agents, self._sync_every, self.name, self.namespace, self.timeout)
        return (rebuild, (AgentReplicas, *state))

    def __len__(self) -> int:
        return len(self._agents)

    def __repr__(self) -> str:
        kind = type(self._agents[0]).__name__
        named = f", name={self.name!r}" if self.name else ""
        return (
            f"AgentReplicas({kind}, n_replicas={len(self)}, sync_every={self._sync_every}{named})"
        )

    @property
    def agents(self) -> list[Agent]:
        """The replicas' facades, replica 0 first (closing one stops that replica)."""
        return list(self._agents)

    @property
    def n_replicas(self) -> int:
        """The number of replicas."""
        return len(self._agents)

    @property
    def sync_every(self) -> int:
        """Feedbacks (sent through this facade) between two merges."""
        return self._sync_every

    @property
    def n_actions(self) -> int:
        """The number of actions of every replica."""
        return self._agents[0].n_actions

    @property
    def n_features(self) -> int | None:
        """The length of a context."""
        return self._agents[0].n_features

    def _pick(self, turns: Iterator[int] | None = None) -> _LinearAgent:
        turn = next(turns if turns is not None else self._next_prediction)
        return self._agents[turn % len(self._agents)]

    # --- merges -------------------------------------------------------------------

    def _settle(self, method: str, *, wait_s: float | None = 0.0) -> None:
        """Collect finished merges; raise the first failure not reported yet.

        With ``wait_s`` other than 0, wait (that long at most) for every merge in
        flight first: `CallTimeoutError` if some did not finish.
        """
        if self._merges:
            refs = [merge.ref for merge in self._merges]
            if wait_s == 0:
                done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            else:
                done, _ = self._wait(refs, num_returns=len(refs), timeout=wait_s, method=method)
            finished = set(done)
            for merge in [m for m in self._merges if m.ref in finished]:
                what = f"merge (sync {merge.sync}, replica {merge.replica})"
                try:
                    get(merge.ref, timeout=self.timeout, who=self._who, method=what)
                except PatternError as exc:
                    self._failed.append(exc)
            self._merges = [m for m in self._merges if m.ref not in finished]
        if self._failed:
            raise self._failed.pop(0)

    def _start_sync(self) -> list[_Merge]:
        self._since_sync = 0
        self._syncs += 1
        # No need to wait for the previous merge: each replica runs this facade's calls
        # in the order they were sent, so its delta below is taken after that merge.
        deltas: list[ObjectRef[dict[str, Any]]] = [
            agent.actor.delta.remote() for agent in self._agents
        ]
        total = _sum_deltas.remote(*deltas)
        started = [
            _Merge(self._syncs, index, agent.actor.merge.remote(total, own, *agent._ids()))
            for index, (agent, own) in enumerate(zip(self._agents, deltas, strict=True))
        ]
        self._merges += started  # kept until seen: an earlier merge's failure is raised too
        return started

    def _count(self, feedbacks: int) -> None:
        self._since_sync += feedbacks
        if self._since_sync >= self._sync_every:
            self._start_sync()

    def sync(self, *, timeout: Timeout = DEFAULT) -> None:
        """Merge now and wait until every replica has applied it (and every earlier merge).

        Args:
            timeout: Seconds to wait (default: the facade's timeout).

        Raises:
            CallTimeoutError: Some merge did not finish in time.
            PatternError: A merge failed (this one or an earlier one), naming the
                sync and the replica.
        """
        seconds = self._seconds(timeout)
        self._check_open("sync")
        self._start_sync()
        self._settle("sync", wait_s=seconds)

    def sync_async(self) -> ObjectRef[list[None]]:
        """Merge now and return at once: an ObjectRef that resolves when every merge in
        flight is applied (and raises if one failed)."""
        self._check_open("sync_async")
        self._settle("sync_async")
        self._start_sync()
        handed, self._merges = self._merges, []  # the caller sees their outcome now
        ref: ObjectRef[list[None]] = gather.remote(*[merge.ref for merge in handed])
        return ref

    def _release(self, timeout: float | None) -> None:
        try:
            self._settle("close", wait_s=timeout)
        finally:
            for agent in self._agents:
                agent._facade_closed = True  # their actors are this facade's: stopped next

    # --- predictions and feedback ---------------------------------------------------

    def make_prediction(self, context: Any, *, timeout: Timeout = DEFAULT) -> int:
        """Choose an action for ``context`` (on the next replica in turn).

        Args:
            context: A 1-D array of ``n_features`` finite numbers.
            timeout: Seconds to wait for the reply (default: the facade's timeout).
        """
        seconds = self._seconds(timeout)
        ref = self.make_prediction_async(context)
        return int(self._get(ref, timeout=seconds, method="make_prediction"))

    def make_prediction_async(self, context: Any) -> ObjectRef[int]:
        """Send ``context`` to the next replica and return at once."""
        self._check_open("make_prediction_async")
        return self._pick().make_prediction_async(context)

    def make_predictions(self, contexts: Any, *, timeout: Timeout = DEFAULT) -> list[int]:
        """Choose actions for a batch of contexts (one replica takes the batch)."""
        seconds = self._seconds(timeout)
        ref = self.make_predictions_async(contexts)
        return list(self._get(ref, timeout=seconds, method="make_predictions"))

    def make_predictions_async(self, contexts: Any) -> ObjectRef[list[int]]:
        """Send a batch of contexts to the next replica and return at once."""
        self._check_open("make_predictions_async")
        return self._pick().make_predictions_async(contexts)

    def receive_feedback(
        self, context: Any, action: int, reward: float, *, timeout: Timeout = DEFAULT
    ) -> None:
        """Give one feedback to the next replica; wait for its acknowledgement.

        Args:
            context: The context the action was chosen for.
            action: The action played.
            reward: What it earned.
            timeout: Seconds to wait (default: the facade's timeout).

        Raises:
            PatternError: An earlier merge failed (reported once), or the
                feedback failed.
        """
        seconds = self._seconds(timeout)
        ref = self.receive_feedback_async(context, action, reward)
        self._get(ref, timeout=seconds, method="receive_feedback")

    def receive_feedback_async(self, context: Any, action: int, reward: float) -> ObjectRef[None]:
        """Give one feedback to the next replica and return at once (merges when due)."""
        self._check_open("receive_feedback_async")
        self._settle("receive_feedback_async")
        ref = self._pick(self._next_feedback).receive_feedback_async(context, action, reward)
        self._count(1)
        return ref

    def receive_feedbacks(
        self, contexts: Any, actions: Any, rewards: Any, *, timeout: Timeout = DEFAULT
    ) -> None:
        """Give a batch of feedbacks to the next replica; wait for its acknowledgement."""
        seconds = self._seconds(timeout)
        ref = self.receive_feedbacks_async(contexts, actions, rewards)
        self._get(ref, timeout=seconds, method="receive_feedbacks")

    def receive_feedbacks_async(self, contexts: Any, actions: Any, rewards: Any) -> ObjectRef[None]:
        """Give a batch to the next replica and return at once (merges when due)."""
        self._check_open("receive_feedbacks_async")
        self._settle("receive_feedbacks_async")
        agent = self._pick(self._next_feedback)
        ref = agent.receive_feedbacks_async(contexts, actions, rewards)
        self._count(len(check_contexts(contexts, agent.n_features)))
        return ref

    # --- parameters and statistics ------------------------------------------------

    def statistics(self, *, timeout: Timeout = DEFAULT) -> list[dict[str, np.ndarray]]:
        """Each replica's statistics ``{"A": (k, d, d), "b": (k, d)}``, replica 0 first."""
        seconds = self._seconds(timeout)
        return list(self._get(self.statistics_async(), timeout=seconds, method="statistics"))

    def statistics_async(self) -> ObjectRef[list[dict[str, np.ndarray]]]:
        """Ask every replica for its statistics and return at once."""
        self._check_open("statistics_async")
        ref: ObjectRef[list[dict[str, np.ndarray]]] = gather.remote(
            *[agent.actor.statistics.remote() for agent in self._agents]
        )
        return ref

    def get_params(self, *, timeout: Timeout = DEFAULT) -> dict[str, Any]:
        """The hyperparameters of replica 0 (all replicas share them but the seed)."""
        seconds = self._seconds(timeout)
        params: dict[str, Any] = self._get(
            self.get_params_async(), timeout=seconds, method="get_params"
        )
        return params

    def get_params_async(self) -> ObjectRef[dict[str, Any]]:
        """Ask replica 0 for the hyperparameters and return at once."""
        self._check_open("get_params_async")
        return self._agents[0].get_params_async()

    def set_params(self, *, timeout: Timeout = DEFAULT, **params: Any) -> None:
        """Change hyperparameters on every replica (checked before anything is sent)."""
        seconds = self._seconds(timeout)
        self._get(self.set_params_async(**params), timeout=seconds, method="set_params")

    def set_params_async(self, **params: Any) -> ObjectRef[list[None]]:
        """Send a change of hyperparameters to every replica and return at once."""
        self._check_open("set_params_async")
        checked = self._agents[0]._check_params(dict(params))
        ref: ObjectRef[list[None]] = gather.remote(
            *[agent.set_params_async(**checked) for agent in self._agents]
        )
        return ref

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        # stats(): the common keys; feedbacks and predictions summed over the replicas,
        # syncs started by this facade, and replicas: each replica's counters.
        ref: ObjectRef[dict[str, Any]] = _replica_stats.remote(
            self._syncs, *[agent.actor.stats.remote() for agent in self._agents]
        )
        return ref


@ray.remote(num_cpus=0)
def _named(names: list[str], *values: Any) -> dict[str, Any]:
    return dict(zip(names, values, strict=True))


@ray.remote(num_cpus=0)
def _board(names: list[str], *stats: dict[str, Any]) -> list[tuple[str, float]]:
    board = [(n, float(s["reward_sum"])) for n, s in zip(names, stats, strict=True)]
    return sorted(board, key=lambda item: item[1], reverse=True)


@ray.remote(num_cpus=0)
def _first(board: list[tuple[str, float]]) -> str:
    return board[0][0]


class AgentPopulation(ActorFacade):
    """Many agents, one stream: they compete on the same contexts and the same luck.

    Each round, every member chooses an action for the same context (all members
    at once, in parallel) and receives the reward its own action drew from that
    round's rewards (`ContextualBanditEnv.sample_rewards`). The `leaderboard` ranks
    members by the reward they received; `set_params` retunes any member while
    the others run on.

    The population takes its members over: ``close()`` (what ``with`` does)
    closes every member, stopping the actors whose facades started them and
    releasing attached ones. A copy unpickled in a task releases them all.

    Args:
        members: Named agents: ``{"name": agent, ...}`` (any agents of this module).
        timeout: Seconds each call waits by default (default 60; None: no bound).

    Raises:
        TypeError: If ``members`` is not a mapping of names to agents.
        ValueError: If it is empty, a member is closed, or the members differ in
            ``n_actions``.

    Examples:
        >>> from patterns import ContextualBanditEnv, LinUCBAgent, RandomAgent
        >>> with AgentPopulation({
        ...     "linucb": LinUCBAgent(n_actions=3, n_features=2),
        ...     "random": RandomAgent(n_actions=3, seed=0),
        ... }) as population:
        ...     env = ContextualBanditEnv(n_actions=3, n_features=2, seed=0)
        ...     histories = population.run(env, rounds=300, batch_size=50)
        ...     print(population.best())
        linucb
    """

    def __init__(self, members: Mapping[str, Agent], *, timeout: Timeout = DEFAULT) -> None:
        if not isinstance(members, Mapping):
            msg = f"'members' must be a dict of names to agents, got {describe(members)}"
            raise TypeError(msg)
        if not members:
            raise ValueError("'members' must hold at least one agent, got an empty dict")
        for name, agent in members.items():
            check_name("members key", name)
            if not isinstance(agent, Agent):
                msg = f"'members[{name!r}]' must be an agent of this module, got {describe(agent)}"
                raise TypeError(msg)
            if agent.closed:
                msg = f"'members[{name!r}]' is closed: pass a live agent"
                raise ValueError(msg)
        sizes = {agent.n_actions for agent in members.values()}
        if len(sizes) > 1:
            msg = f"the members must have the same n_actions, got {sorted(sizes)}"
            raise ValueError(msg)
        self._setup(dict(members), check_facade_timeout(timeout))

    def _setup(self, members: dict[str, Agent], timeout: float | None) -> None:
        self._members = members
        self._n_actions = next(iter(members.values())).n_actions
        self._init_facade(
            [agent.actor for agent in members.values()],
            name=None,
            namespace=None,
            owned=True,
            timeout=timeout,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild, (AgentPopulation, self._members, self.timeout))

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __getitem__(self, name: str) -> Agent:
        try:
            return self._members[name]
        except KeyError:
            msg = f"no member named {name!r} (members: {', '.join(self._members)})"
            raise KeyError(msg) from None

    def __repr__(self) -> str:
        return f"AgentPopulation(members={list(self._members)})"

    @property
    def members(self) -> dict[str, Agent]:
        """The members by name."""
        return dict(self._members)

    def close(self, *, timeout: object = DEFAULT) -> None:
        """Close every member: stop the actors their facades own, and wait until they are dead.

        Members obtained by ``attach`` (and every member, for a copy of the
        population unpickled in a task) are released instead: their actors keep
        running. Calling ``close()`` again does nothing.

        Args:
            timeout: Seconds for Ray to report the actors dead (default: the
                population's timeout; None: no bound).

        Raises:
            CallTimeoutError: Some actor was still alive after ``timeout`` (the
                population is closed all the same).
        """
        seconds = self._seconds(timeout)
        if self.closed:
            return
        self._facade_closed = True
        owned = [m.actor for m in self._members.values() if self.owned and m.owned and not m.closed]
        for member in self._members.values():
            member._facade_closed = True
        stop_actors(owned, timeout=seconds, who=self._who)

    # --- one round at a time --------------------------------------------------------

    def make_prediction(self, context: Any, *, timeout: Timeout = DEFAULT) -> dict[str, int]:
        """Every member's action for ``context``, asked of all members at once.

        Args:
            context: A 1-D array of finite numbers.
            timeout: Seconds to wait for all replies (default: the population's).

        Returns:
            Member name to action.
        """
        seconds = self._seconds(timeout)
        ref = self.make_prediction_async(context)
        actions: dict[str, int] = self._get(ref, timeout=seconds, method="make_prediction")
        return {name: int(action) for name, action in actions.items()}

    def make_prediction_async(self, context: Any) -> ObjectRef[dict[str, int]]:
        """Send ``context`` to every member and return at once: an ObjectRef to the dict."""
        x = check_context(context, None)
        self._check_open("make_prediction_async")
        names = list(self._members)
        ref: ObjectRef[dict[str, int]] = _named.remote(
            names, *[self._members[n].make_prediction_async(x) for n in names]
        )
        return ref

    def receive_feedback(
        self,
        context: Any,
        actions: Mapping[str, int],
        rewards: Mapping[str, float],
        *,
        timeout: Timeout = DEFAULT,
    ) -> None:
        """Give each member the reward of its own action; wait for every acknowledgement.

        Args:
            context: The context of the round.
            actions: Member name to the action it played (every member).
            rewards: Member name to the reward it received (every member).
            timeout: Seconds to wait (default: the population's timeout).

        Raises:
            ValueError: If a member is missing from ``actions`` or ``rewards``, or a
                value is out of range.
        """
        seconds = self._seconds(timeout)
        ref = self.receive_feedback_async(context, actions, rewards)
        self._get(ref, timeout=seconds, method="receive_feedback")

    def receive_feedback_async(
        self, context: Any, actions: Mapping[str, int], rewards: Mapping[str, float]
    ) -> ObjectRef[list[None]]:
        """Send every member its feedback and return at once (see `receive_feedback`)."""
        x = check_context(context, None)
        checked = {}
        for name in self._members:
            if name not in actions or name not in rewards:
                msg = f"'actions' and 'rewards' must name every member; {name!r} is missing"
                raise ValueError(msg)
            checked[name] = (
                check_action(actions[name], self._n_actions, name=f"actions[{name!r}]"),
                check_reward(rewards[name], False, name=f"rewards[{name!r}]"),
            )
        self._check_open("receive_feedback_async")
        ref: ObjectRef[list[None]] = gather.remote(
            *[self._members[n].receive_feedback_async(x, a, r) for n, (a, r) in checked.items()]
        )
        return ref

    # --- a whole run --------------------------------------------------------------

    def run(
        self,
        env: ContextualBanditEnv,
        *,
        rounds: int,
        batch_size: int = 1,
        budget_s: float | None = None,
        timeout: Timeout = DEFAULT,
    ) -> dict[str, BanditHistory]:
        """Play ``rounds`` rounds of ``env`` with every member at once.

        A long operation: each wait for the members' replies is bounded by
        ``timeout``, and the whole run by ``budget_s``; a member that is stuck
        raises `CallTimeoutError` instead of hanging the run.

        Args:
            env: The environment: one context per round for all members, and one
                draw of rewards per round, each member receiving its action's.
            rounds: How many rounds (an int >= 1).
            batch_size: Rounds per call to each member (see `run_bandit`).
            budget_s: Seconds the whole run may take (None: no overall bound).
            timeout: Seconds each batch may wait for the members (default: the
                population's timeout).

        Returns:
            Member name to its `BanditHistory`.

        Raises:
            CallTimeoutError: A batch got no reply within ``timeout``, or the run
                did not finish within ``budget_s``.
        """
        rounds = check_int("rounds", rounds, minimum=1)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        limit = None if budget_s is None else check_positive_float("budget_s", budget_s)
        per_call = self._seconds(timeout)
        if not isinstance(env, ContextualBanditEnv):
            msg = f"'env' must be a ContextualBanditEnv, got {describe(env)}"
            raise TypeError(msg)
        self._check_open("run")
        deadline = None if limit is None else time.monotonic() + limit
        names = list(self._members)
        k = len(names)
        actions = np.empty((k, rounds), dtype=np.int64)
        rewards = np.empty((k, rounds))
        expected = np.empty((k, rounds))
        best = np.empty(rounds)
        oracle = np.empty(rounds)
        for start, contexts, means, drawn in _rounds(env, rounds, batch_size):
            stop = start + len(contexts)
            refs = [self._members[n].make_predictions_async(contexts) for n in names]
            chosen = np.array(
                self._bounded(refs, per_call, deadline, limit, start, rounds, "make_predictions"),
                dtype=np.int64,
            )  # (members, batch)
            rows = np.arange(len(contexts))
            top = np.argmax(means, axis=1)
            best[start:stop], oracle[start:stop] = means[rows, top], drawn[rows, top]
            actions[:, start:stop] = chosen
            rewards[:, start:stop] = drawn[rows, chosen]
            expected[:, start:stop] = means[rows, chosen]
            feedback = [
                self._members[n].receive_feedbacks_async(
                    contexts, actions[j, start:stop], rewards[j, start:stop]
                )
                for j, n in enumerate(names)
            ]
            self._bounded(feedback, per_call, deadline, limit, start, rounds, "receive_feedbacks")
        return {
            n: BanditHistory(actions[j], rewards[j], expected[j], best, oracle, label=n)
            for j, n in enumerate(names)
        }

    def _bounded(
        self,
        refs: list[Any],
        per_call: float | None,
        deadline: float | None,
        limit: float | None,
        played: int,
        rounds: int,
        method: str,
    ) -> Any:
        if deadline is None:
            return self._get(refs, timeout=per_call, method=f"run ({method})")
        left = deadline - time.monotonic()
        if left <= 0:
            msg = (
                f"{self._who}: run spent its budget_s={limit:g} s after {played} of {rounds} rounds"
            )
            raise CallTimeoutError(msg)
        if per_call is not None and per_call <= left:
            return self._get(refs, timeout=per_call, method=f"run ({method})")
        try:
            return self._get(refs, timeout=left, method=f"run ({method})")
        except CallTimeoutError as exc:
            msg = (
                f"{self._who}: run spent its budget_s={limit:g} s after {played} of {rounds} "
                f"rounds, waiting for the members' {method}"
            )
            raise CallTimeoutError(msg) from exc

    # --- ranking and parameters -------------------------------------------------------

    def leaderboard(self, *, timeout: Timeout = DEFAULT) -> list[tuple[str, float]]:
        """Members ranked by the reward they received (``stats()["reward_sum"]``), best first.

        Args:
            timeout: Seconds to wait (default: the population's timeout).

        Returns:
            ``(name, cumulative reward)`` pairs, best first.
        """
        seconds = self._seconds(timeout)
        board: list[tuple[str, float]] = self._get(
            self.leaderboard_async(), timeout=seconds, method="leaderboard"
        )
        return [(name, float(reward)) for name, reward in board]

    def leaderboard_async(self) -> ObjectRef[list[tuple[str, float]]]:
        """Ask for the `leaderboard` and return at once."""
        self._check_open("leaderboard_async")
        names = list(self._members)
        ref: ObjectRef[list[tuple[str, float]]] = _board.remote(
            names, *[self._members[n].actor.stats.remote() for n in names]
        )
        return ref

    def best(self, *, timeout: Timeout = DEFAULT) -> str:
        """The name of the member with the most reward so far."""
        return self.leaderboard(timeout=timeout)[0][0]

    def best_async(self) -> ObjectRef[str]:
        """Ask for the `best` member's name and return at once."""
        ref: ObjectRef[str] = _first.remote(self.leaderboard_async())
        return ref

    def get_params(self, *, timeout: Timeout = DEFAULT) -> dict[str, dict[str, Any]]:
        """Every member's hyperparameters, by name."""
        seconds = self._seconds(timeout)
        params: dict[str, dict[str, Any]] = self._get(
            self.get_params_async(), timeout=seconds, method="get_params"
        )
        return params

    def get_params_async(self) -> ObjectRef[dict[str, dict[str, Any]]]:
        """Ask every member for its hyperparameters and return at once."""
        self._check_open("get_params_async")
        names = list(self._members)
        ref: ObjectRef[dict[str, dict[str, Any]]] = _named.remote(
            names, *[self._members[n].get_params_async() for n in names]
        )
        return ref

    def set_params(self, name: str, *, timeout: Timeout = DEFAULT, **params: Any) -> None:
        """Retune member ``name`` live (checked before anything is sent).

        Args:
            name: The member.
            timeout: Seconds to wait for the acknowledgement (default: the
                population's timeout).
            **params: Hyperparameters, as the member's `Agent.set_params` takes them.
        """
        seconds = self._seconds(timeout)
        self._get(self.set_params_async(name, **params), timeout=seconds, method="set_params")

    def set_params_async(self, name: str, **params: Any) -> ObjectRef[None]:
        """Send member ``name`` a change of hyperparameters and return at once."""
        member = self[name]
        self._check_open("set_params_async")
        return member.set_params_async(**params)

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        # stats(): the common keys, and members: each member's counters by name.
        names = list(self._members)
        ref: ObjectRef[dict[str, Any]] = _members_stats.remote(
            names, *[self._members[n].actor.stats.remote() for n in names]
        )
        return ref


@ray.remote(num_cpus=0)
def _members_stats(names: list[str], *stats: dict[str, Any]) -> dict[str, Any]:
    return {"members": dict(zip(names, stats, strict=True))}
