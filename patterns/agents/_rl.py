"""Rollout workers and a learner: the seeds' reinforcement-learning loop on CartPole.

`RolloutWorker` actors play episodes of a gymnasium environment with the current
policy and send the trajectories back; the learner (`train_policy`, in the
driver) computes a REINFORCE update with a baseline and broadcasts the new
weights once per iteration with one ``ray.put``. gymnasium is imported inside the
actors only.

The policy is linear softmax: ``p(a | s) = softmax(W [s, 1])_a``, with ``W`` of
shape ``(n_actions, observation size + 1)`` (10 numbers for CartPole).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray import ObjectRef
from ray.actor import ActorHandle

from patterns._actors import (
    attach_named,
    check_actor_options,
    check_options_and_naming,
    make_actor,
    rebuild,
)
from patterns._calls import DEFAULT, STOP_TIMEOUT_S, Timeout, stop_actors
from patterns._checks import (
    check_int,
    check_name,
    check_number,
    check_positive_float,
    describe,
)
from patterns._facade import ActorFacade, check_facade_timeout
from patterns._ray_internals import actor_id_hex
from patterns.errors import ActorLostError, CallTimeoutError

__all__ = ["PolicyHistory", "RolloutWorker", "train_policy"]

Trajectory = dict[str, Any]


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True))


def _features(observation: np.ndarray) -> np.ndarray:
    return np.append(np.asarray(observation, dtype=np.float64), 1.0)


class _RolloutActor:
    """The actor: one gymnasium environment, episodes on demand."""

    def __init__(self, env_id: str) -> None:
        import gymnasium  # imported here: the driver does not need it

        self._env = gymnasium.make(env_id)
        self._env_id = env_id
        self.episodes = 0

    def spaces(self) -> tuple[int, int]:
        shape = self._env.observation_space.shape
        space: Any = self._env.action_space  # Discrete: has n
        return int(np.prod(shape or ())), int(space.n)

    def rollout(self, weights: np.ndarray, seeds: list[int]) -> list[Trajectory]:
        return [self._episode(weights, seed) for seed in seeds]

    def _episode(self, weights: np.ndarray, seed: int) -> Trajectory:
        # The episode depends on (weights, seed) only: the environment's start and the
        # policy's draws are both seeded, whichever worker plays it.
        rng = np.random.default_rng(seed)
        observation, _ = self._env.reset(seed=seed)
        observations, actions, rewards = [], [], []
        done = False
        while not done:
            x = _features(observation)
            p = _softmax_rows(weights @ x)
            action = min(int(np.searchsorted(np.cumsum(p), rng.random())), len(p) - 1)
            observations.append(x)
            actions.append(action)
            observation, reward, terminated, truncated, _ = self._env.step(action)
            rewards.append(float(reward))
            done = terminated or truncated
        self.episodes += 1
        return {
            "seed": seed,
            "observations": np.array(observations),
            "actions": np.array(actions, dtype=np.int64),
            "rewards": np.array(rewards),
        }

    def pid(self) -> int:
        return os.getpid()

    def describe(self) -> dict[str, Any]:
        return {"kind": "RolloutWorker", "env_id": self._env_id, "episodes": self.episodes}


_RemoteRolloutActor = ray.remote(_RolloutActor)


def _check_seeds(seeds: object) -> list[int]:
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence):
        msg = f"'seeds' must be a sequence of ints (one per episode), got {describe(seeds)}"
        raise TypeError(msg)
    return [check_int("seeds[i]", s, minimum=0) for s in seeds]


def _check_weights(weights: object) -> np.ndarray | ObjectRef[Any]:
    if isinstance(weights, ObjectRef):
        return weights  # put by the learner, checked when it was made
    array = np.asarray(weights) if isinstance(weights, np.ndarray | list) else None
    if array is None or array.ndim != 2 or array.dtype.kind not in "iuf":
        msg = (
            "'weights' must be a 2-D array (n_actions, observation size + 1) or an "
            f"ObjectRef, got {describe(weights)}"
        )
        raise TypeError(msg)
    if not np.isfinite(array).all():
        raise ValueError("'weights' must hold finite numbers")
    return array.astype(np.float64, copy=False)


class RolloutWorker(ActorFacade):
    """A Ray actor that plays episodes of a gymnasium environment with a given policy.

    The policy is linear softmax over the observation and a constant:
    ``weights`` has shape ``(n_actions, observation size + 1)``. Each episode is
    seeded (the environment's reset and the policy's draws), so an episode is a
    function of ``(weights, seed)`` and any worker replays it identically: a
    learner can hand a dead worker's episodes to its replacement and get the
    same trajectories.

    gymnasium is imported inside the actor, not here. Rollout workers hold no
    state worth restoring: by default Ray does not restart them, and
    `train_policy` replaces dead ones. ``close()`` (what ``with`` does) stops the
    actor and waits until Ray reports it dead; a copy unpickled in a task, or a
    facade from `attach`, releases it instead. ``kill()`` is the crash simulation.

    Args:
        env_id: A gymnasium environment with a discrete action space and a box
            observation (default ``"CartPole-v1"``).
        name: Name of the actor (None: unnamed); `attach` finds it by name.
        namespace: Ray namespace of the named actor.
        timeout: Seconds each call waits by default (default 60; None: no bound).
        actor_options: Other options for the actor (``num_cpus``,
            ``scheduling_strategy``, ...; not ``name``).

    Raises:
        TypeError: If ``env_id`` is not a str or ``actor_options`` not a dict.

    Examples:
        >>> with RolloutWorker("CartPole-v1") as worker:
        ...     print(worker.spaces())
        ...     [episode] = worker.rollout(np.zeros((2, 5)), seeds=[0])
        (4, 2)
        >>> float(episode["rewards"].sum()) == len(episode["actions"])
        True
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        *,
        name: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT,
        actor_options: Mapping[str, Any] | None = None,
    ) -> None:
        env_id = check_name("env_id", env_id)
        seconds = check_facade_timeout(timeout)
        options, checked_name, checked_namespace, naming = check_options_and_naming(
            actor_options, name, namespace, defaults=None, facade="RolloutWorker"
        )
        actor = make_actor(_RemoteRolloutActor, {**options, **naming}, env_id)
        self._setup(actor, env_id, checked_name, checked_namespace, seconds)

    def _setup(
        self,
        actor: ActorHandle[Any],
        env_id: str,
        name: str | None,
        namespace: str | None,
        timeout: float | None,
    ) -> None:
        self._actor = actor
        self._env_id = env_id
        self._init_facade([actor], name=name, namespace=namespace, owned=True, timeout=timeout)

    @classmethod
    def attach(
        cls,
        name: str,
        *,
        namespace: str | None = None,
        own: bool = False,
        timeout: Timeout = DEFAULT,
    ) -> RolloutWorker:
        """Return a facade for the live rollout worker called ``name``.

        It does not own the actor unless ``own=True``: its ``close()`` releases it.

        Args:
            name: The actor's name (``name=`` when it was created).
            namespace: Its Ray namespace (default: this job's).
            own: Take the actor over: ``close()`` stops it.
            timeout: The facade's timeout for its calls (default 60 s).

        Raises:
            TypeError: If the actor is not a RolloutWorker.
            ValueError: If there is no live actor with that name.
        """
        seconds = check_facade_timeout(timeout)
        actor, info = attach_named(name, namespace, kind="RolloutWorker")
        return rebuild(cls, actor, info["env_id"], name, namespace, seconds, owned=bool(own))

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            rebuild,
            (RolloutWorker, self._actor, self._env_id, self.name, self.namespace, self.timeout),
        )

    def __repr__(self) -> str:
        who = f"name={self.name!r}" if self.name else f"actor_id={actor_id_hex(self._actor)!r}"
        return f"RolloutWorker({self._env_id!r}, {who})"

    @property
    def actor(self) -> ActorHandle[Any]:
        """The Ray actor handle behind the facade."""
        return self._actor

    @property
    def env_id(self) -> str:
        """The gymnasium environment the worker plays."""
        return self._env_id

    def spaces(self, *, timeout: Timeout = DEFAULT) -> tuple[int, int]:
        """The environment's observation size and number of actions.

        Args:
            timeout: Seconds to wait (default: the worker's timeout; None: no bound).
        """
        seconds = self._seconds(timeout)
        size, actions = self._get(self.spaces_async(), timeout=seconds, method="spaces")
        return int(size), int(actions)

    def spaces_async(self) -> ObjectRef[tuple[int, int]]:
        """Ask for the spaces and return at once."""
        self._check_open("spaces_async")
        ref: ObjectRef[tuple[int, int]] = self._actor.spaces.remote()
        return ref

    def rollout(
        self, weights: Any, *, seeds: Sequence[int], timeout: Timeout = DEFAULT
    ) -> list[Trajectory]:
        """Play one episode per seed with the policy ``weights``.

        Args:
            weights: The policy, an array of shape ``(n_actions, observation size +
                1)``, or an ObjectRef to one (a learner puts it once for all workers).
            seeds: One seed (an int >= 0) per episode.
            timeout: Seconds to wait (default: the worker's timeout; None: no bound).

        Returns:
            One dict per episode: ``seed``, ``observations`` (with the constant 1
            appended), ``actions`` and ``rewards``.

        Raises:
            TypeError: If ``weights`` or ``seeds`` has the wrong type.
            CallTimeoutError: The episodes did not come within ``timeout``.
        """
        seconds = self._seconds(timeout)
        ref = self.rollout_async(weights, seeds=seeds)
        episodes: list[Trajectory] = self._get(ref, timeout=seconds, method="rollout")
        return episodes

    def rollout_async(self, weights: Any, *, seeds: Sequence[int]) -> ObjectRef[list[Trajectory]]:
        """Start the episodes and return at once: an ObjectRef to the trajectories."""
        checked_weights, checked_seeds = _check_weights(weights), _check_seeds(seeds)
        self._check_open("rollout_async")
        ref: ObjectRef[list[Trajectory]] = self._actor.rollout.remote(
            checked_weights, checked_seeds
        )
        return ref

    def _stats_async(self) -> ObjectRef[dict[str, Any]]:
        # stats(): the common keys, and env_id and episodes (played by this actor).
        ref: ObjectRef[dict[str, Any]] = self._actor.describe.remote()
        return ref


