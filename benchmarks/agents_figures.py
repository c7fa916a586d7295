"""The figures of the agents page, from real runs: ``python -m benchmarks.agents_figures``.

- ``regret.png``: cumulative regret of LinUCB, Thompson sampling, a LearningAgent
  (epsilon-greedy over SGDRegressor) and random play, each in its actor, on the same
  seeded ContextualBanditEnv;
- ``replicas.png``: one LinUCB agent against 4 and 8 merging replicas and 4 replicas
  that never merge, on noisy rewards;
- ``learning_curve.png``: CartPole-v1 returns while train_policy learns, with two
  rollout workers, to the 475 goal.

The numbers behind them go to ``benchmarks/results/agents_figures.json``, which the
agents page quotes. It starts a
local Ray (``num_cpus=2``) unless one is connected; with ``--ray-on-spark`` it runs on
the embedded Ray-on-Spark cluster (:class:`launcher.RayOnSpark`) instead, and stops it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "tutorials" / "assets" / "agents"
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "agents_figures.json"


def bandit_race(rounds: int = 3_000) -> dict[str, Any]:
    from sklearn.linear_model import SGDRegressor

    from patterns import (
        ContextualBanditEnv,
        LearningAgent,
        LinUCBAgent,
        RandomAgent,
        ThompsonSamplingAgent,
        run_bandit,
    )

    agents = {
        "LinUCB (alpha 1)": lambda: LinUCBAgent(n_actions=5, n_features=10),
        "Thompson sampling (alpha 1)": lambda: ThompsonSamplingAgent(
            n_actions=5, n_features=10, seed=0
        ),
        "LearningAgent, SGDRegressor, epsilon 0.1": lambda: LearningAgent(
            SGDRegressor(), n_actions=5, seed=0
        ),
        "Random": lambda: RandomAgent(n_actions=5, seed=0),
    }
    curves = {}
    for name, make in agents.items():
        env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
        with make() as agent:
            history = run_bandit(agent, env, rounds=rounds, batch_size=10)
        curves[name] = history.regret
        print(f"{name:42} regret {history.cumulative_regret:8.1f} in {history.seconds:.1f} s")
    return {"rounds": rounds, "curves": curves}


def replica_race(rounds: int = 3_000) -> dict[str, Any]:
    from patterns import AgentReplicas, ContextualBanditEnv, LinUCBAgent, run_bandit

    sizes = {"n_actions": 5, "n_features": 10}
    setups: dict[str, Any] = {
        "one LinUCB agent": lambda: LinUCBAgent(n_actions=5, n_features=10),
        "4 replicas, merge every 20": lambda: AgentReplicas(
            LinUCBAgent, n_replicas=4, sync_every=20, agent_kwargs=sizes
        ),
        "8 replicas, merge every 6": lambda: AgentReplicas(
            LinUCBAgent, n_replicas=8, sync_every=6, agent_kwargs=sizes
        ),
        "4 replicas that never merge": lambda: AgentReplicas(
            LinUCBAgent, n_replicas=4, sync_every=10**9, agent_kwargs=sizes
        ),
    }
    curves = {}
    for name, make in setups.items():
        env = ContextualBanditEnv(n_actions=5, n_features=10, noise=1.0, seed=0)
        with make() as agent:
            history = run_bandit(agent, env, rounds=rounds)
        curves[name] = history.regret
        print(f"{name:30} regret {history.cumulative_regret:8.1f} in {history.seconds:.1f} s")
    return {"rounds": rounds, "curves": curves}


def cartpole() -> dict[str, Any]:
    from patterns import train_policy

    began = time.perf_counter()
    history = train_policy(n_workers=2, target=475.0, max_episodes=4_000, seed=0)
    reached_195 = np.flatnonzero(history.moving_average() >= 195.0)
    print(
        f"CartPole: 195 after {int(reached_195[0]) + 1 if reached_195.size else None} episodes, "
        f"475 after {history.solved_episode} ({history.solved_seconds:.1f} s; "
        f"{time.perf_counter() - began:.1f} s with the workers' start)"
    )
    return {
        "returns": history.returns.tolist(),
        "moving_average": history.moving_average().tolist(),
        "episodes_to_195": int(reached_195[0]) + 1 if reached_195.size else None,
        "episodes_to_475": history.solved_episode,
        "seconds_to_475": history.solved_seconds,
    }


def plot(race: dict[str, Any], replicas: dict[str, Any], curve: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ASSETS.mkdir(parents=True, exist_ok=True)
    for name, data, title in (
        ("regret", race, "5 actions, 10 features, noise 0.1, seed 0 (feedback in batches of 10)"),
        ("replicas", replicas, "LinUCB, 5 actions, 10 features, noise 1.0, seed 0"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
        for label, regret in data["curves"].items():
            ax.plot(np.arange(1, len(regret) + 1), regret, label=label, linewidth=1.6)
        ax.set_xlabel("round")
        ax.set_ylabel("cumulative regret")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(ASSETS / f"{name}.png")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    episodes = np.arange(1, len(curve["returns"]) + 1)
    ax.plot(episodes, curve["returns"], ".", markersize=2, alpha=0.35, label="episode return")
    ax.plot(episodes, curve["moving_average"], linewidth=2, label="mean of the last 100")
    for level in (195, 475):
        ax.axhline(level, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title("CartPole-v1, linear softmax policy, REINFORCE, 2 rollout workers", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(ASSETS / "learning_curve.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    import contextlib
    import os
    import sys

    import ray

    on_spark = "--ray-on-spark" in (sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as stack:
        if on_spark:
            from launcher import RayOnSpark

            stack.enter_context(RayOnSpark())
            cluster = "embedded Ray-on-Spark cluster (head + 2 one-CPU worker nodes)"
        elif not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            stack.callback(ray.shutdown)
            cluster = "local Ray, num_cpus=2"
        else:
            cluster = "the connected Ray cluster"
        race = bandit_race()
        replicas = replica_race()
        curve = cartpole()
    plot(race, replicas, curve)
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "cluster": cluster,
        "regret": {k: float(v[-1]) for k, v in race["curves"].items()},
        "replicas_regret": {k: float(v[-1]) for k, v in replicas["curves"].items()},
        "cartpole": {k: v for k, v in curve.items() if k not in ("returns", "moving_average")},
    }
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
