"""MLflow from inside Ray actors: a parameter-server training and a bandit agent log runs.

Two actors, each on a Ray worker node, open an MLflow run, train (a
`ParameterServerClassifier`; a `LearningAgent` on a seeded bandit), and log their
hyperparameters, metrics and final model to MLflow. main() then reads both runs back
through ``MlflowClient`` on the driver and checks the logged models predict exactly
what the trained ones do.

Run it with ``python examples/ray_libraries_mlflow.py [TRACKING_URI]``. Without a
tracking URI it logs to a local SQLite store in a temporary directory, removed at the
end. Needs the ``mlflow`` extra (``pip install 'ray-actor-patterns[mlflow]'``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray

EXPERIMENT = "ray-actor-patterns"
TIMEOUT = 300

# --8<-- [start:credentials]
# MLflow reads its server address and credentials from the environment of the process
# that logs: here, the actors. These are handed to them when they are set on the driver.
CREDENTIALS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
)


def actor_environment(tracking_uri: str) -> dict[str, Any]:
    """A Ray ``runtime_env`` giving an actor the store's address and the credentials."""
    env = {name: os.environ[name] for name in CREDENTIALS if name in os.environ}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # MLflow 3 sends usage data unless told not to
    return {"env_vars": env}


# --8<-- [end:credentials]


def model_requirements() -> list[str]:
    """What loading the models needs, pinned to this environment (skips MLflow's guessing)."""
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"]


# --8<-- [start:training_actor]
@ray.remote(num_cpus=1)
class TrackedTraining:
    """Trains a ParameterServerClassifier and logs the run to MLflow from this actor."""

    def run(self, experiment_id: str, params: dict[str, Any], data: tuple) -> tuple[str, Any]:
        from ray.air.integrations.mlflow import setup_mlflow
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from patterns import ParameterServerClassifier

        # Starts a run (address from MLFLOW_TRACKING_URI) and logs `params` as its parameters.
        mlflow = setup_mlflow(params, experiment_id=experiment_id, run_name="parameter-server")
        X_train, y_train, X_test, y_test = data
        pipeline = make_pipeline(
            StandardScaler(), ParameterServerClassifier(**params, random_state=0)
        )
        pipeline.fit(X_train, y_train)  # the server and its workers are actors too
        history = pipeline[-1].history_
        for record in history.records:  # one per push: the loss of the gradients pushed
            mlflow.log_metric("loss", record.loss, step=record.update)
        mlflow.log_metric("test_accuracy", pipeline.score(X_test, y_test))
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=[*model_requirements(), "ray-actor-patterns"],
        )
        run_id = mlflow.active_run().info.run_id
        mlflow.end_run()
        return run_id, pipeline


# --8<-- [end:training_actor]


# --8<-- [start:bandit_actor]
@ray.remote(num_cpus=1)
class TrackedBandit:
    """Runs a LearningAgent on a seeded bandit and logs the run to MLflow from this actor."""

    def run(self, experiment_id: str, params: dict[str, Any], rounds: int) -> tuple[str, list]:
        from ray.air.integrations.mlflow import setup_mlflow
        from sklearn.linear_model import SGDRegressor

        from patterns import ContextualBanditEnv, LearningAgent, run_bandit

        mlflow = setup_mlflow(params, experiment_id=experiment_id, run_name="learning-agent")
        env = ContextualBanditEnv(n_actions=3, n_features=5, noise=0.1, seed=0)
        agent = LearningAgent(
            SGDRegressor(learning_rate="constant", eta0=params["eta0"]),
            n_actions=3,
            epsilon=params["epsilon"],
            seed=0,
        )
        try:
            regret = 0.0
            for played in range(100, rounds + 1, 100):  # log as it learns
                history = run_bandit(agent, env, rounds=100, batch_size=25)
                regret += history.cumulative_regret
                mlflow.log_metrics(
                    {"mean_regret": regret / played, "average_reward": history.average_reward()},
                    step=played,
                )
            models = agent.get_model()  # one fitted SGDRegressor per action
        finally:
            agent.close()
        for action, model in enumerate(models):
            mlflow.sklearn.log_model(
                model,
                name=f"action-{action}",
                serialization_format="cloudpickle",
                pip_requirements=model_requirements(),
            )
        run_id = mlflow.active_run().info.run_id
        mlflow.end_run()
        return run_id, models


