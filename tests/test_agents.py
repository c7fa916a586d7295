"""Agents without Ray: the state classes, the simulator, argument checks, the statistics.

The acceptance criteria about learning (regret ordering, the LearningAgent's share of
the oracle's reward, replicas against one agent) are measured here on the plain state
classes: the same code the actors run, thousands of rounds a second, no cluster.
``tests/test_agents_cluster.py`` checks that the actors reproduce these runs.
Integration and fault tests are in test_agents_cluster.py and test_agents_faults.py.
"""

from __future__ import annotations

import functools
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor

from patterns import (
    AgentPopulation,
    AgentReplicas,
    BanditHistory,
    ContextualBanditEnv,
    LearningAgent,
    LinUCBAgent,
    PolicyHistory,
    RandomAgent,
    RolloutWorker,
    ThompsonSamplingAgent,
    run_bandit,
    train_policy,
)
from patterns.agents import _agents, _rl
from patterns.agents._rl import _policy_gradient, _softmax_rows
from patterns.agents._state import (
    AgentState,
    LearningState,
    LinearState,
    LinUCBState,
    RandomState,
    ThompsonState,
)
from patterns.agents._validate import check_reward, check_rewards

# --- the simulator -----------------------------------------------------------------------


def test_env_is_seeded_and_knows_its_expected_rewards() -> None:
    a, b = (
        ContextualBanditEnv(n_actions=4, n_features=3, seed=5),
        ContextualBanditEnv(n_actions=4, n_features=3, seed=5),
    )
    xa, xb = a.context(), b.context()
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_allclose(a.expected_rewards(xa), a.weights_ @ xa)
    assert a.best_action(xa) == int(np.argmax(a.weights_ @ xa))
    np.testing.assert_array_equal(a.sample_rewards(xa), b.sample_rewards(xb))
    other = ContextualBanditEnv(n_actions=4, n_features=3, seed=6)
    assert not np.array_equal(other.weights_, a.weights_)


def test_env_noise_and_bernoulli_rewards() -> None:
    quiet = ContextualBanditEnv(n_actions=3, n_features=2, noise=0.0, seed=1)
    x = quiet.context()
    np.testing.assert_allclose(quiet.sample_rewards(x), quiet.expected_rewards(x))
    coin = ContextualBanditEnv(n_actions=3, n_features=2, seed=1, rewards="bernoulli")
    p = coin.expected_rewards(x)
    assert ((p > 0) & (p < 1)).all()
    draws = np.array([coin.sample_rewards(x) for _ in range(4000)])
    assert set(np.unique(draws)) <= {0.0, 1.0}
    np.testing.assert_allclose(draws.mean(axis=0), p, atol=0.03)


def test_batched_draws_equal_one_by_one_draws() -> None:
    """run_bandit draws a chunk at a time; the streams must not notice."""
    one, chunked = (
        ContextualBanditEnv(n_actions=3, n_features=4, seed=2),
        ContextualBanditEnv(n_actions=3, n_features=4, seed=2),
    )
    singles = [one.context() for _ in range(5)]
    np.testing.assert_array_equal(np.array(singles), chunked._draw_contexts(5))
    draws = [one.sample_rewards(x) for x in singles]
    # The same random numbers; a matrix product of 5 rows may round its last bit apart.
    np.testing.assert_allclose(
        np.array(draws), chunked._draw_rewards(chunked._expected(np.array(singles))), rtol=1e-12
    )


def test_run_bandit_records_regret_against_the_oracle() -> None:
    env = ContextualBanditEnv(n_actions=3, n_features=4, seed=0)
    history = run_bandit(RandomState(3, None, seed=0), env, rounds=200, batch_size=7)
    assert len(history) == 200
    gaps = history.best_expected - history.expected
    assert (gaps >= 0).all()
    np.testing.assert_allclose(history.regret, np.cumsum(gaps))
    assert history.cumulative_regret == pytest.approx(gaps.sum())
    assert history.oracle_average_reward() > history.average_reward()
    # The same env seed gives the same contexts and luck, whatever the batching.
    again = run_bandit(
        RandomState(3, None, seed=0),
        ContextualBanditEnv(n_actions=3, n_features=4, seed=0),
        rounds=200,
    )
    np.testing.assert_array_equal(again.best_expected, history.best_expected)
    np.testing.assert_array_equal(again.oracle_rewards, history.oracle_rewards)


