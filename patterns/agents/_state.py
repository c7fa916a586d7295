"""The agents' state and logic in plain Python and numpy: no Ray here.

Each agent kind is a class with the interface its facade offers
(``make_prediction``, ``receive_feedback``, batch forms, ``get_params`` /
``set_params``, ``stats``) plus ``snapshot()`` / ``from_snapshot()`` for
checkpoints. The actor (``_actor.py``) wraps one of these; tests and simulations use
them directly, many thousands of rounds a second, without a cluster.

Arguments are assumed valid here: the facades check them first
(``_validate.py``).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from patterns._requests import RequestLog

__all__ = [
    "AgentState",
    "LearningState",
    "LinUCBState",
    "LinearState",
    "RandomState",
    "ThompsonState",
    "state_class",
]

_SNAPSHOT_FORMAT = 1

Request = tuple[int, int] | None


class AgentState:
    """What every agent keeps besides its model: counters, random state, applied requests.

    Subclasses implement ``_scores`` (or ``_choose``) and ``_learn``.
    """

    kind: ClassVar[str] = ""
    # Hyperparameters that set_params may change on a live agent.
    settable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_actions: int, n_features: int | None, seed: int | None = None) -> None:
        self.n_actions = n_actions
        self.n_features = n_features
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.predictions = 0
        self.feedbacks = 0  # applied by this agent
        self.reward_sum = 0.0
        self.changes = 0  # applied mutations, so the actor knows when to checkpoint
        self.requests = RequestLog()

    # --- what subclasses provide ------------------------------------------------------

    def _choose(self, contexts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _learn(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        raise NotImplementedError

    def _init_params(self) -> dict[str, Any]:
        """The constructor arguments (what ``from_snapshot`` passes back)."""
        return {"n_actions": self.n_actions, "n_features": self.n_features, "seed": self.seed}

    def _model_snapshot(self) -> dict[str, Any]:
        return {}

    def _restore_model(self, model: Mapping[str, Any]) -> None:
        pass

    def _extra_stats(self) -> dict[str, Any]:
        return {}

    # --- the interface ----------------------------------------------------------------

    def _first_time(self, request: Request) -> bool:
        return request is None or self.requests.first_time(*request)

    def _fix_features(self, n_features: int) -> None:
        if self.n_features is None:
            self.n_features = n_features
        elif n_features != self.n_features:
            msg = f"'context' must have {self.n_features} features (this agent's), got {n_features}"
            raise ValueError(msg)

    def make_prediction(self, context: np.ndarray) -> int:
        """The action for one context."""
        return self.make_predictions(context[None, :])[0]

    def make_predictions(self, contexts: np.ndarray) -> list[int]:
        """The actions for a batch of contexts (rows)."""
        if len(contexts) == 0:
            return []
        self._fix_features(contexts.shape[1])
        self.predictions += len(contexts)
        return [int(a) for a in self._choose(contexts)]

    def receive_feedback(
        self, context: np.ndarray, action: int, reward: float, request: Request = None
    ) -> bool:
        """Learn from one (context, action, reward); False if ``request`` was applied before."""
        return self.receive_feedbacks(
            context[None, :], np.array([action]), np.array([reward], dtype=np.float64), request
        )

    def receive_feedbacks(
        self,
        contexts: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        request: Request = None,
    ) -> bool:
        """Learn from a batch, as one request; False if ``request`` was applied before."""
        if not self._first_time(request):
            return False
        if len(actions):
            self._fix_features(contexts.shape[1])
            self._learn(contexts, np.asarray(actions, dtype=np.int64), rewards)
            self.feedbacks += len(actions)
            self.reward_sum += float(np.sum(rewards))
        self.changes += 1
        return True

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters (constructor arguments) as they are now."""
        return self._init_params()

    def set_params(self, params: Mapping[str, Any], request: Request = None) -> bool:
        """Change settable hyperparameters; False if ``request`` was applied before."""
        if not self._first_time(request):
            return False
        for name, value in params.items():
            setattr(self, name, value)
        self.changes += 1
        return True

    def stats(self) -> dict[str, Any]:
        """Counters: predictions made, feedbacks applied, reward received."""
        return {
            "kind": self.kind,
            "n_actions": self.n_actions,
            "n_features": self.n_features,
            "predictions": self.predictions,
            "feedbacks": self.feedbacks,
            "reward_sum": self.reward_sum,
            "mean_reward": self.reward_sum / self.feedbacks if self.feedbacks else 0.0,
            **self._extra_stats(),
        }

    def snapshot(self) -> dict[str, Any]:
        """A plain, picklable copy of the whole state (for checkpoints)."""
        return {
            "format": _SNAPSHOT_FORMAT,
            "kind": self.kind,
            "params": self._init_params(),
            "counters": {
                "predictions": self.predictions,
                "feedbacks": self.feedbacks,
                "reward_sum": self.reward_sum,
                "n_features": self.n_features,
            },
            "rng": copy.deepcopy(self.rng.bit_generator.state),
            "requests": self.requests.snapshot(),
            "model": self._model_snapshot(),
        }

    @staticmethod
    def from_snapshot(snapshot: Mapping[str, Any]) -> AgentState:
        """Rebuild a state (of the kind the snapshot names) from `snapshot()` output."""
        if snapshot.get("format") != _SNAPSHOT_FORMAT:
            msg = f"unknown agent snapshot format {snapshot.get('format')!r}"
            raise ValueError(msg)
        state = state_class(snapshot["kind"])(**snapshot["params"])
        counters = snapshot["counters"]
        state.predictions = counters["predictions"]
        state.feedbacks = counters["feedbacks"]
        state.reward_sum = counters["reward_sum"]
        state.n_features = counters["n_features"]
        state.rng.bit_generator.state = snapshot["rng"]
        state.requests = RequestLog.from_snapshot(snapshot["requests"])
        state._restore_model(snapshot["model"])
        return state