@dataclass
class PolicyHistory:
    """The learning curve and outcome of `train_policy`.

    Attributes:
        returns: The return of every episode, in the order the learner used them.
        iterations: Learner updates made.
        solved_episode: Episodes played when the mean return over the last
            ``window`` episodes first reached ``target`` (None if it never did).
        solved_seconds: Wall time at that moment (None if never).
        seconds: Wall time of the whole run (workers' start included).
        weights: The policy at the end.
        n_workers: Rollout workers used.
        n_replaced_workers: Workers that died and were replaced.
        target: The target mean return.
        window: Episodes in the moving average.
        stopped_by: Why training stopped: ``"target"`` (solved),
            ``"max_episodes"`` or ``"budget_s"`` (a budget ran out first).

    Examples:
        >>> history = PolicyHistory(returns=np.array([10.0, 30.0, 50.0]), window=2,
        ...                         target=40.0, solved_episode=3)
        >>> history.moving_average().tolist()
        [10.0, 20.0, 40.0]
        >>> history.solved, history.episodes
        (True, 3)
    """

    returns: np.ndarray
    iterations: int = 0
    solved_episode: int | None = None
    solved_seconds: float | None = None
    seconds: float = 0.0
    weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    n_workers: int = 0
    n_replaced_workers: int = 0
    target: float = 195.0
    window: int = 100
    stopped_by: str = "max_episodes"

    @property
    def episodes(self) -> int:
        """Episodes played."""
        return len(self.returns)

    @property
    def solved(self) -> bool:
        """True if the moving average reached ``target``."""
        return self.solved_episode is not None

    def moving_average(self) -> np.ndarray:
        """Mean return over the last ``window`` episodes (fewer at the start), per episode."""
        sums = np.cumsum(np.insert(np.asarray(self.returns, dtype=np.float64), 0, 0.0))
        ends = np.arange(1, len(self.returns) + 1)
        starts = np.maximum(0, ends - self.window)
        return np.asarray((sums[ends] - sums[starts]) / (ends - starts))