def test_bandit_history_windows() -> None:
    h = BanditHistory(
        actions=np.array([0, 1, 1]),
        rewards=np.array([0.0, 1.0, 3.0]),
        expected=np.array([0.0, 1.0, 1.0]),
        best_expected=np.array([1.0, 1.0, 2.0]),
        oracle_rewards=np.array([1.0, 1.0, 2.0]),
    )
    assert h.regret.tolist() == [1.0, 1.0, 2.0]
    assert h.average_reward(last=2) == 2.0
    assert h.oracle_average_reward(last=1) == 2.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_actions": 1}, ValueError, r"'n_actions' must be an int >= 2, got 1"),
        ({"n_features": 0}, ValueError, r"'n_features' must be an int >= 1, got 0"),
        ({"noise": -1}, ValueError, r"'noise' must be a number >= 0, got -1"),
        ({"rewards": "poisson"}, ValueError, r"'rewards' must be one of 'gaussian', 'bernoulli'"),
        ({"seed": "0"}, TypeError, r"'seed' must be an int, got '0' \(str\)"),
    ],
)
def test_env_bad_arguments(kwargs: dict, error: type[Exception], match: str) -> None:
    args = {"n_actions": 3, "n_features": 2, **kwargs}
    with pytest.raises(error, match=match):
        ContextualBanditEnv(**args)


