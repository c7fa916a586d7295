"""Several agents at once: replicas that merge what they learn, and a population that competes."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import ray
from ray import ObjectRef

from patterns._checks import check_int, check_name, check_positive_float, describe
from patterns.agents._agents import Agent, _LinearAgent
from patterns.agents._env import BanditHistory, ContextualBanditEnv, _rounds
from patterns.agents._validate import (
    check_action,
    check_context,
    check_contexts,
    check_reward,
)

__all__ = ["AgentPopulation", "AgentReplicas"]


def _check_timeout(timeout: object) -> float | None:
    return None if timeout is None else check_positive_float("timeout", timeout)


@ray.remote(num_cpus=0)
def _sum_deltas(*deltas: dict[str, Any]) -> dict[str, Any]:
    """One total for every replica: summed once, in one place, in a fixed order."""
    return {
        "A": np.sum([d["A"] for d in deltas], axis=0),
        "b": np.sum([d["b"] for d in deltas], axis=0),
        "feedbacks": sum(d["feedbacks"] for d in deltas),
    }


class AgentReplicas:
    """Several actors of one linear bandit that learn in parallel and merge exactly.

    ``make_agent(i)`` creates replica ``i`` (a `LinUCBAgent` or
    `ThompsonSamplingAgent`; give Thompson replicas different seeds). Predictions
    and feedbacks go to the replicas in turn, so ``R`` replicas serve about ``R``
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
    replica (Ray runs one caller's calls to an actor in order). `sync` forces a
    merge and waits for it.

    With stores, each replica checkpoints under its own key; merges carry request
    ids, so a merge re-sent after a crash is applied once.

    Args:
        make_agent: Called as ``make_agent(i)`` for ``i`` in ``range(replicas)``;
            returns a fresh (nothing learnt yet) LinUCBAgent or
            ThompsonSamplingAgent, all of the same kind and sizes.
        replicas: Number of replicas (an int >= 1).
        sync_every: Merge every N feedbacks (an int >= 1).

    Raises:
        TypeError: If ``make_agent`` is not callable or returns something other
            than a linear bandit agent.
        ValueError: If ``replicas < 1``, ``sync_every < 1``, the replicas differ in
            kind or size, share a checkpoint key, or have learnt something already.

    Examples:
        >>> from patterns import LinUCBAgent
        >>> replicas = AgentReplicas(lambda i: LinUCBAgent(3, 2), replicas=2, sync_every=4)
        >>> for _ in range(4):
        ...     action = replicas.make_prediction([1.0, 0.5])
        ...     replicas.receive_feedback([1.0, 0.5], action, reward=1.0)
        >>> replicas.sync()
        >>> [s["merged_feedbacks"] for s in replicas.stats()["replicas"]]
        [2, 2]
        >>> replicas.kill()
    """

    def __init__(
        self, make_agent: Callable[[int], Agent], *, replicas: int, sync_every: int
    ) -> None:
        if not callable(make_agent):
            msg = f"'make_agent' must be a callable returning an agent, got {describe(make_agent)}"
            raise TypeError(msg)
        replicas = check_int("replicas", replicas, minimum=1)
        self._sync_every = check_int("sync_every", sync_every, minimum=1)
        agents: list[Agent] = []
        try:
            for index in range(replicas):
                agent = make_agent(index)
                agents.append(agent)
                if not isinstance(agent, _LinearAgent):
                    msg = (
                        "'make_agent' must return a LinUCBAgent or ThompsonSamplingAgent "
                        f"(their statistics merge), got {describe(agent)}"
                    )
                    raise TypeError(msg)
            _check_alike(agents)
            ray.get([a.actor.track_deltas.remote() for a in agents], timeout=120)
        except BaseException:
            for agent in agents:
                if isinstance(agent, Agent):
                    agent.kill()
            raise
        self._agents = agents
        # Separate turns for predictions and feedbacks: interleaved calls must not
        # send every prediction to one replica and every feedback to another.
        self._next_prediction = itertools.count()
        self._next_feedback = itertools.count()
        self._since_sync = 0
        self._merges: list[ObjectRef[None]] = []
        self.syncs = 0

    def __len__(self) -> int:
        return len(self._agents)

    def __repr__(self) -> str:
        kind = type(self._agents[0]).__name__
        return f"AgentReplicas({kind} x {len(self)}, sync_every={self._sync_every})"

    @property
    def agents(self) -> list[Agent]:
        """The replica agents, replica 0 first."""
        return list(self._agents)

    @property
    def n_actions(self) -> int:
        """The number of actions of every replica."""
        return self._agents[0].n_actions

    def _pick(self, turns: Iterator[int] | None = None) -> Agent:
        turn = next(turns if turns is not None else self._next_prediction)
        return self._agents[turn % len(self._agents)]

    def make_prediction(self, context: Any, *, timeout: float | None = None) -> int:
        """Choose an action for ``context`` (on the next replica in turn).

        Args:
            context: A 1-D array of ``n_features`` finite numbers.
            timeout: Seconds to wait for the reply (None waits forever).
        """
        return self._pick().make_prediction(context, timeout=timeout)

    def make_prediction_async(self, context: Any) -> ObjectRef[int]:
        """Send ``context`` to the next replica and return at once."""
        return self._pick().make_prediction_async(context)

    def make_predictions(self, contexts: Any, *, timeout: float | None = None) -> list[int]:
        """Choose actions for a batch of contexts (one replica takes the batch)."""
        return self._pick().make_predictions(contexts, timeout=timeout)

    def make_predictions_async(self, contexts: Any) -> ObjectRef[list[int]]:
        """Send a batch of contexts to the next replica and return at once."""
        return self._pick().make_predictions_async(contexts)

    def receive_feedback(
        self, context: Any, action: int, reward: float, *, timeout: float | None = None
    ) -> None:
        """Give one feedback to the next replica; wait for its acknowledgement.

        Args:
            context: The context the action was chosen for.
            action: The action played.
            reward: What it earned.
            timeout: Seconds to wait (None waits forever).
        """
        timeout = _check_timeout(timeout)
        ray.get(self.receive_feedback_async(context, action, reward), timeout=timeout)

    def receive_feedback_async(self, context: Any, action: int, reward: float) -> ObjectRef[None]:
        """Give one feedback to the next replica and return at once (merges when due)."""
        ref = self._pick(self._next_feedback).receive_feedback_async(context, action, reward)
        self._count(1)
        return ref

    def receive_feedbacks(
        self, contexts: Any, actions: Any, rewards: Any, *, timeout: float | None = None
    ) -> None:
        """Give a batch of feedbacks to the next replica; wait for its acknowledgement."""
        timeout = _check_timeout(timeout)
        ray.get(self.receive_feedbacks_async(contexts, actions, rewards), timeout=timeout)

    def receive_feedbacks_async(self, contexts: Any, actions: Any, rewards: Any) -> ObjectRef[None]:
        """Give a batch to the next replica and return at once (merges when due)."""
        agent = self._pick(self._next_feedback)
        ref = agent.receive_feedbacks_async(contexts, actions, rewards)
        self._count(len(check_contexts(contexts, agent.n_features)))
        return ref

    def _count(self, feedbacks: int) -> None:
        self._since_sync += feedbacks
        if self._since_sync >= self._sync_every:
            self._start_sync()

    def _start_sync(self) -> None:
        self._since_sync = 0
        # No need to wait for the previous merge: each replica runs this facade's calls
        # in the order they were sent, so its delta below is taken after that merge.
        deltas: list[ObjectRef[dict[str, Any]]] = [
            agent.actor.delta.remote() for agent in self._agents
        ]
        total = _sum_deltas.remote(*deltas)
        self._merges = [
            agent.actor.merge.remote(total, own, *agent._ids())
            for agent, own in zip(self._agents, deltas, strict=True)
        ]
        self.syncs += 1

    def sync(self, *, timeout: float | None = None) -> None:
        """Merge now and wait until every replica has applied the merge.

        Args:
            timeout: Seconds to wait (None waits forever).
        """
        timeout = _check_timeout(timeout)
        self._start_sync()
        ray.get(self._merges, timeout=timeout)

    def statistics(self, *, timeout: float | None = None) -> list[dict[str, np.ndarray]]:
        """Each replica's statistics ``{"A": (k, d, d), "b": (k, d)}``, replica 0 first."""
        timeout = _check_timeout(timeout)
        return list(ray.get([a.actor.statistics.remote() for a in self._agents], timeout=timeout))

    def get_params(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The hyperparameters of replica 0 (all replicas share them)."""
        return self._agents[0].get_params(timeout=timeout)

    def set_params(self, *, timeout: float | None = None, **params: Any) -> None:
        """Change hyperparameters on every replica (checked before anything is sent)."""
        timeout = _check_timeout(timeout)
        refs = [agent.set_params_async(**params) for agent in self._agents]
        ray.get(refs, timeout=timeout)

    def stats(self, *, timeout: float | None = None) -> dict[str, Any]:
        """Totals over the replicas and each replica's own counters.

        Returns:
            ``feedbacks`` and ``predictions`` summed, ``syncs`` started by this
            facade, and ``replicas``: the list of each replica's `Agent.stats`.
        """
        timeout = _check_timeout(timeout)
        each = ray.get([a.stats_async() for a in self._agents], timeout=timeout)
        return {
            "replicas": each,
            "feedbacks": sum(s["feedbacks"] for s in each),
            "predictions": sum(s["predictions"] for s in each),
            "syncs": self.syncs,
        }

    def pids(self, *, timeout: float | None = None) -> list[int]:
        """The process id of each replica, replica 0 first."""
        timeout = _check_timeout(timeout)
        return [int(p) for p in ray.get([a.pid_async() for a in self._agents], timeout=timeout)]

    def kill(self) -> None:
        """Terminate every replica for good (after a merge in flight, if any, is done)."""
        # A merge started by the last feedbacks would otherwise lose its replicas midway
        # and leave a failed task behind (Ray logs it as an unhandled error).
        if self._merges:
            ray.wait(self._merges, num_returns=len(self._merges), timeout=10)
        for agent in self._agents:
            agent.kill()


def _check_alike(agents: list[Agent]) -> None:
    first = agents[0]
    keys = [a.key for a in agents if a.key is not None]
    if len(set(keys)) != len(keys):
        raise ValueError("the replicas share a checkpoint key: give each its own (or none)")
    for agent in agents[1:]:
        same = (type(agent), agent.n_actions, agent.n_features) == (
            type(first),
            first.n_actions,
            first.n_features,
        )
        if not same:
            msg = (
                f"the replicas must be alike: {type(first).__name__}({first.n_actions}, "
                f"{first.n_features}) and {type(agent).__name__}({agent.n_actions}, "
                f"{agent.n_features})"
            )
            raise ValueError(msg)
    learnt = ray.get([a.stats_async() for a in agents], timeout=120)
    if any(s["feedbacks"] or s["merged_feedbacks"] for s in learnt):
        raise ValueError(
            "'make_agent' must return fresh agents (replicas start from the same, empty statistics)"
        )


class AgentPopulation:
    """Many agents, one stream: they compete on the same contexts and the same luck.

    Each round, every member chooses an action for the same context (all members
    at once, in parallel) and receives the reward its own action drew from that
    round's rewards (`ContextualBanditEnv.sample_rewards`). The `leaderboard` ranks
    members by the reward they received; `set_params` retunes any member while
    the others run on.

    Args:
        members: Named agents: ``{"name": agent, ...}`` (any agents of this module).

    Raises:
        TypeError: If ``members`` is not a mapping of names to agents.
        ValueError: If it is empty, or the members differ in ``n_actions``.

    Examples:
        >>> from patterns import ContextualBanditEnv, LinUCBAgent, RandomAgent
        >>> population = AgentPopulation({
        ...     "linucb": LinUCBAgent(3, 2),
        ...     "random": RandomAgent(3, seed=0),
        ... })
        >>> histories = population.run(ContextualBanditEnv(3, 2, seed=0), rounds=300, batch_size=50)
        >>> population.best()
        'linucb'
        >>> population.kill()
    """

    def __init__(self, members: Mapping[str, Agent]) -> None:
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
        sizes = {agent.n_actions for agent in members.values()}
        if len(sizes) > 1:
            msg = f"the members must have the same n_actions, got {sorted(sizes)}"
            raise ValueError(msg)
        self._members = dict(members)
        self._n_actions = sizes.pop()

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
        return f"AgentPopulation({', '.join(self._members)})"

    @property
    def members(self) -> dict[str, Agent]:
        """The members by name."""
        return dict(self._members)

    def make_prediction(self, context: Any, *, timeout: float | None = None) -> dict[str, int]:
        """Every member's action for ``context``, asked of all members at once.

        Args:
            context: A 1-D array of finite numbers.
            timeout: Seconds to wait for all replies (None waits forever).

        Returns:
            Member name to action.
        """
        timeout = _check_timeout(timeout)
        x = check_context(context, None)
        refs = {name: agent.make_prediction_async(x) for name, agent in self._members.items()}
        actions = ray.get(list(refs.values()), timeout=timeout)
        return {name: int(a) for name, a in zip(refs, actions, strict=True)}

    def receive_feedback(
        self,
        context: Any,
        actions: Mapping[str, int],
        rewards: Mapping[str, float],
        *,
        timeout: float | None = None,
    ) -> None:
        """Give each member the reward of its own action; wait for every acknowledgement.

        Args:
            context: The context of the round.
            actions: Member name to the action it played (every member).
            rewards: Member name to the reward it received (every member).
            timeout: Seconds to wait (None waits forever).

        Raises:
            ValueError: If a member is missing from ``actions`` or ``rewards``, or a
                value is out of range.
        """
        timeout = _check_timeout(timeout)
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
        refs = [
            self._members[name].receive_feedback_async(x, a, r) for name, (a, r) in checked.items()
        ]
        ray.get(refs, timeout=timeout)

    def run(
        self,
        env: ContextualBanditEnv,
        *,
        rounds: int,
        batch_size: int = 1,
        timeout: float | None = None,
    ) -> dict[str, BanditHistory]:
        """Play ``rounds`` rounds of ``env`` with every member at once.

        Args:
            env: The environment: one context per round for all members, and one
                draw of rewards per round, each member receiving its action's.
            rounds: How many rounds (an int >= 1).
            batch_size: Rounds per call to each member (see `run_bandit`).
            timeout: Seconds to wait for each batch (None waits forever).

        Returns:
            Member name to its `BanditHistory`.
        """
        rounds = check_int("rounds", rounds, minimum=1)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        timeout = _check_timeout(timeout)
        if not isinstance(env, ContextualBanditEnv):
            msg = f"'env' must be a ContextualBanditEnv, got {describe(env)}"
            raise TypeError(msg)
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
            chosen = np.array(ray.get(refs, timeout=timeout), dtype=np.int64)  # (members, batch)
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
            ray.get(feedback, timeout=timeout)
        return {
            n: BanditHistory(actions[j], rewards[j], expected[j], best, oracle, label=n)
            for j, n in enumerate(names)
        }

    def leaderboard(self, *, timeout: float | None = None) -> list[tuple[str, float]]:
        """Members ranked by the reward they received (``stats()["reward_sum"]``), best first.

        Args:
            timeout: Seconds to wait (None waits forever).

        Returns:
            ``(name, cumulative reward)`` pairs, best first.
        """
        timeout = _check_timeout(timeout)
        names = list(self._members)
        stats = ray.get([self._members[n].stats_async() for n in names], timeout=timeout)
        board = [(n, float(s["reward_sum"])) for n, s in zip(names, stats, strict=True)]
        return sorted(board, key=lambda item: item[1], reverse=True)

    def best(self, *, timeout: float | None = None) -> str:
        """The name of the member with the most reward so far."""
        return self.leaderboard(timeout=timeout)[0][0]

    def get_params(self, *, timeout: float | None = None) -> dict[str, dict[str, Any]]:
        """Every member's hyperparameters, by name."""
        timeout = _check_timeout(timeout)
        names = list(self._members)
        params = ray.get([self._members[n].get_params_async() for n in names], timeout=timeout)
        return dict(zip(names, params, strict=True))

    def set_params(self, name: str, *, timeout: float | None = None, **params: Any) -> None:
        """Retune member ``name`` live (checked before anything is sent).

        Args:
            name: The member.
            timeout: Seconds to wait for the acknowledgement (None waits forever).
            **params: Hyperparameters, as the member's `Agent.set_params` takes them.
        """
        self[name].set_params(timeout=timeout, **params)

    def kill(self) -> None:
        """Terminate every member's actor for good."""
        for agent in self._members.values():
            with contextlib.suppress(Exception):
                agent.kill()
