"""Several agents: replicas that merge their statistics, and a population that competes.

Run it with ``python examples/agents_replicas.py``; the tutorial page
``tutorials/patterns/agents.md`` shows its sections.
"""

from __future__ import annotations

import numpy as np

from patterns import AgentPopulation, AgentReplicas, ContextualBanditEnv, LinUCBAgent, run_bandit


def replicas() -> None:
    # --8<-- [start:replicas]
    replicas = AgentReplicas(
        LinUCBAgent,  # or ThompsonSamplingAgent: replica i draws from a stream of its own
        n_replicas=4,
        sync_every=20,  # merge every 20 feedbacks: each replica adds about 5
        agent_kwargs={"n_actions": 5, "n_features": 10},  # every replica's arguments
    )
    env = ContextualBanditEnv(n_actions=5, n_features=10, noise=1.0, seed=0)
    history = run_bandit(replicas, env, rounds=200)  # turns: replica 0, 1, 2, 3, 0, ...
    replicas.sync()  # one last merge, and wait for it

    held = replicas.statistics()  # each replica's (A, b)
    assert all(np.array_equal(h["A"], held[0]["A"]) for h in held)  # the same bits
    stats = replicas.stats()
    print(f"{stats['feedbacks']} feedbacks, {stats['syncs']} merges")
    print([s["feedbacks"] for s in stats["replicas"]], "applied by each replica")
    # --8<-- [end:replicas]
    assert stats["feedbacks"] == 200 and len(history) == 200
    replicas.close()


def population() -> None:
    # --8<-- [start:population]
    population = AgentPopulation(  # the population takes its members over: close() stops them
        {
            f"alpha={alpha}": LinUCBAgent(n_actions=5, n_features=10, alpha=alpha)
            for alpha in (0.1, 1.0, 10.0)
        }
    )
    env = ContextualBanditEnv(n_actions=5, n_features=10, seed=0)
    population.run(env, rounds=600, batch_size=10)  # every member, the same stream
    for name, reward in population.leaderboard():
        print(f"{name:10} cumulative reward {reward:7.1f}")
    print("best:", population.best())

    population.set_params("alpha=10.0", alpha=0.1)  # retune a member live, keep its data
    again = population.run(env, rounds=200, batch_size=10)
    print({name: round(h.average_reward(), 2) for name, h in again.items()})
    # --8<-- [end:population]
    assert population.best() == "alpha=0.1"
    assert population.get_params()["alpha=10.0"]["alpha"] == 0.1
    population.close()


def main() -> None:
    replicas()
    population()


if __name__ == "__main__":
    from launcher import RayOnSpark

    with RayOnSpark():
        main()