def test_run_bandit_bad_arguments() -> None:
    env = ContextualBanditEnv(n_actions=3, n_features=2)
    with pytest.raises(ValueError, match=r"'rounds' must be an int >= 1, got 0"):
        run_bandit(RandomState(3, None), env, rounds=0)
    with pytest.raises(TypeError, match=r"'agent' must have make_prediction and receive_feedback"):
        run_bandit(object(), env, rounds=5)
    with pytest.raises(TypeError, match=r"'env' must be a ContextualBanditEnv"):
        run_bandit(RandomState(3, None), "env", rounds=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'budget_s' must be a finite number > 0, got 0.0"):
        run_bandit(RandomState(3, None), env, rounds=5, budget_s=0)
    with pytest.raises(ValueError, match=r"'timeout' must be a finite number > 0, got -1.0"):
        run_bandit(RandomState(3, None), env, rounds=5, timeout=-1)

    class Liar:
        def make_prediction(self, context: Any) -> int:
            return 7

        def receive_feedback(self, *args: Any) -> None:
            raise AssertionError("never reached")

    with pytest.raises(ValueError, match=r"'the action the agent returned' must be an int in"):
        run_bandit(Liar(), env, rounds=1)


# --- linear bandit state ------------------------------------------------------------------


def _feed(state: AgentState, env: ContextualBanditEnv, rounds: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        x = env.context()
        a = int(rng.integers(env.n_actions))
        state.receive_feedback(x, a, env.reward(x, a))


def test_sherman_morrison_keeps_the_exact_inverse() -> None:
    env = ContextualBanditEnv(n_actions=3, n_features=6, seed=3)
    state = LinUCBState(3, 6, l2_lambda=0.5)
    _feed(state, env, 300)
    np.testing.assert_allclose(state.A_inv, np.linalg.inv(state.A), rtol=1e-9, atol=1e-12)
    theta = np.linalg.solve(state.A, state.b[..., None])[..., 0]
    np.testing.assert_allclose(state.theta, theta, rtol=1e-8, atol=1e-10)
    # The packed float32 table gives x^T A^-1 x for every action.
    x = env.context()
    exact = np.sqrt(np.einsum("i,kij,j->k", x, np.linalg.inv(state.A), x))
    np.testing.assert_allclose(state._bonus(x[None, :])[0], exact, rtol=1e-5)


def test_linucb_chooses_mean_plus_bonus() -> None:
    env = ContextualBanditEnv(n_actions=4, n_features=3, seed=1)
    state = LinUCBState(4, 3, alpha=0.7)
    _feed(state, env, 50)
    x = env.context()
    inv = np.linalg.inv(state.A)
    ucb = inv @ state.b[..., None]
    scores = ucb[..., 0] @ x + 0.7 * np.sqrt(np.einsum("i,kij,j->k", x, inv, x))
    assert state.make_prediction(x) == int(np.argmax(scores))
    assert state.predictions == 1
    # Deterministic: the same state and context give the same action.
    assert state.make_prediction(x) == state.make_prediction(x)


def test_thompson_samples_around_the_estimate() -> None:
    env = ContextualBanditEnv(n_actions=2, n_features=3, seed=2)
    state = ThompsonState(2, 3, seed=0, alpha=1.0)
    _feed(state, env, 400)
    x = env.context()
    means = state.theta @ x
    spread = np.sqrt(np.einsum("i,kij,j->k", x, state.A_inv, x))
    wins = np.bincount(state.make_predictions(np.repeat(x[None, :], 4000, axis=0)), minlength=2)
    # P(action 1 wins) for two independent normals: Phi((m1 - m0) / sqrt(s0^2 + s1^2)).
    from math import erf, sqrt

    z = (means[1] - means[0]) / sqrt(spread[0] ** 2 + spread[1] ** 2)
    assert wins[1] / 4000 == pytest.approx(0.5 * (1 + erf(z / sqrt(2))), abs=0.03)


def test_state_applies_each_request_once_and_round_trips() -> None:
    env = ContextualBanditEnv(n_actions=3, n_features=4, seed=4)
    state = ThompsonState(3, 4, seed=9)
    x = env.context()
    assert state.receive_feedback(x, 1, 0.5, request=(7, 1))
    assert not state.receive_feedback(x, 1, 0.5, request=(7, 1))  # a retry
    assert state.receive_feedbacks(np.array([x, x]), np.array([0, 2]), np.array([1.0, 2.0]), (7, 2))
    assert not state.set_params({"alpha": 0.3}, request=(7, 2))  # seq 2 was the batch
    assert state.set_params({"alpha": 0.3}, request=(7, 3))
    assert state.feedbacks == 3 and state.reward_sum == 3.5 and state.alpha == 0.3
    copy = AgentState.from_snapshot(pickle.loads(pickle.dumps(state.snapshot())))
    assert isinstance(copy, ThompsonState)
    np.testing.assert_allclose(copy.A_inv, state.A_inv)
    assert copy.stats() == state.stats()
    # The random stream resumes where the snapshot was taken.
    contexts = np.array([env.context() for _ in range(20)])
    assert copy.make_predictions(contexts) == state.make_predictions(contexts)
    assert not copy.receive_feedback(x, 1, 0.5, request=(7, 1))  # the request memory came too
    with pytest.raises(ValueError, match="unknown agent snapshot format"):
        AgentState.from_snapshot({"format": 99})


def test_merged_replicas_hold_one_agents_statistics() -> None:
    env = ContextualBanditEnv(n_actions=3, n_features=4, seed=5)
    one = LinUCBState(3, 4)
    replicas = [LinUCBState(3, 4) for _ in range(3)]
    for r in replicas:
        r.track_deltas()
    for round_ in range(3):
        for i in range(30):
            x = env.context()
            a = (i + round_) % 3
            reward = env.reward(x, a)
            one.receive_feedback(x, a, reward)
            replicas[i % 3].receive_feedback(x, a, reward)
        own = [r.delta() for r in replicas]
        # Feedback arriving between the delta and the merge stays pending.
        late = env.context()
        replicas[0].receive_feedback(late, 1, 0.25)
        one.receive_feedback(late, 1, 0.25)
        total = {k: sum(o[k] for o in own) for k in ("A", "b", "feedbacks")}
        for r, o in zip(replicas, own, strict=True):
            assert r.merge(total, o, request=(1, round_ + 1))
            assert not r.merge(total, o, request=(1, round_ + 1))  # a re-sent merge
    assert replicas[0].stats()["feedbacks_since_merge"] == 1
    final = [r.delta() for r in replicas]
    total = {k: sum(o[k] for o in final) for k in ("A", "b", "feedbacks")}
    for r, o in zip(replicas, final, strict=True):
        r.merge(total, o)
    for r in replicas:
        np.testing.assert_array_equal(r.A, replicas[0].A)  # the same bits everywhere
        np.testing.assert_allclose(r.A, one.A, rtol=1e-12)
        np.testing.assert_allclose(r.b, one.b, rtol=1e-12, atol=1e-12)
        assert r.feedbacks + r.merged_feedbacks == one.feedbacks
    # A snapshot keeps the pending delta.
    replicas[1].receive_feedback(env.context(), 0, 1.0)
    restored = AgentState.from_snapshot(replicas[1].snapshot())
    assert isinstance(restored, LinearState)
    np.testing.assert_array_equal(restored.delta()["A"], replicas[1].delta()["A"])


# --- learning agent and random state --------------------------------------------------


def test_learning_state_tries_every_action_then_exploits() -> None:
    state = LearningState(3, None, seed=0, estimator=SGDRegressor(), epsilon=0.0)
    x = np.array([1.0, -1.0])
    tried = set()
    for _ in range(20):
        a = state.make_prediction(x)
        tried.add(a)
        state.receive_feedback(x, a, 1.0 if a == 2 else -1.0)
        if state.fitted.all():
            break
    assert tried == {0, 1, 2}
    for _ in range(50):
        state.receive_feedbacks(np.array([x, x, x]), np.array([0, 1, 2]), np.array([-1, -1, 1.0]))
    assert state.make_predictions(np.array([x] * 5)) == [2] * 5
    assert state.n_features == 2
    with pytest.raises(ValueError, match="'context' must have 2 features"):
        state.make_prediction(np.zeros(3))


def test_learning_state_buffers_until_retrain_every() -> None:
    state = LearningState(2, 2, seed=0, estimator=SGDRegressor(), retrain_every=3)
    x = np.array([0.5, 0.5])
    state.receive_feedback(x, 0, 1.0)
    state.receive_feedback(x, 1, 0.0)
    assert state.stats()["trained"] == 0 and state.stats()["buffered"] == 2
    assert not state.fitted.any()
    copy = AgentState.from_snapshot(state.snapshot())  # the buffer is in the checkpoint
    state.receive_feedback(x, 0, 1.0)
    assert state.stats()["trained"] == 3 and state.fitted.all()
    assert isinstance(copy, LearningState) and copy.stats()["buffered"] == 2
    copy.set_params({"retrain_every": 1})  # lowering it trains what is waiting
    assert copy.stats()["trained"] == 2


def test_learning_state_classifier_scores_probability_of_reward_one() -> None:
    state = LearningState(2, 2, seed=0, estimator=SGDClassifier(loss="log_loss"), epsilon=0.0)
    xs = np.array([[1.0, 0.0]] * 40)
    state.receive_feedbacks(xs, np.array([0, 1] * 20), np.array([1.0, 0.0] * 20))
    assert state.classifier
    assert state._score(state.models[0], xs[:1])[0] > 0.5 > state._score(state.models[1], xs[:1])[0]
    hinge = LearningState(2, 2, seed=0, estimator=SGDClassifier(loss="hinge"))
    hinge.receive_feedbacks(xs, np.array([0, 1] * 20), np.array([1.0, 0.0] * 20))
    assert hinge._score(hinge.models[0], xs[:1]).shape == (1,)  # decision_function


def test_learning_state_estimator_params_and_models() -> None:
    state = LearningState(2, 2, seed=0, estimator=SGDRegressor(), epsilon=0.1)
    state.set_params({"estimator__eta0": 0.05, "epsilon": 0.3})
    assert state.epsilon == 0.3
    assert all(m.eta0 == 0.05 for m in state.models)
    assert state.get_params()["estimator"].eta0 == 0.05
    fitted = SGDRegressor().partial_fit(np.ones((2, 2)), [1.0, 1.0])
    state.set_model([fitted, SGDRegressor()])
    assert state.fitted.tolist() == [True, False]
    copies = state.get_model()
    assert copies[0] is not state.models[0]


def test_random_state_is_uniform() -> None:
    state = RandomState(4, None, seed=3)
    counts = np.bincount(state.make_predictions(np.zeros((4000, 2))), minlength=4)
    assert counts.min() > 900


# --- the acceptance criteria, measured on the state classes -----------------------------

# Stated configuration: 5 actions, 10 features, gaussian noise 0.1, 2,000 rounds, feedback
# in batches of 10 for every agent (the same protocol for all), seeds 0, 1, 2.
ORDER_SEEDS = (0, 1, 2)


def _regret(make: Callable[[int], AgentState], seed: int, *, rounds: int, **env: Any) -> float:
    environment = ContextualBanditEnv(n_actions=5, n_features=10, seed=seed, **env)
    return run_bandit(make(seed), environment, rounds=rounds, batch_size=10).cumulative_regret


@pytest.mark.slow
def test_acceptance_regret_ordering_over_seeds() -> None:
    agents: dict[str, Callable[[int], AgentState]] = {
        "linucb": lambda s: LinUCBState(5, 10),
        "thompson": lambda s: ThompsonState(5, 10, seed=s),
        "learning": lambda s: LearningState(5, None, seed=s, estimator=SGDRegressor()),
        "random": lambda s: RandomState(5, None, seed=s),
    }
    for seed in ORDER_SEEDS:
        regret = {name: _regret(make, seed, rounds=2_000) for name, make in agents.items()}
        assert regret["linucb"] < regret["learning"], (seed, regret)
        assert regret["thompson"] < regret["learning"], (seed, regret)
        # "Far below": each learner's regret is under a third of random play's.
        for name in ("linucb", "thompson", "learning"):
            assert regret[name] < regret["random"] / 3, (seed, regret)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("estimator", "rewards"),
    [(SGDRegressor(), "gaussian"), (SGDClassifier(loss="log_loss"), "bernoulli")],
    ids=["SGDRegressor", "SGDClassifier"],
)
def test_acceptance_learning_agent_reaches_80_percent_of_the_oracle(
    estimator: Any, rewards: str
) -> None:
    # Stated configuration: 5 actions, 10 features, 3,000 rounds in batches of 10,
    # epsilon 0.05, seed 0. The criterion means something here: random play earns
    # about 0 (gaussian) or 55 % (bernoulli) of the oracle's reward, checked below.
    env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0, rewards=rewards)
    state = LearningState(5, None, seed=0, estimator=estimator, epsilon=0.05)
    history = run_bandit(state, env, rounds=3_000, batch_size=10)
    share = history.average_reward(last=1_000) / history.oracle_average_reward(last=1_000)
    baseline = run_bandit(
        RandomState(5, None, seed=0),
        ContextualBanditEnv(n_actions=5, n_features=10, seed=0, rewards=rewards),
        rounds=3_000,
        batch_size=100,
    )
    random_share = baseline.average_reward(last=1_000) / baseline.oracle_average_reward(last=1_000)
    assert random_share < 0.6, random_share
    assert share >= 0.8, share