def _episode_seed(seed: int, iteration: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, iteration, index]).generate_state(1)[0])


def _policy_gradient(
    weights: np.ndarray, episodes: Sequence[Trajectory], gamma: float
) -> np.ndarray:
    """REINFORCE with a per-time-step baseline and normalised advantages."""
    returns_to_go = []
    for episode in episodes:
        rewards = episode["rewards"]
        g = np.empty(len(rewards))
        running = 0.0
        for t in range(len(rewards) - 1, -1, -1):
            running = rewards[t] + gamma * running
            g[t] = running
        returns_to_go.append(g)
    # Baseline: the mean return-to-go at the same time step over this batch.
    longest = max(len(g) for g in returns_to_go)
    totals, counts = np.zeros(longest), np.zeros(longest)
    for g in returns_to_go:
        totals[: len(g)] += g
        counts[: len(g)] += 1
    baseline = totals / np.maximum(counts, 1)
    advantages = [g - baseline[: len(g)] for g in returns_to_go]
    scale = float(np.concatenate(advantages).std()) + 1e-8
    gradient = np.zeros_like(weights)
    steps = 0
    for episode, advantage in zip(episodes, advantages, strict=True):
        x, actions = episode["observations"], episode["actions"]
        p = _softmax_rows(x @ weights.T)
        chosen = np.zeros_like(p)
        chosen[np.arange(len(actions)), actions] = 1.0
        gradient += ((chosen - p) * (advantage / scale)[:, None]).T @ x
        steps += len(actions)
    return np.asarray(gradient / max(steps, 1))


