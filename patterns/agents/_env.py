"""A seeded contextual bandit with known expected rewards, and the loop that runs an agent on it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from patterns._calls import DEFAULT, Timeout, check_timeout, resolve_timeout
from patterns._checks import check_choice, check_int, check_number, check_positive_float, describe
from patterns.agents._validate import check_action, check_context, check_n_actions
from patterns.errors import CallTimeoutError

__all__ = ["BanditHistory", "ContextualBanditEnv", "run_bandit"]


class ContextualBanditEnv:
    """A seeded contextual bandit whose expected rewards are known, so regret is exact.

    Each action ``a`` has a hidden weight vector ``w[a]``, normal with variance
    ``1 / n_features``. A context ``x`` is a standard normal vector (features on the
    unit scale scikit-learn's estimators expect), so ``w[a] . x`` is about standard
    normal. The expected reward of ``a`` in
    ``x`` is:

    - ``rewards="gaussian"`` (the default): ``w[a] . x``; a reward adds normal
      noise of standard deviation ``noise``. Playing at random earns 0 on
      average, the oracle (always the best action) about 1.0 with 3 actions and
      1.2 with 5;
    - ``rewards="bernoulli"``: ``sigmoid(4 * w[a] . x)``; a reward is 1 with that
      probability, else 0 (``noise`` is not used). Random play earns 0.5 on
      average, the oracle about 0.85 with 5 actions.

    Two random streams, both from ``seed``: one for contexts, one for reward noise.
    `sample_rewards` draws the noise of *every* action at once, so the n-th
    reward is the same draw whatever the agent chose: agents run on equal seeds
    see the same contexts and the same luck.

    Args:
        n_actions: Number of actions (an int >= 2).
        n_features: Length of a context (an int >= 1).
        noise: Standard deviation of the gaussian reward noise (>= 0).
        seed: Seed of the weights, contexts and noise.
        rewards: ``"gaussian"`` or ``"bernoulli"``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``n_actions < 2``, ``n_features < 1``, ``noise < 0`` or
            ``rewards`` is not one of the two kinds.

    Examples:
        >>> env = ContextualBanditEnv(n_actions=3, n_features=4, seed=0)
        >>> x = env.context()
        >>> x.shape
        (4,)
        >>> expected = env.expected_rewards(x)
        >>> int(np.argmax(expected)) == env.best_action(x)
        True
        >>> isinstance(env.reward(x, 1), float)
        True
    """

    def __init__(
        self,
        *,
        n_actions: int,
        n_features: int,
        noise: float = 0.1,
        seed: int = 0,
        rewards: str = "gaussian",
    ) -> None:
        self.n_actions = check_n_actions(n_actions)
        self.n_features = check_int("n_features", n_features, minimum=1)
        self.noise = check_number("noise", noise, minimum=0)
        self.seed = check_int("seed", seed, minimum=0)
        self.rewards = check_choice("rewards", rewards, ("gaussian", "bernoulli"))
        shape = (self.n_actions, self.n_features)
        self.weights_ = np.random.default_rng([self.seed, 0]).standard_normal(shape) / math.sqrt(
            self.n_features
        )
        self._contexts = np.random.default_rng([self.seed, 1])
        self._noise = np.random.default_rng([self.seed, 2])

    def __repr__(self) -> str:
        return (
            f"ContextualBanditEnv(n_actions={self.n_actions}, n_features={self.n_features}, "
            f"noise={self.noise:g}, "
            f"seed={self.seed}, rewards={self.rewards!r})"
        )

    # Batched draws consume the random streams exactly as one-by-one draws do (numpy
    # fills arrays in order), so a run's contexts and luck do not depend on batching.
    def _draw_contexts(self, n: int) -> np.ndarray:
        return self._contexts.standard_normal((n, self.n_features))

    def _expected(self, contexts: np.ndarray) -> np.ndarray:
        means = contexts @ self.weights_.T
        if self.rewards == "bernoulli":
            return np.asarray(1.0 / (1.0 + np.exp(-4.0 * means)))
        return np.asarray(means)

    def _draw_rewards(self, expected: np.ndarray) -> np.ndarray:
        if self.rewards == "bernoulli":
            return (self._noise.random(expected.shape) < expected).astype(np.float64)
        return np.asarray(expected + self.noise * self._noise.standard_normal(expected.shape))

    def context(self) -> np.ndarray:
        """Draw the next context: a float64 vector of ``n_features``.

        Examples:
            >>> ContextualBanditEnv(n_actions=2, n_features=3, seed=1).context().shape
            (3,)
        """
        return np.asarray(self._draw_contexts(1)[0])

    def expected_rewards(self, context: Any) -> np.ndarray:
        """The expected reward of every action in ``context`` (what an oracle knows).

        Examples:
            >>> env = ContextualBanditEnv(n_actions=2, n_features=2, seed=0)
            >>> env.expected_rewards([0.0, 0.0]).tolist()
            [0.0, 0.0]
        """
        x = check_context(context, self.n_features)
        return np.asarray(self._expected(x[None, :])[0])

    def best_action(self, context: Any) -> int:
        """The action with the highest expected reward in ``context``.

        Examples:
            >>> env = ContextualBanditEnv(n_actions=3, n_features=2, seed=0)
            >>> env.best_action(env.context()) in range(3)
            True
        """
        return int(np.argmax(self.expected_rewards(context)))

    def sample_rewards(self, context: Any) -> np.ndarray:
        """Draw this round's reward of every action (one draw of noise per action).

        Examples:
            >>> env = ContextualBanditEnv(n_actions=3, n_features=2, seed=0, rewards="bernoulli")
            >>> sorted(set(env.sample_rewards(env.context()).tolist())) <= [0.0, 1.0]
            True
        """
        return np.asarray(self._draw_rewards(self.expected_rewards(context)[None, :])[0])

    def reward(self, context: Any, action: int) -> float:
        """Draw the reward of ``action`` in ``context`` (this round's draw, see the class).

        Examples:
            >>> env = ContextualBanditEnv(n_actions=2, n_features=2, noise=0.0, seed=0)
            >>> x = env.context()
            >>> env.reward(x, 0) == float(env.expected_rewards(x)[0])
            True
        """
        action = check_action(action, self.n_actions)
        return float(self.sample_rewards(context)[action])


@dataclass
class BanditHistory:
    """What `run_bandit` recorded, one entry per round.

    Attributes:
        actions: The action played.
        rewards: The reward received.
        expected: The expected reward of the action played.
        best_expected: The expected reward of the best action (the oracle's).
        oracle_rewards: The reward the best action drew that round (same noise).
        seconds: Wall time of the whole run.

    Examples:
        >>> history = BanditHistory(
        ...     actions=np.array([0, 1]), rewards=np.array([1.0, 0.0]),
        ...     expected=np.array([0.9, 0.2]), best_expected=np.array([0.9, 0.8]),
        ...     oracle_rewards=np.array([1.0, 1.0]))
        >>> history.regret.round(2).tolist()
        [0.0, 0.6]
        >>> history.average_reward(), history.oracle_average_reward()
        (0.5, 1.0)
    """

    actions: np.ndarray
    rewards: np.ndarray
    expected: np.ndarray
    best_expected: np.ndarray
    oracle_rewards: np.ndarray
    seconds: float = 0.0
    label: str = field(default="")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def regret(self) -> np.ndarray:
        """Cumulative (pseudo-)regret after each round: sum of best minus played expected."""
        return np.cumsum(self.best_expected - self.expected)

    @property
    def cumulative_regret(self) -> float:
        """The regret after the last round."""
        return float(self.regret[-1]) if len(self) else 0.0

    def average_reward(self, last: int | None = None) -> float:
        """The mean reward received, over the ``last`` rounds (all by default)."""
        return float(np.mean(self.rewards[-last:] if last else self.rewards))

    def oracle_average_reward(self, last: int | None = None) -> float:
        """The oracle's mean reward over the same rounds (the same draws of noise)."""
        return float(np.mean(self.oracle_rewards[-last:] if last else self.oracle_rewards))


def _check_agent(agent: object, batch_size: int) -> None:
    needed = ("make_prediction", "receive_feedback")
    if batch_size > 1:
        needed = ("make_predictions", "receive_feedbacks")
    missing = [name for name in needed if not callable(getattr(agent, name, None))]
    if missing:
        msg = f"'agent' must have {' and '.join(needed)}, got {describe(agent)}"
        raise TypeError(msg)


def run_bandit(
    agent: Any,
    env: ContextualBanditEnv,
    *,
    rounds: int,
    batch_size: int = 1,
    budget_s: float | None = None,
    timeout: Timeout = DEFAULT,
) -> BanditHistory:
    """Play ``rounds`` rounds of ``env`` with ``agent``; return what happened.

    Each round draws a context, asks the agent for an action, draws the rewards and
    gives the agent the one of its action. With ``batch_size=B > 1`` the agent gets
    B contexts at once (``make_predictions``), then their B feedbacks in one call
    (``receive_feedbacks``): far fewer round trips to an actor, and the agent learns
    from a batch only after choosing for all of it (delayed feedback), so its regret
    can be a little higher.

    Any object with the agent interface works: the agents of this module,
    `AgentReplicas`, or anything else with those methods.

    A long operation, bounded: every call to an agent of this library waits at most
    ``timeout`` (by default the agent's own timeout, 60 s unless it was given
    another), so a stuck agent raises `patterns.CallTimeoutError` naming it and the
    method instead of hanging the run; ``budget_s`` bounds the whole run (each call
    waits at most the time left). An object of your own is called without a
    timeout, and the budget is checked between its calls.

    Args:
        agent: The agent.
        env: The environment (its random streams advance).
        rounds: How many rounds (an int >= 1).
        batch_size: Rounds per call to the agent (an int >= 1).
        budget_s: Seconds the whole run may take (None: no overall bound).
        timeout: Seconds each call to the agent may wait (default: the agent's
            timeout; None: no bound).

    Returns:
        A `BanditHistory` with one entry per round.

    Raises:
        TypeError: If ``agent`` lacks the methods, or ``env`` is not a
            ContextualBanditEnv.
        ValueError: If ``rounds`` or ``batch_size`` is < 1.
        CallTimeoutError: A call got no reply within its timeout, or the run did
            not finish within ``budget_s``.

    Examples:
        >>> class AlwaysFirst:  # anything with the agent interface will do
        ...     def make_predictions(self, contexts):
        ...         return [0] * len(contexts)
        ...     def receive_feedbacks(self, contexts, actions, rewards):
        ...         pass
        >>> env = ContextualBanditEnv(n_actions=3, n_features=4, seed=0)
        >>> history = run_bandit(AlwaysFirst(), env, rounds=50, batch_size=25)
        >>> len(history), history.cumulative_regret > 0
        (50, True)
    """
    from patterns._facade import ActorFacade

    rounds = check_int("rounds", rounds, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    limit = None if budget_s is None else check_positive_float("budget_s", budget_s)
    check_timeout(timeout)
    if not isinstance(env, ContextualBanditEnv):
        msg = f"'env' must be a ContextualBanditEnv, got {describe(env)}"
        raise TypeError(msg)
    _check_agent(agent, batch_size)
    ours = isinstance(agent, ActorFacade)
    per_call = resolve_timeout(timeout, agent.timeout) if ours else None
    actions = np.empty(rounds, dtype=np.int64)
    rewards = np.empty(rounds)
    expected = np.empty(rounds)
    best = np.empty(rounds)
    oracle = np.empty(rounds)
    started = time.perf_counter()
    deadline = None if limit is None else time.monotonic() + limit

    def call(method: str, played: int, *args: Any) -> Any:
        bound = per_call
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                msg = f"run_bandit spent its budget_s={limit:g} s after {played} of {rounds} rounds"
                raise CallTimeoutError(msg)
            if ours and (bound is None or left < bound):
                try:
                    return getattr(agent, method)(*args, timeout=left)
                except CallTimeoutError as exc:
                    msg = (
                        f"run_bandit spent its budget_s={limit:g} s after {played} of {rounds} "
                        f"rounds, waiting for {method}: {exc}"
                    )
                    raise CallTimeoutError(msg) from exc
        if ours:
            return getattr(agent, method)(*args, timeout=bound)
        return getattr(agent, method)(*args)

    for first, contexts, means, drawn in _rounds(env, rounds, batch_size):
        stop = first + len(contexts)
        if batch_size == 1:
            chosen = [call("make_prediction", first, contexts[0])]
        else:
            chosen = list(call("make_predictions", first, contexts))
        if len(chosen) != len(contexts):
            msg = f"the agent returned {len(chosen)} actions for {len(contexts)} contexts"
            raise ValueError(msg)
        picked = np.array(
            [check_action(a, env.n_actions, name="the action the agent returned") for a in chosen]
        )
        rows = np.arange(len(contexts))
        top = np.argmax(means, axis=1)
        actions[first:stop] = picked
        rewards[first:stop] = drawn[rows, picked]
        expected[first:stop] = means[rows, picked]
        best[first:stop] = means[rows, top]
        oracle[first:stop] = drawn[rows, top]
        if batch_size == 1:
            call("receive_feedback", first, contexts[0], int(picked[0]), float(rewards[first]))
        else:
            call("receive_feedbacks", first, contexts, picked, rewards[first:stop])
    return BanditHistory(
        actions, rewards, expected, best, oracle, seconds=time.perf_counter() - started
    )


def _rounds(
    env: ContextualBanditEnv, rounds: int, batch_size: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(first round, contexts, expected rewards, drawn rewards) per batch of rounds.

    The draws are made a few hundred rounds at a time (the streams advance as if
    drawn round by round).
    """
    chunk = batch_size * max(1, 512 // batch_size)
    for start in range(0, rounds, chunk):
        n = min(chunk, rounds - start)
        contexts = env._draw_contexts(n)
        means = env._expected(contexts)
        drawn = env._draw_rewards(means)
        for offset in range(0, n, batch_size):
            end = min(n, offset + batch_size)
            yield start + offset, contexts[offset:end], means[offset:end], drawn[offset:end]