class _SimulatedReplicas:
    """What AgentReplicas does, on state classes: turns, deltas, one total, merges."""

    def __init__(self, replicas: int, sync_every: int) -> None:
        self.states = [LinUCBState(5, 10) for _ in range(replicas)]
        for state in self.states:
            state.track_deltas()
        self.sync_every = sync_every
        self.predictions = 0
        self.feedbacks = 0

    def make_prediction(self, context: np.ndarray) -> int:
        self.predictions += 1
        return self.states[(self.predictions - 1) % len(self.states)].make_prediction(context)

    def receive_feedback(self, context: np.ndarray, action: int, reward: float) -> None:
        self.states[self.feedbacks % len(self.states)].receive_feedback(context, action, reward)
        self.feedbacks += 1
        if self.feedbacks % self.sync_every == 0:
            own = [s.delta() for s in self.states]
            total = {k: sum(o[k] for o in own) for k in ("A", "b", "feedbacks")}
            for state, mine in zip(self.states, own, strict=True):
                state.merge(total, mine)


# Stated configuration: 5 actions, 10 features, noisy rewards (noise 1.0, as strong as the
# signal: learning takes thousands of rounds), 3,000 rounds, one feedback per round,
# regret summed over seeds 0-5.
REPLICA_SEEDS = range(6)
# Written by benchmarks/agents_replica_table.py; the page includes its table.
TABLE_JSON = Path(__file__).resolve().parents[1] / "benchmarks/results/agents_replicas.json"


