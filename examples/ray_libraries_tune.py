"""Ray Tune on the launcher's cluster: a learning-rate grid for a `LearningAgent`.

Every trial trains a fresh `LearningAgent` (one ``SGDRegressor`` per action) on the
same seeded contextual bandit and reports its regret as it learns. The grid is built
so that its best configuration is known before the search runs (see the tutorial
page), and main() checks that Tune finds it, on the Ray worker nodes.

Run it with ``python examples/ray_libraries_tune.py``; run as a program it also
redraws the figure and the table of ``tutorials/ray-libraries.md``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

# Trials must run on Ray worker nodes, which only the Ray-on-Spark cluster has (a
# plain local Ray is a single head node), so `make test-fast` leaves this one out.
REQUIRES_SPARK = True

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "tutorials" / "assets" / "ray-libraries"

# --8<-- [start:space]
LEARNING_RATES = [0.001, 0.01, 0.1]  # the seeds' grid of three, ten times apart
EPSILONS = [0.05, 0.3]  # how often the agent explores at random
KNOWN_BEST = {"eta0": 0.1, "epsilon": 0.05}
ROUNDS, REPORT_EVERY, BATCH = 1000, 125, 25
TRIAL_CPUS = 1  # what one trial holds while it runs
# --8<-- [end:space]


# --8<-- [start:trial]
def bandit_trial(config: dict[str, float]) -> None:
    """One trial: a fresh LearningAgent plays the same seeded bandit for ROUNDS rounds."""
    import ray
    from ray import tune
    from sklearn.linear_model import SGDRegressor

    from patterns import ContextualBanditEnv, LearningAgent, run_bandit

    started = time.time()
    node_id = ray.get_runtime_context().get_node_id()  # where this trial runs
    env = ContextualBanditEnv(n_actions=3, n_features=5, noise=0.1, seed=0)
    agent = LearningAgent(
        SGDRegressor(learning_rate="constant", eta0=config["eta0"]),
        n_actions=3,
        epsilon=config["epsilon"],
        seed=0,
    )  # Tune places it with the trial: what a trial creates runs in the trial's resources
    try:
        regret = 0.0
        for played in range(REPORT_EVERY, ROUNDS + 1, REPORT_EVERY):
            history = run_bandit(agent, env, rounds=REPORT_EVERY, batch_size=BATCH)
            regret += history.cumulative_regret
            tune.report(
                {
                    "rounds": played,
                    "mean_regret": regret / played,  # lower is better; 0 is the oracle
                    "node_id": node_id,
                    "started": started,
                    "finished": time.time(),
                }
            )
    finally:
        agent.close()


# --8<-- [end:trial]


def search(storage: str) -> Any:
    """Run the grid on the connected cluster; results go under ``storage``."""
    # --8<-- [start:search]
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(bandit_trial, {"cpu": TRIAL_CPUS}),
        param_space={
            "eta0": tune.grid_search(LEARNING_RATES),
            "epsilon": tune.grid_search(EPSILONS),
        },
        tune_config=tune.TuneConfig(
            metric="mean_regret",
            mode="min",
            # One trial process runs trial after trial instead of one process each.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="bandit-learning-rate",
            storage_path=storage,  # never ~/ray_results: a temporary directory here
            verbose=0,
        ),
    )
    results = tuner.fit()
    # --8<-- [end:search]
    return results


# --8<-- [start:classifier_resources]
PS_WORKERS = 1  # gradient workers per trial: two CPUs a trial on the test cluster
PS_RATES = [0.01, 0.5]


def classifier_trial_resources(n_workers: int) -> Any:
    """What one trial that fits a ParameterServerClassifier must reserve.

    Tune runs every trial inside a placement group, and the actors a trial starts are
    placed in its bundles. The first bundle is the trial's own; one more per gradient
    worker reserves a CPU for each worker's computation, so that Tune starts no more
    trials than the cluster's CPUs can run with their workers.
    """
    from ray import tune

    bundles: list[dict[str, float]] = [{"CPU": 1.0}] + [{"CPU": 1.0} for _ in range(n_workers)]
    return tune.PlacementGroupFactory(bundles)


# --8<-- [end:classifier_resources]


# --8<-- [start:classifier_trial]
def classifier_trial(config: dict[str, float], data: Any) -> None:
    """Fit a ParameterServerClassifier with one learning rate; report held-out accuracy."""
    from ray import tune

    from patterns import ParameterServerClassifier

    X_train, X_test, y_train, y_test = data
    clf = ParameterServerClassifier(
        n_workers=PS_WORKERS, learning_rate=config["learning_rate"], steps=60, random_state=0
    ).fit(X_train, y_train)  # its actors land in the trial's bundles, and stop after fit
    tune.report({"accuracy": clf.score(X_test, y_test)})


def classifier_search(storage: str) -> Any:
    from ray import tune
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, random_state=0)
    X = StandardScaler().fit_transform(X)
    data = train_test_split(X, y, test_size=0.25, random_state=0)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(classifier_trial, data=data),
            classifier_trial_resources(PS_WORKERS),  # not {"cpu": 1}: room for the workers
        ),
        param_space={"learning_rate": tune.grid_search(PS_RATES)},
        tune_config=tune.TuneConfig(metric="accuracy", mode="max"),
        run_config=tune.RunConfig(name="ps-classifier", storage_path=storage, verbose=0),
    )
    return tuner.fit()


# --8<-- [end:classifier_trial]


# --8<-- [start:slots]
def trial_slots(plan: Any, trial_cpus: int) -> int:
    """How many trials asking for ``trial_cpus`` CPUs each a planned cluster runs at once."""
    kwargs = plan.setup_kwargs
    per_node = kwargs["num_cpus_worker_node"] // trial_cpus  # a trial never spans two nodes
    head = kwargs.get("num_cpus_head_node", 0) // trial_cpus  # 0: the planner gives it none
    return kwargs["max_worker_nodes"] * per_node + head


# --8<-- [end:slots]


def planned_slots() -> None:
    # --8<-- [start:planned_slots]
    from launcher import ClusterSpec, plan_cluster

    spec = ClusterSpec(workers=8, cores_per_worker=16, memory_per_worker_gb=64)
    isolated = plan_cluster(spec, mode="isolated")
    hybrid = plan_cluster(spec, mode="hybrid", reserve_workers_for_spark=2)
    for cpus in (1, 4, 6):
        print(
            f"trials of {cpus} CPUs: {trial_slots(isolated, cpus)} at once isolated, "
            f"{trial_slots(hybrid, cpus)} in hybrid with 2 workers kept for Spark"
        )
    assert [trial_slots(isolated, c) for c in (1, 4, 6)] == [128, 32, 16]  # 16 // 6 = 2 a node
    assert [trial_slots(hybrid, c) for c in (1, 4, 6)] == [96, 24, 12]
    # --8<-- [end:planned_slots]


def trials_at_once(table: Any) -> int:
    """The most trials that were running at the same moment (from their start and end)."""
    events = sorted(
        [(start, 1) for start in table["started"]] + [(end, -1) for end in table["finished"]]
    )
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def plot(results: Any, path: Path) -> None:
    """Mean regret against rounds played, one line per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(LEARNING_RATES, ("#9fa8da", "#3949ab", "#1a237e"), strict=True))
    styles = dict(zip(EPSILONS, ("-", "--"), strict=True))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for result in results:
        eta0, epsilon = result.config["eta0"], result.config["epsilon"]
        curve = result.metrics_dataframe
        ax.plot(
            curve["rounds"],
            curve["mean_regret"],
            styles[epsilon],
            color=colors[eta0],
            marker="o",
            markersize=3,
            label=f"eta0={eta0:g}, epsilon={epsilon:g}",
        )
    ax.set_xlabel("rounds played")
    ax.set_ylabel("mean regret so far (0 = the oracle)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Tune grid: a LearningAgent's learning rate and exploration")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(figure: Path | None = None, table_file: Path | None = None) -> None:
    import ray

    planned_slots()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tune-") as storage:
        results = search(storage)
        seconds = time.perf_counter() - t0
        # --8<-- [start:results]
        assert not results.errors, results.errors
        table = results.get_dataframe()  # one row per trial: its last report and config
        columns = ["config/eta0", "config/epsilon", "mean_regret", "rounds", "node_id"]
        table = table.sort_values("mean_regret")
        shown = table[columns].assign(node_id=table["node_id"].str[:8])
        print(shown.to_string(index=False))

        best = results.get_best_result()
        print(f"best: {best.config} with mean regret {best.metrics['mean_regret']:.3f}")
        assert best.config == KNOWN_BEST, best.config
        # --8<-- [end:results]

        # --8<-- [start:placement]
        alive = [node for node in ray.nodes() if node["Alive"]]
        head = {n["NodeID"] for n in alive if "node:__internal_head__" in n["Resources"]}
        workers = {n["NodeID"] for n in alive} - head
        used = set(table["node_id"])
        print(f"trials ran on {len(used)} of {len(workers)} worker nodes, none on the head")
        assert used <= workers and not used & head, (used, head)

        slots = sum(int(n["Resources"].get("CPU", 0) // TRIAL_CPUS) for n in alive)
        print(f"at most {trials_at_once(table)} trials ran at once; the cluster has {slots} slots")
        assert 1 <= trials_at_once(table) <= slots
        # --8<-- [end:placement]
        assert len(table) == len(LEARNING_RATES) * len(EPSILONS)
        assert (table["rounds"] == ROUNDS).all()
        # With this budget, a larger step learns faster, at either exploration rate.
        for epsilon in EPSILONS:
            rows = table[table["config/epsilon"] == epsilon].sort_values("config/eta0")
            assert rows["mean_regret"].is_monotonic_decreasing, rows
        print(f"search took {seconds:.1f} s")

        with tempfile.TemporaryDirectory() as scratch:
            path = figure or Path(scratch) / "tune-regret.png"
            plot(results, path)
            assert path.stat().st_size > 0
        if table_file is not None:
            table_file.write_text(shown.to_string(index=False) + "\n", encoding="utf-8")

        # --8<-- [start:classifier_results]
        results = classifier_search(storage)
        assert not results.errors, results.errors  # every trial's actors fitted its bundles
        best = results.get_best_result()
        print(f"classifier: best {best.config} with accuracy {best.metrics['accuracy']:.3f}")
        assert len(results) == len(PS_RATES) and best.metrics["accuracy"] > 0.7
        # --8<-- [end:classifier_results]
    assert not Path(storage).exists()


if __name__ == "__main__":
    # --8<-- [start:script-cluster]
    from launcher import RayOnSpark

    with RayOnSpark(reserve_workers_for_spark=1):
        main(figure=ASSETS / "tune-regret.png", table_file=ASSETS / "tune-results.txt")
    # --8<-- [end:script-cluster]
