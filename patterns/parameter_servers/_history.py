"""What a training run did: a `TrainingRecord` per update, the events, the `TrainingHistory`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TrainingEvent", "TrainingHistory", "TrainingRecord"]


@dataclass(frozen=True)
class TrainingRecord:
    """One update of a training run (or its start, ``update=0``).

    Attributes:
        update: Pushes sent so far (0: before the first).
        version: The server's version after this update.
        elapsed_s: Wall-clock seconds since training started.
        loss: The training loss the gradients reported (the workers' mean in sync
            mode); None for the start record.
        accuracy: Accuracy on ``eval_data`` after this update, when it was evaluated.
        worker: The worker whose gradients were pushed (None in sync mode: all).
        staleness: Versions applied since the gradients' parameters were pulled.
        applied: False if the server dropped the push as stale.

    Examples:
        >>> TrainingRecord(update=1, version=1, elapsed_s=0.1, loss=2.3, accuracy=None)
        TrainingRecord(update=1, version=1, elapsed_s=0.1, loss=2.3, accuracy=None, worker=None,
                       staleness=0, applied=True)
    """

    update: int
    version: int
    elapsed_s: float
    loss: float | None
    accuracy: float | None
    worker: int | None = None
    staleness: int = 0
    applied: bool = True


@dataclass(frozen=True)
class TrainingEvent:
    """Something that happened to a training run besides updates: a worker replaced.

    Attributes:
        update: Pushes sent when it happened.
        elapsed_s: Wall-clock seconds since training started.
        kind: ``"worker_replaced"``.
        worker: The index of the worker concerned.
        detail: The error that caused it (``"CallTimeoutError"`` for a worker that did
            not answer in time, ``"ActorLostError"`` for one that died for good).

    Examples:
        >>> TrainingEvent(3, 0.5, "worker_replaced", 1, "CallTimeoutError").kind
        'worker_replaced'
    """

    update: int
    elapsed_s: float
    kind: str
    worker: int
    detail: str


@dataclass
class TrainingHistory:
    """What `train` did: one record per update, the events, and the final accuracy.

    Attributes:
        mode: ``"sync"``, ``"async"`` or ``"ssp"``.
        n_workers: How many workers trained.
        steps: Gradient steps per worker.
        records: A `TrainingRecord` per update, plus one at the start when there was
            evaluation data.
        events: A `TrainingEvent` per replaced worker.
        duration_s: Wall-clock duration of the run (from the first step; starting the
            workers' processes is not counted).

    Examples:
        >>> history = TrainingHistory("sync", n_workers=2, steps=1)
        >>> history.records.append(TrainingRecord(1, 1, 0.2, 0.7, 0.9))
        >>> history.final_accuracy, history.time_to_accuracy(0.8)
        (0.9, 0.2)
    """

    mode: str
    n_workers: int
    steps: int
    records: list[TrainingRecord] = field(default_factory=list)
    events: list[TrainingEvent] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def final_accuracy(self) -> float | None:
        """Accuracy on the evaluation data after the last update (None without it)."""
        evaluated = [r.accuracy for r in self.records if r.accuracy is not None]
        return evaluated[-1] if evaluated else None

    @property
    def updates(self) -> int:
        """Pushes sent."""
        return max((r.update for r in self.records), default=0)

    @property
    def applied(self) -> int:
        """Pushes the server applied."""
        return sum(1 for r in self.records if r.update > 0 and r.applied)

    @property
    def dropped(self) -> int:
        """Pushes the server dropped as stale."""
        return sum(1 for r in self.records if r.update > 0 and not r.applied)

    @property
    def replaced_workers(self) -> list[int]:
        """Indexes of the workers replaced, once per replacement."""
        return [e.worker for e in self.events if e.kind == "worker_replaced"]

    def accuracy_curve(self) -> tuple[list[float], list[float]]:
        """Seconds and accuracy of every evaluated record (for a plot)."""
        points = [(r.elapsed_s, r.accuracy) for r in self.records if r.accuracy is not None]
        return [s for s, _ in points], [a for _, a in points]

    def time_to_accuracy(self, target: float) -> float | None:
        """Seconds until accuracy first reached ``target`` (None if it never did)."""
        for seconds, accuracy in zip(*self.accuracy_curve(), strict=True):
            if accuracy >= target:
                return seconds
        return None