def _replica_regrets(make: Callable[[], Any], seeds: range = REPLICA_SEEDS) -> list[float]:
    regrets = []
    for seed in seeds:
        env = ContextualBanditEnv(n_actions=5, n_features=10, noise=1.0, seed=seed)
        regrets.append(run_bandit(make(), env, rounds=3_000).cumulative_regret)
    return regrets


@functools.cache
def _one_agent_regrets() -> tuple[float, ...]:
    return tuple(_replica_regrets(lambda: LinUCBState(5, 10)))


def _check_the_page_table(name: str, regret: float) -> None:
    # The page's replicas table is benchmarks/agents_replica_table.py's output: the
    # rows asserted here must be the figures it quotes.
    table = json.loads(TABLE_JSON.read_text(encoding="utf-8"))
    assert table["rows"][name]["regret"] == pytest.approx(regret, rel=1e-6), name


@pytest.mark.slow
def test_acceptance_four_replicas_within_10_percent_of_one_agent() -> None:
    one = _one_agent_regrets()
    four = _replica_regrets(lambda: _SimulatedReplicas(4, sync_every=20))
    assert sum(four) <= 1.10 * sum(one), (four, one)
    _check_the_page_table("one LinUCB agent", sum(one))
    _check_the_page_table("4 replicas, merge every 20", sum(four))
    # Merging is what buys it: four replicas that never merge each learn from a quarter
    # of the feedback (two seeds are enough to see it).
    apart = _replica_regrets(lambda: _SimulatedReplicas(4, sync_every=10**9), range(2))
    assert sum(apart) > 1.5 * sum(one[:2]), (apart, one)