class RandomState(AgentState):
    """Uniformly random actions: the baseline.

    Examples:
        >>> state = RandomState(3, None, seed=0)
        >>> state.make_predictions(np.zeros((4, 2)))
        [2, 1, 1, 0]
    """

    kind = "random"

    def _choose(self, contexts: np.ndarray) -> np.ndarray:
        return self.rng.integers(self.n_actions, size=len(contexts))

    def _learn(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        pass


class LinearState(AgentState):
    """Per-action ridge regression statistics, kept ready for predictions.

    For each action ``a``: ``A[a] = l2_lambda * I + sum(x x^T)`` and
    ``b[a] = sum(r x)`` over the feedback for ``a``. The inverse ``A_inv[a]`` is kept
    up to date with the Sherman-Morrison formula (O(d^2) per feedback, no
    inversion), and so are ``theta[a] = A_inv[a] b[a]`` and a packed float32 copy of
    the upper triangle of ``A_inv`` (the *prediction table*), from which the
    quadratic forms ``x^T A_inv[a] x`` of all actions come out of one
    matrix-vector product.

    Statistics add: for replicas (`track_deltas`), the state also keeps what it
    learnt since the last merge, and `merge` folds in everybody's.
    """

    settable = ("alpha",)

    def __init__(
        self,
        n_actions: int,
        n_features: int | None,
        seed: int | None = None,
        *,
        alpha: float = 1.0,
        l2_lambda: float = 1.0,
    ) -> None:
        if n_features is None:
            raise ValueError("a linear bandit needs 'n_features'")
        super().__init__(n_actions, n_features, seed)
        self.alpha = alpha
        self.l2_lambda = l2_lambda
        d = n_features
        self.A = np.tile(l2_lambda * np.eye(d), (n_actions, 1, 1))
        self.b = np.zeros((n_actions, d))
        self._rows, self._cols = np.triu_indices(d)
        # Off-diagonal terms appear twice in x^T M x for a symmetric M.
        self._pack_weights = np.where(self._rows == self._cols, 1.0, 2.0)
        # Replicas only: the statistics at the last merge, and what came since.
        self.A_sync: np.ndarray | None = None
        self.b_sync: np.ndarray | None = None
        self.dA: np.ndarray | None = None
        self.db: np.ndarray | None = None
        self.delta_feedbacks = 0
        self.merged_feedbacks = 0
        self._refresh()

    def _init_params(self) -> dict[str, Any]:
        return {**super()._init_params(), "alpha": self.alpha, "l2_lambda": self.l2_lambda}

    def _refresh(self) -> None:
        """Recompute the inverses and what derives from them (after a merge or restore)."""
        self.A_inv = np.linalg.inv(self.A)
        self.theta = np.einsum("kij,kj->ki", self.A_inv, self.b)
        packed = self.A_inv[:, self._rows, self._cols] * self._pack_weights
        self.table = np.ascontiguousarray(packed, dtype=np.float32)

    def _bonus(self, contexts: np.ndarray) -> np.ndarray:
        """sqrt(x^T A_inv[a] x) for every context (rows) and action (columns)."""
        pairs = (contexts[:, self._rows] * contexts[:, self._cols]).astype(np.float32)
        quad = pairs @ self.table.T
        return np.asarray(np.sqrt(np.maximum(quad, 0.0, dtype=np.float64)))

    def _scores(self, contexts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _choose(self, contexts: np.ndarray) -> np.ndarray:
        return np.asarray(np.argmax(self._scores(contexts), axis=1))

    def _learn(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        touched = set()
        for x, a, r in zip(contexts, actions, rewards, strict=True):
            outer = np.outer(x, x)
            self.A[a] += outer
            self.b[a] += r * x
            if self.dA is not None and self.db is not None:
                self.dA[a] += outer
                self.db[a] += r * x
            # Sherman-Morrison: (A + x x^T)^-1 from A^-1 in O(d^2).
            inv_x = self.A_inv[a] @ x
            self.A_inv[a] -= np.outer(inv_x, inv_x) / (1.0 + x @ inv_x)
            touched.add(int(a))
        if self.dA is not None:
            self.delta_feedbacks += len(actions)
        for a in touched:
            self.theta[a] = self.A_inv[a] @ self.b[a]
            self.table[a] = self.A_inv[a][self._rows, self._cols] * self._pack_weights

    def _extra_stats(self) -> dict[str, Any]:
        return {
            "merged_feedbacks": self.merged_feedbacks,
            "feedbacks_since_merge": self.delta_feedbacks,
        }

    # --- replicas: deltas and merges ------------------------------------------------

    def track_deltas(self) -> None:
        """Start keeping what is learnt between merges (idempotent)."""
        if self.dA is None:
            self.A_sync, self.b_sync = self.A.copy(), self.b.copy()
            self.dA, self.db = np.zeros_like(self.A), np.zeros_like(self.b)
            self.delta_feedbacks = 0

    def delta(self) -> dict[str, Any]:
        """What this state learnt since the last merge (a copy; nothing changes)."""
        if self.dA is None or self.db is None:
            raise RuntimeError("this agent does not track deltas (it is not a replica)")
        return {"A": self.dA.copy(), "b": self.db.copy(), "feedbacks": self.delta_feedbacks}

    def merge(
        self, total: Mapping[str, Any], own: Mapping[str, Any], request: Request = None
    ) -> bool:
        """Fold in the sum of every replica's delta; ``own`` is the delta this one sent.

        Feedback that arrived after ``own`` was taken stays pending for the next
        merge. After a merge with nothing pending, every replica holds the same
        statistics, bit for bit: they start equal and add the same totals.
        """
        if not self._first_time(request):
            return False
        if self.A_sync is None or self.b_sync is None or self.dA is None or self.db is None:
            raise RuntimeError("this agent does not track deltas (it is not a replica)")
        self.A_sync += total["A"]
        self.b_sync += total["b"]
        self.dA -= own["A"]
        self.db -= own["b"]
        self.delta_feedbacks -= own["feedbacks"]
        self.merged_feedbacks += total["feedbacks"] - own["feedbacks"]
        self.A = self.A_sync + self.dA
        self.b = self.b_sync + self.db
        self._refresh()
        self.changes += 1
        return True

    def _model_snapshot(self) -> dict[str, Any]:
        model: dict[str, Any] = {"A": self.A.copy(), "b": self.b.copy()}
        if self.dA is not None:
            model.update(
                A_sync=self.A_sync.copy() if self.A_sync is not None else None,
                b_sync=self.b_sync.copy() if self.b_sync is not None else None,
                dA=self.dA.copy(),
                db=self.db.copy() if self.db is not None else None,
                delta_feedbacks=self.delta_feedbacks,
            )
        model["merged_feedbacks"] = self.merged_feedbacks
        return model

    def _restore_model(self, model: Mapping[str, Any]) -> None:
        self.A, self.b = model["A"], model["b"]
        if "dA" in model:
            self.A_sync, self.b_sync = model["A_sync"], model["b_sync"]
            self.dA, self.db = model["dA"], model["db"]
            self.delta_feedbacks = model["delta_feedbacks"]
        self.merged_feedbacks = model["merged_feedbacks"]
        self._refresh()  # an exact inverse: no drift carried over


class LinUCBState(LinearState):
    """LinUCB with disjoint linear models (Li et al., 2010).

    Chooses ``argmax_a theta[a] . x + alpha * sqrt(x^T A_inv[a] x)``: the estimate
    plus a bonus that shrinks as an action gathers feedback near ``x``. No random
    numbers: the same state and context give the same action (ties go to the
    lowest action).

    Examples:
        >>> state = LinUCBState(2, 2, alpha=1.0)
        >>> x = np.array([1.0, 0.0])
        >>> state.make_prediction(x)  # nothing learnt yet: a tie, the lowest action
        0
        >>> state.receive_feedback(x, 0, -1.0)
        True
        >>> state.make_prediction(x)  # action 0 disappointed: try action 1
        1
    """

    kind = "linucb"

    def _scores(self, contexts: np.ndarray) -> np.ndarray:
        return np.asarray(contexts @ self.theta.T + self.alpha * self._bonus(contexts))


class ThompsonState(LinearState):
    """Linear Thompson sampling (Agrawal and Goyal, 2013).

    Samples ``theta~[a] ~ N(theta[a], alpha^2 A_inv[a])`` and plays the best sampled
    action. Only ``theta~[a] . x`` matters for the choice, and it is normal with
    mean ``theta[a] . x`` and standard deviation ``alpha * sqrt(x^T A_inv[a] x)``:
    so one scalar per action is drawn, never a d-dimensional vector, and the cost
    is LinUCB's.

    Examples:
        >>> state = ThompsonState(3, 2, seed=1)
        >>> state.make_predictions(np.eye(2))
        [1, 1]
    """

    kind = "thompson"

    def _scores(self, contexts: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal((len(contexts), self.n_actions))
        return np.asarray(contexts @ self.theta.T + self.alpha * self._bonus(contexts) * noise)


class LearningState(AgentState):
    """One clone of a scikit-learn estimator per action, epsilon-greedy over their predictions.

    Regressors predict the reward (``predict``); classifiers, on 0/1 rewards, the
    probability of reward 1 (``predict_proba``, or ``decision_function`` when the
    classifier has no probabilities). An action whose model has not been fitted yet
    is tried first. Feedback is buffered and fed to ``partial_fit`` every
    ``retrain_every`` feedbacks. With a ``seed``, models whose ``random_state`` is
    None get one derived from it, so a seeded agent is reproducible.

    Examples:
        >>> from sklearn.linear_model import SGDRegressor
        >>> state = LearningState(2, None, seed=0, estimator=SGDRegressor(), epsilon=0.0)
        >>> x = np.array([1.0, 0.5])
        >>> state.receive_feedback(x, 0, 1.0), state.receive_feedback(x, 1, -1.0)
        (True, True)
        >>> state.make_prediction(x)
        0
    """

    kind = "learning"
    settable = ("epsilon", "retrain_every")

    def __init__(
        self,
        n_actions: int,
        n_features: int | None,
        seed: int | None = None,
        *,
        estimator: Any,
        epsilon: float = 0.1,
        retrain_every: int = 1,
    ) -> None:
        from sklearn.base import clone, is_classifier

        super().__init__(n_actions, n_features, seed)
        self.estimator = clone(estimator)
        self.epsilon = epsilon
        self.retrain_every = retrain_every
        self.classifier = bool(is_classifier(estimator))
        self.models = [clone(estimator) for _ in range(n_actions)]
        if seed is not None and self.estimator.get_params().get("random_state", 0) is None:
            # SGD shuffles each partial_fit batch: with a seed, so does every model here,
            # reproducibly (an estimator's own random_state is left as it was given).
            for action, model in enumerate(self.models):
                state = np.random.SeedSequence([seed, action]).generate_state(1)[0]
                model.set_params(random_state=int(state))
        self.fitted = np.zeros(n_actions, dtype=bool)
        self.buffer: list[tuple[np.ndarray, int, float]] = []
        self.trained = 0

    def _init_params(self) -> dict[str, Any]:
        return {
            **super()._init_params(),
            "estimator": self.estimator,
            "epsilon": self.epsilon,
            "retrain_every": self.retrain_every,
        }

    def get_params(self) -> dict[str, Any]:
        from sklearn.base import clone

        params = self._init_params()
        params["estimator"] = clone(self.estimator)
        return params

    def set_params(self, params: Mapping[str, Any], request: Request = None) -> bool:
        if not self._first_time(request):
            return False
        nested = {k.split("__", 1)[1]: v for k, v in params.items() if k.startswith("estimator__")}
        if nested:
            self.estimator.set_params(**nested)
            for model in self.models:
                model.set_params(**nested)  # live models keep what they learnt
        for name, value in params.items():
            if not name.startswith("estimator__"):
                setattr(self, name, value)
        if len(self.buffer) >= self.retrain_every:
            self._train()
        self.changes += 1
        return True

    def _score(self, model: Any, contexts: np.ndarray) -> np.ndarray:
        if not self.classifier:
            return np.asarray(model.predict(contexts), dtype=np.float64)
        if hasattr(model, "predict_proba"):  # False when the loss gives no probabilities
            proba = model.predict_proba(contexts)
            return np.asarray(proba[:, list(model.classes_).index(1)], dtype=np.float64)
        return np.asarray(model.decision_function(contexts), dtype=np.float64)

    def _choose(self, contexts: np.ndarray) -> np.ndarray:
        n = len(contexts)
        explore = self.rng.random(n) < self.epsilon
        random_actions = self.rng.integers(self.n_actions, size=n)
        untried = np.flatnonzero(~self.fitted)
        if untried.size:
            # Until every model is fitted, greedy rounds try an unfitted action.
            greedy = self.rng.choice(untried, size=n)
        elif explore.all():
            greedy = random_actions
        else:
            scores = np.column_stack([self._score(m, contexts) for m in self.models])
            greedy = np.argmax(scores, axis=1)
        return np.where(explore, random_actions, greedy)

    def _learn(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        for x, a, r in zip(contexts, actions, rewards, strict=True):
            self.buffer.append((np.array(x, dtype=np.float64), int(a), float(r)))
        if len(self.buffer) >= self.retrain_every:
            self._train()

    def _train(self) -> None:
        contexts = np.array([x for x, _, _ in self.buffer])
        actions = np.array([a for _, a, _ in self.buffer])
        rewards = np.array([r for _, _, r in self.buffer])
        for a in np.unique(actions):
            rows = actions == a
            model = self.models[a]
            if self.classifier:
                model.partial_fit(contexts[rows], rewards[rows].astype(np.int64), classes=[0, 1])
            else:
                model.partial_fit(contexts[rows], rewards[rows])
            self.fitted[a] = True
        self.trained += len(self.buffer)
        self.buffer = []

    def get_model(self) -> list[Any]:
        """Copies of the per-action models, as fitted now."""
        return copy.deepcopy(self.models)

    def set_model(self, models: Sequence[Any], request: Request = None) -> bool:
        """Install per-action models (copies); False if ``request`` was applied before."""
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        if not self._first_time(request):
            return False
        self.models = copy.deepcopy(list(models))
        for a, model in enumerate(self.models):
            try:
                check_is_fitted(model)
                self.fitted[a] = True
            except NotFittedError:
                self.fitted[a] = False
        self.changes += 1
        return True

    def _extra_stats(self) -> dict[str, Any]:
        return {"trained": self.trained, "buffered": len(self.buffer)}

    def _model_snapshot(self) -> dict[str, Any]:
        # Pickled now: the live models keep changing after the snapshot is taken.
        return {
            "models": pickle.dumps(self.models, protocol=5),
            "fitted": self.fitted.copy(),
            "buffer": list(self.buffer),
            "trained": self.trained,
        }

    def _restore_model(self, model: Mapping[str, Any]) -> None:
        self.models = pickle.loads(model["models"])
        self.fitted = model["fitted"]
        self.buffer = list(model["buffer"])
        self.trained = model["trained"]


_KINDS: dict[str, type[AgentState]] = {
    cls.kind: cls for cls in (RandomState, LinUCBState, ThompsonState, LearningState)
}


def state_class(kind: str) -> type[AgentState]:
    """The state class of an agent kind (``"linucb"``, ``"thompson"``, ...)."""
    try:
        return _KINDS[kind]
    except KeyError:
        msg = f"unknown agent kind {kind!r}"
        raise ValueError(msg) from None