class _Adam:
    """Adam on one array (Kingma and Ba, 2015): steps of about ``learning_rate`` per weight."""

    def __init__(self, shape: tuple[int, ...], learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.m = np.zeros(shape)
        self.v = np.zeros(shape)
        self.t = 0

    def ascend(self, weights: np.ndarray, gradient: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * gradient
        self.v = 0.999 * self.v + 0.001 * gradient**2
        m_hat = self.m / (1 - 0.9**self.t)
        v_hat = self.v / (1 - 0.999**self.t)
        return np.asarray(weights + self.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8))


def train_policy(
    *,
    n_workers: int = 2,
    target: float = 195.0,
    max_episodes: int = 2_000,
    episodes_per_iteration: int = 10,
    learning_rate: float = 0.1,
    gamma: float = 0.99,
    window: int = 100,
    seed: int = 0,
    env_id: str = "CartPole-v1",
    budget_s: float | None = None,
    rollout_timeout_s: float = 300.0,
    worker_options: Mapping[str, Any] | None = None,
    on_iteration: Callable[[dict[str, Any]], None] | None = None,
) -> PolicyHistory:
    """Train a linear softmax policy with rollout workers and a learner (REINFORCE).

    Each iteration the learner puts the weights in the object store once
    (``ray.put``), every worker plays its share of ``episodes_per_iteration``
    episodes with them, and the learner takes one Adam step on the policy
    gradient (REINFORCE with a per-time-step baseline). It stops when the mean
    return over the last ``window`` episodes reaches ``target`` (the classic
    CartPole criterion: 195 over 100 consecutive episodes), or at
    ``max_episodes`` / ``budget_s``, whichever comes first (the history's
    ``stopped_by`` says which).

    Episodes are seeded from ``(seed, iteration, index)``, so the learning curve
    does not depend on how many workers play them or on which one. A worker
    that dies is replaced, and its episodes are played again by the new one:
    training goes on, and the curve is the one an undisturbed run draws (at most
    ``3 * n_workers`` replacements per iteration, then `patterns.ActorLostError`).

    A long operation, bounded: the workers must deliver an iteration's episodes
    (replacements included) within ``rollout_timeout_s``, else the run raises
    `patterns.CallTimeoutError` naming the worker still missing: a stuck worker
    (or a simulator slower than that) ends the run instead of hanging it. The
    budget is checked before each iteration, so a run returns (or raises) within
    ``budget_s + rollout_timeout_s``, plus the few seconds it takes to stop its
    workers. The workers are stopped (and seen dead) before it returns.

    Args:
        n_workers: Rollout workers (an int >= 1).
        target: Mean return to reach.
        max_episodes: Stop after this many episodes (an int >= 1).
        episodes_per_iteration: Episodes per update, split over the workers.
        learning_rate: Adam's step size (> 0).
        gamma: Discount factor in (0, 1].
        window: Episodes in the moving average (an int >= 1).
        seed: Seed of every episode (an int >= 0).
        env_id: The gymnasium environment.
        budget_s: A wall-clock budget in seconds, counted from the call (the
            workers' start included); a number > 0, or None for no limit.
        rollout_timeout_s: Seconds an iteration may wait for its episodes (and
            the workers' start for their first answer).
        worker_options: Actor options of the workers (default: spread over the
            nodes).
        on_iteration: Called after each update with a dict: ``iteration``,
            ``episodes``, ``moving_average``, ``workers`` (the live
            `RolloutWorker` objects).

    Returns:
        A `PolicyHistory`: the learning curve, when the target was reached, the
        final weights.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If a count is < 1 or a number out of range.
        CallTimeoutError: An iteration's episodes did not all come within
            ``rollout_timeout_s``.
        ActorLostError: Workers kept dying past the replacements allowed.

    Examples:
        >>> history = train_policy(n_workers=1, max_episodes=20, episodes_per_iteration=10)
        >>> history.episodes, history.iterations, history.weights.shape, history.stopped_by
        (20, 2, (2, 5), 'max_episodes')
    """
    n_workers = check_int("n_workers", n_workers, minimum=1)
    target = check_number("target", target)
    max_episodes = check_int("max_episodes", max_episodes, minimum=1)
    per_iteration = check_int("episodes_per_iteration", episodes_per_iteration, minimum=1)
    learning_rate = check_number("learning_rate", learning_rate, positive=True)
    gamma = check_number("gamma", gamma, positive=True, maximum=1)
    window = check_int("window", window, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    env_id = check_name("env_id", env_id)
    limit = None if budget_s is None else check_positive_float("budget_s", budget_s)
    rollout_timeout_s = check_positive_float("rollout_timeout_s", rollout_timeout_s)
    options = check_actor_options(worker_options, defaults={"scheduling_strategy": "SPREAD"})
    for naming in ("name", "namespace", "get_if_exists"):
        if naming in options:
            msg = f"'worker_options' may not set {naming!r}: the rollout workers are unnamed"
            raise ValueError(msg)
    if on_iteration is not None and not callable(on_iteration):
        msg = f"'on_iteration' must be callable or None, got {describe(on_iteration)}"
        raise TypeError(msg)

    started = time.perf_counter()
    history = PolicyHistory(returns=np.zeros(0), n_workers=n_workers, target=target, window=window)
    returns: list[float] = []
    run = _Pool(env_id, options, rollout_timeout_s, n_workers)
    try:
        size, n_actions = run.workers[0].spaces(timeout=rollout_timeout_s)
        weights = np.zeros((n_actions, size + 1))
        optimizer = _Adam(weights.shape, learning_rate)
        iteration = 0
        while len(returns) < max_episodes:
            if limit is not None and time.perf_counter() - started > limit:
                history.stopped_by = "budget_s"
                break
            count = min(per_iteration, max_episodes - len(returns))
            seeds = [_episode_seed(seed, iteration, j) for j in range(count)]
            shared = ray.put(weights)  # one copy in the object store for every worker
            episodes = run.play(shared, seeds, iteration)
            for episode in episodes:
                returns.append(float(episode["rewards"].sum()))
                reached = len(returns) >= window and np.mean(returns[-window:]) >= target
                if history.solved_episode is None and reached:
                    history.solved_episode = len(returns)
                    history.solved_seconds = time.perf_counter() - started
            iteration += 1
            if history.solved_episode is not None:
                history.stopped_by = "target"
                break
            weights = optimizer.ascend(weights, _policy_gradient(weights, episodes, gamma))
            if on_iteration is not None:
                recent = returns[-window:]
                on_iteration(
                    {
                        "iteration": iteration,
                        "episodes": len(returns),
                        "moving_average": float(np.mean(recent)),
                        "workers": list(run.workers),
                    }
                )
        history.iterations = iteration
        history.weights = weights
    except BaseException:
        with contextlib.suppress(Exception):  # the error above is the one to report
            run.close()
        raise
    run.close()
    history.n_replaced_workers = run.replaced
    history.returns = np.array(returns)
    history.seconds = time.perf_counter() - started
    return history


class _Pool:
    """train_policy's rollout workers: start, play an iteration, replace the dead, stop."""

    def __init__(
        self, env_id: str, options: Mapping[str, Any], rollout_timeout_s: float, n_workers: int
    ) -> None:
        self.env_id = env_id
        self.options = options
        self.timeout = rollout_timeout_s
        self.replaced = 0
        self.workers: list[RolloutWorker] = []
        self.retired: list[RolloutWorker] = []  # dead ones replaced: stopped at the end
        for _ in range(n_workers):
            self.workers.append(self._new())

    def _new(self) -> RolloutWorker:
        return RolloutWorker(self.env_id, timeout=self.timeout, actor_options=self.options)

    def play(self, weights: ObjectRef[Any], seeds: list[int], iteration: int) -> list[Trajectory]:
        """Split ``seeds`` over the workers, replacing any that dies; episodes in seed order."""
        pool = self.workers
        shares = [seeds[i :: len(pool)] for i in range(len(pool))]
        results: list[list[Trajectory]] = [[] for _ in pool]
        pending = {
            i: pool[i].rollout_async(weights, seeds=share)
            for i, share in enumerate(shares)
            if share
        }
        deadline = time.monotonic() + self.timeout
        replacements = 0
        while pending:
            i, ref = next(iter(pending.items()))
            left = deadline - time.monotonic()
            try:
                results[i] = pool[i]._get(ref, timeout=max(left, 0.001), method="rollout")
                del pending[i]
            except CallTimeoutError as exc:
                msg = (
                    f"{pool[i]._who}: rollout of iteration {iteration} got no episodes within "
                    f"rollout_timeout_s={self.timeout:g} s (the worker is stuck, or its "
                    "episodes take longer: raise rollout_timeout_s)"
                )
                raise CallTimeoutError(msg) from exc
            except ActorLostError:
                if replacements >= 3 * len(pool):
                    raise
                replacements += 1
                self.replaced += 1
                self.retired.append(pool[i])
                pool[i] = self._new()
                pending[i] = pool[i].rollout_async(weights, seeds=shares[i])
        ordered: list[Trajectory] = [{}] * len(seeds)
        for i, played in enumerate(results):
            for k, episode in enumerate(played):
                ordered[i + k * len(pool)] = episode  # worker i played seeds[i::len(pool)]
        return ordered

    def close(self) -> None:
        """Stop every worker (the dead ones too) and wait until Ray reports them dead."""
        everyone = self.workers + self.retired
        for worker in everyone:
            worker._facade_closed = True
        stop_actors([w.actor for w in everyone], timeout=STOP_TIMEOUT_S, who="train_policy")