@pytest.mark.slow
def test_goal_eight_replicas_within_5_percent_of_one_agent() -> None:
    # The goal, met at a stated merge interval: 8 replicas merging every 6
    # feedbacks (500 merges in 3,000 rounds; every 8 misses it: see the page's table).
    one = _one_agent_regrets()
    eight = _replica_regrets(lambda: _SimulatedReplicas(8, sync_every=6))
    assert sum(eight) <= 1.05 * sum(one), (eight, one)
    _check_the_page_table("8 replicas, merge every 6", sum(eight))


# --- argument checks: they fail before anything reaches Ray -------------------------------


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if an actor would be created; Ray's local option checks still run."""
    for module, name in ((_agents, "_RemoteAgentActor"), (_rl, "_RemoteRolloutActor")):
        real = getattr(module, name)

        class Guard:
            def __init__(self, real: Any) -> None:
                self.real = real

            def options(self, **options: object) -> Guard:
                self.real.options(**options)  # validates locally, sends nothing
                return self

            def remote(self, *args: object) -> None:
                raise AssertionError("a bad argument reached Ray")

        monkeypatch.setattr(module, name, Guard(real))


COMMON_BAD = [
    ({"store": "/tmp/x"}, TypeError, r"'store' must be a CheckpointStore, got the path"),
    ({"checkpoint_every": 0}, ValueError, r"'checkpoint_every' must be an int >= 1, got 0"),
    ({"key": "k"}, ValueError, r"'key' only applies to a \w+Agent with a 'store'"),
    ({"actor_options": {"nmae": "typo"}}, ValueError, r"refused by Ray: Invalid option keyword"),
    ({"actor_options": {"get_if_exists": True}}, ValueError, "get_if_exists=True without a"),
    (
        {"actor_options": {"name": "a"}},
        ValueError,
        r"'actor_options' may not set 'name': pass name=",
    ),
    ({"namespace": "shop"}, ValueError, r"'namespace' only applies to a named \w+Agent"),
    ({"name": ""}, ValueError, r"'name' must be a non-empty str"),
    ({"timeout": 0}, ValueError, r"'timeout' must be a finite number > 0, got 0.0"),
    ({"timeout": "60"}, TypeError, r"'timeout' must be a number of seconds"),
    ({"n_actions": 1}, ValueError, r"'n_actions' must be an int >= 2, got 1"),
    ({"n_actions": 2.0}, TypeError, r"'n_actions' must be an int, got 2.0 \(float\)"),
    ({"seed": -1}, ValueError, r"'seed' must be an int >= 0, got -1"),
]

AGENTS: dict[str, tuple[Callable[..., Any], dict[str, Any], list[tuple[dict, type, str]]]] = {
    "linucb": (
        LinUCBAgent,
        {"n_actions": 3, "n_features": 2},
        [
            ({"alpha": 0}, ValueError, r"'alpha' must be a number > 0, got 0"),
            ({"alpha": -1.0}, ValueError, r"'alpha' must be a number > 0, got -1.0"),
            ({"alpha": "1"}, TypeError, r"'alpha' must be a number, got '1' \(str\)"),
            ({"l2_lambda": 0}, ValueError, r"'l2_lambda' must be a number > 0"),
            ({"n_features": 0}, ValueError, r"'n_features' must be an int >= 1, got 0"),
        ],
    ),
    "thompson": (
        ThompsonSamplingAgent,
        {"n_actions": 3, "n_features": 2},
        [({"alpha": 0.0}, ValueError, r"'alpha' must be a number > 0, got 0.0")],
    ),
    "learning": (
        LearningAgent,
        {"estimator": SGDRegressor(), "n_actions": 3},
        [
            ({"epsilon": 1.5}, ValueError, r"'epsilon' must be a number in \[0, 1\], got 1.5"),
            ({"epsilon": -0.1}, ValueError, r"'epsilon' must be a number in \[0, 1\]"),
            ({"retrain_every": 0}, ValueError, r"'retrain_every' must be an int >= 1, got 0"),
            (
                {"estimator": object()},
                TypeError,
                r"'estimator' must be a scikit-learn estimator .*, got <object object at .*> "
                r"\(object\)$",
            ),
            (
                {"estimator": SGDRegressor},
                TypeError,
                r"'estimator' must be an estimator instance, got the class SGDRegressor: "
                r"use SGDRegressor\(\)",
            ),
        ],
    ),
    "random": (RandomAgent, {"n_actions": 3}, []),
}


@pytest.mark.parametrize(
    ("kind", "kwargs", "error", "match"),
    [
        pytest.param(kind, bad, error, match, id=f"{kind}-{match[:30]}")
        for kind, (_, _, own) in AGENTS.items()
        for bad, error, match in [*COMMON_BAD, *own]
    ],
)
def test_agent_bad_arguments(
    no_ray: None, kind: str, kwargs: dict, error: type[Exception], match: str
) -> None:
    cls, base, _ = AGENTS[kind]
    with pytest.raises(error, match=match):
        cls(**{**base, **kwargs})