# --8<-- [end:bandit_actor]


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits (8x8 images, 10 classes; shipped with scikit-learn), split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    return X_train, y_train, X_test, y_test


# --8<-- [start:store]
def open_store(tracking_uri: str | None, folder: str) -> tuple[Any, str, str]:
    """A client, the tracking URI and the experiment's id; a local store when no URI is given."""
    from mlflow.tracking import MlflowClient

    artifacts = None
    if tracking_uri is None:
        tracking_uri = f"sqlite:///{folder}/mlflow.db"
        # MLflow would otherwise put the models in ./mlruns, under the current directory.
        artifacts = Path(folder, "artifacts").as_uri()
    # Created here, once, before any actor logs: a new SQLite store makes its tables now.
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return client, tracking_uri, found.experiment_id
    return client, tracking_uri, client.create_experiment(EXPERIMENT, artifact_location=artifacts)


# --8<-- [end:store]


def logged_model(client: Any, experiment_id: str, run_id: str, name: str) -> Any:
    """Load the model called ``name`` that run ``run_id`` logged, through the client."""
    import mlflow.sklearn

    (model,) = client.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
    )
    return mlflow.sklearn.load_model(model.artifact_location)


def main(tracking_uri: str | None = None) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with tempfile.TemporaryDirectory(prefix="mlflow-") as folder:
        # --8<-- [start:run]
        client, uri, experiment_id = open_store(tracking_uri, folder)
        options = {"runtime_env": actor_environment(uri)}

        data = load_data()
        ps_params = {"n_workers": 2, "n_shards": 1, "learning_rate": 1.0, "steps": 30}
        bandit_params = {"eta0": 0.1, "epsilon": 0.05}
        trainer = TrackedTraining.options(**options).remote()
        bandit = TrackedBandit.options(**options).remote()
        try:
            (ps_run, pipeline), (bandit_run, models) = ray.get(
                [
                    trainer.run.remote(experiment_id, ps_params, data),
                    bandit.run.remote(experiment_id, bandit_params, 500),
                ],
                timeout=TIMEOUT,
            )
        finally:
            for actor in (trainer, bandit):
                ray.kill(actor)
        # --8<-- [end:run]

        # --8<-- [start:read_back]
        run = client.get_run(ps_run)  # what the actor logged, read on the driver
        print(f"{run.info.run_name}: params {run.data.params}, metrics {run.data.metrics}")
        assert run.info.status == "FINISHED"
        assert run.data.params == {key: str(value) for key, value in ps_params.items()}
        losses = [m.value for m in client.get_metric_history(ps_run, "loss")]
        print(f"loss at the first push {losses[0]:.3f}, at the last {losses[-1]:.3f}")
        assert len(losses) == ps_params["steps"] and losses[-1] < losses[0] / 2
        assert run.data.metrics["test_accuracy"] > 0.9

        X_test = data[2]
        loaded = logged_model(client, experiment_id, ps_run, "model")
        assert (loaded.predict(X_test) == pipeline.predict(X_test)).all()
        assert np.array_equal(loaded.predict_proba(X_test), pipeline.predict_proba(X_test))
        # --8<-- [end:read_back]

        # --8<-- [start:read_back_bandit]
        run = client.get_run(bandit_run)
        print(f"{run.info.run_name}: params {run.data.params}, metrics {run.data.metrics}")
        assert run.data.params == {key: str(value) for key, value in bandit_params.items()}
        regret = client.get_metric_history(bandit_run, "mean_regret")
        assert [m.step for m in regret] == list(range(100, 501, 100))
        assert regret[-1].value < regret[0].value  # it learnt while it logged

        contexts = np.random.default_rng(1).standard_normal((200, 5))
        trained = np.column_stack([model.predict(contexts) for model in models])
        logged = np.column_stack(
            [
                logged_model(client, experiment_id, bandit_run, f"action-{a}").predict(contexts)
                for a in range(len(models))
            ]
        )
        assert np.array_equal(logged, trained)  # so the greedy actions agree too
        # --8<-- [end:read_back_bandit]
    assert not Path(folder).exists()


if __name__ == "__main__":
    # --8<-- [start:script-cluster]
    from launcher import RayOnSpark

    with RayOnSpark():
        main(sys.argv[1] if len(sys.argv) > 1 else None)
    # --8<-- [end:script-cluster]