def test_estimator_without_partial_fit_names_estimator(no_ray: None) -> None:
    from sklearn.ensemble import RandomForestRegressor

    with pytest.raises(
        TypeError,
        match=r"^'estimator' must be a scikit-learn estimator with partial_fit .*, "
        r"got RandomForestRegressor\(\) \(RandomForestRegressor\)$",
    ):
        LearningAgent(RandomForestRegressor(), n_actions=3)


def test_agent_cannot_be_created_directly() -> None:
    from patterns import Agent

    with pytest.raises(TypeError, match="Agent is the common interface"):
        Agent()


def test_counts_are_never_positional(no_ray: None) -> None:
    for build in (
        lambda: LinUCBAgent(3, 2),  # type: ignore[misc]
        lambda: ThompsonSamplingAgent(3, 2),  # type: ignore[misc]
        lambda: RandomAgent(3),  # type: ignore[misc]
        lambda: LearningAgent(SGDRegressor(), 3),  # type: ignore[misc]
        lambda: ContextualBanditEnv(3, 2),  # type: ignore[misc]
    ):
        with pytest.raises(TypeError, match="positional argument"):
            build()


LINEAR = {"n_actions": 3, "n_features": 2}
REPLICAS_BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"agent_class": RandomAgent}, TypeError, r"'agent_class' must be LinUCBAgent or Thompson"),
    ({"agent_class": "LinUCB"}, TypeError, r"'agent_class' must be LinUCBAgent or Thompson"),
    ({"n_replicas": 0}, ValueError, r"'n_replicas' must be an int >= 1, got 0"),
    ({"sync_every": 0}, ValueError, r"'sync_every' must be an int >= 1, got 0"),
    ({"agent_kwargs": None}, TypeError, r"'agent_kwargs' must give n_actions and n_features"),
    ({"agent_kwargs": [3, 2]}, TypeError, r"'agent_kwargs' must be a dict of LinUCBAgent"),
    (
        {"agent_kwargs": {**LINEAR, "store": None}},
        ValueError,
        r"'agent_kwargs' may not set 'store': pass store= to AgentReplicas",
    ),
    (
        {"agent_kwargs": {**LINEAR, "epsilon": 0.1}},
        TypeError,
        r"'agent_kwargs' holds 'epsilon', which is not an argument of LinUCBAgent",
    ),
    ({"agent_kwargs": {**LINEAR, "alpha": 0}}, ValueError, r"'alpha' must be a number > 0"),
    ({"agent_kwargs": {"n_actions": 1, "n_features": 2}}, ValueError, r"'n_actions' must be"),
    ({"key": "k"}, ValueError, r"'key' only applies to a AgentReplicas with a 'store'"),
    ({"legacy_keys": ["a", "b"]}, ValueError, r"'legacy_keys' only applies to AgentReplicas"),
    ({"actor_options": {"name": "r"}}, ValueError, r"'actor_options' may not set 'name'"),
    ({"namespace": "shop"}, ValueError, r"'namespace' only applies to a named AgentReplicas"),
    ({"timeout": 0}, ValueError, r"'timeout' must be a finite number > 0"),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"), REPLICAS_BAD, ids=[m[:40] for _, _, m in REPLICAS_BAD]
)
def test_replicas_bad_arguments(
    no_ray: None, kwargs: dict, error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {
        "agent_class": LinUCBAgent,
        "n_replicas": 2,
        "sync_every": 5,
        "agent_kwargs": LINEAR,
        **kwargs,
    }
    agent_class = args.pop("agent_class")
    with pytest.raises(error, match=match):
        AgentReplicas(agent_class, **args)


def test_replicas_legacy_keys_must_be_one_per_replica(no_ray: None, tmp_path: Path) -> None:
    from patterns import DirectoryStore

    store = DirectoryStore(tmp_path)
    with pytest.raises(ValueError, match=r"'legacy_keys' must hold 2 keys \(one per replica\)"):
        AgentReplicas(
            LinUCBAgent,
            n_replicas=2,
            sync_every=5,
            agent_kwargs=LINEAR,
            store=store,
            legacy_keys=["old-0"],
        )
    with pytest.raises(TypeError, match=r"'legacy_keys' must be a list of 2 keys"):
        AgentReplicas(
            LinUCBAgent,
            n_replicas=2,
            sync_every=5,
            agent_kwargs=LINEAR,
            store=store,
            legacy_keys="old",
        )


def test_population_bad_arguments(no_ray: None) -> None:
    with pytest.raises(TypeError, match=r"'members' must be a dict of names to agents"):
        AgentPopulation([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'members' must hold at least one agent"):
        AgentPopulation({})
    with pytest.raises(TypeError, match=r"'members\['a'\]' must be an agent of this module"):
        AgentPopulation({"a": "agent"})  # type: ignore[dict-item]


def test_arrays_follow_the_library_rule() -> None:
    """One rule for arrays in every family: bool arrays refused, ragged lists a ValueError.
    Binary rewards are the numbers 0 and 1."""
    from patterns.agents._validate import check_actions, check_context, check_contexts

    with pytest.raises(ValueError, match=r"'contexts' must be a rectangular array .* ragged"):
        check_contexts([[1.0, 2.0], [3.0]], 2)
    with pytest.raises(ValueError, match=r"'actions' must be a rectangular array .* ragged"):
        check_actions([[0], [1, 2]], 3, 2)
    with pytest.raises(
        TypeError,
        match=r"'context' must hold int or float numbers, got an array "
        r"of bool: convert it with .astype\(float\)",
    ):
        check_context(np.array([True, False]), 2)
    with pytest.raises(
        TypeError,
        match=r"'rewards' must hold int or float numbers, got an array "
        r"of bool: convert it with .astype\(float\)",
    ):
        check_rewards(np.array([True, False]), 2, True)
    with pytest.raises(TypeError, match=r"'reward' must be a number, got True \(bool\)"):
        check_reward(True, True)
    clicked = np.array([True, False])
    np.testing.assert_array_equal(check_rewards(clicked.astype(float), 2, True), [1.0, 0.0])
    np.testing.assert_array_equal(check_rewards([1, 0], 2, True), [1.0, 0.0])
    assert check_reward(float(clicked[0]), True) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_workers": 0}, ValueError, r"'n_workers' must be an int >= 1, got 0"),
        ({"learning_rate": 0}, ValueError, r"'learning_rate' must be a number > 0"),
        ({"gamma": 1.5}, ValueError, r"'gamma' must be a number <= 1, got 1.5"),
        (
            {"episodes_per_iteration": 0},
            ValueError,
            r"'episodes_per_iteration' must be an int >= 1",
        ),
        ({"env_id": ""}, ValueError, r"'env_id' must be a non-empty str"),
        ({"on_iteration": 3}, TypeError, r"'on_iteration' must be callable or None"),
        ({"budget_s": 0}, ValueError, r"'budget_s' must be a finite number > 0, got 0.0"),
        (
            {"budget_s": "600"},
            TypeError,
            r"'budget_s' must be a number of seconds \(int or float\), got '600' \(str\)",
        ),
        ({"rollout_timeout_s": -1}, ValueError, r"'rollout_timeout_s' must be a finite number"),
        ({"worker_options": {"name": "w"}}, ValueError, r"'worker_options' may not set 'name'"),
        ({"worker_options": {"nmae": 1}}, ValueError, r"refused by Ray: Invalid option keyword"),
    ],
)
def test_train_policy_bad_arguments(
    no_ray: None, kwargs: dict, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        train_policy(**kwargs)


def test_rollout_worker_bad_arguments(no_ray: None) -> None:
    with pytest.raises(TypeError, match=r"'env_id' must be a str"):
        RolloutWorker(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'actor_options' may not set 'name'"):
        RolloutWorker(actor_options={"name": "w"})
    with pytest.raises(ValueError, match=r"'timeout' must be a finite number > 0"):
        RolloutWorker(timeout=0)


# --- the learner's arithmetic -------------------------------------------------------------


def test_policy_gradient_points_towards_rewarded_actions() -> None:
    weights = np.zeros((2, 3))
    x = np.array([[1.0, 0.0, 1.0]] * 4)
    long = {"observations": x, "actions": np.array([1, 1, 1, 1]), "rewards": np.ones(4)}
    short = {"observations": x[:1], "actions": np.array([0]), "rewards": np.ones(1)}
    gradient = _policy_gradient(weights, [long, short], gamma=1.0)
    step = weights + 0.1 * gradient
    assert _softmax_rows(step @ x[0])[1] > 0.5  # action 1 led to the longer episode


def test_policy_history_moving_average() -> None:
    h = PolicyHistory(returns=np.arange(1.0, 7.0), window=3, target=4.0, solved_episode=4)
    assert h.moving_average().tolist() == [1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    assert h.solved and h.episodes == 6
