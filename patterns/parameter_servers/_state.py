"""Plain state of a parameter server (no Ray): checks, the shard plan, optimizers, a shard.

Everything here is ordinary numpy and Python, unit-tested without a cluster:

- `check_params` and `check_gradients`: what a facade validates before anything is sent.
- `plan_shards` and `Layout`: how the parameters are cut into pieces and spread over
  shards, and how pieces are put back together.
- `Optimizer`: sgd, momentum and adam, elementwise, so a piece of an array is updated
  exactly as it would be inside the whole array.
- `ShardState`: one shard's pieces, optimizer state, version, staleness counters and
  memory of applied requests, with `snapshot()` / `from_snapshot()` for checkpoints.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from patterns._checks import check_array, check_choice, check_int, check_number, describe
from patterns._requests import RequestLog

__all__ = [
    "OPTIMIZERS",
    "Layout",
    "Optimizer",
    "Piece",
    "ShardState",
    "check_gradients",
    "check_params",
    "plan_shards",
]

OPTIMIZERS = ("sgd", "momentum", "adam")

# Options each optimizer accepts, with their defaults (the usual ones).
_OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {},
    "momentum": {"momentum": 0.9},
    "adam": {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
}

_SNAPSHOT_FORMAT = 1

# How many recently dropped pushes a shard remembers, so that a push Ray re-sends after
# a restart gets the answer it got the first time (False) instead of True. A retry is
# only ever for a push that was in flight at the crash, so this bounds how many dropped
# pushes may be in flight at once for the answer to stay exact.
RECENT_DROPS = 4096


# --- arguments ------------------------------------------------------------------------------


def _numeric(name: str, value: object) -> np.ndarray:
    """``value`` as an ndarray of its own real dtype, under the library's one rule for arrays.

    `patterns._checks.check_array` decides what is refused (bool, str, object and complex
    dtypes are a TypeError, a ragged nested list a ValueError); the array keeps its dtype
    here (float32 stays float32), and finiteness is checked by the caller.
    """
    check_array(name, value, finite=False)
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def check_params(params: object) -> dict[str, np.ndarray]:
    """Validate initial parameters; return fresh float arrays (ints become float64).

    Examples:
        >>> check_params({"w": [1, 2]})["w"].dtype
        dtype('float64')
        >>> check_params({})
        Traceback (most recent call last):
        ...
        ValueError: 'params' must hold at least one array, got {}
    """
    if not isinstance(params, Mapping):
        msg = f"'params' must be a dict of name -> numpy array, got {describe(params)}"
        raise TypeError(msg)
    if not params:
        msg = "'params' must hold at least one array, got {}"
        raise ValueError(msg)
    arrays: dict[str, np.ndarray] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            msg = f"'params' keys must be non-empty str names, got {describe(name)}"
            raise TypeError(msg)
        array = _numeric(f"params[{name!r}]", value)
        dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)
        array = np.array(array, dtype=dtype, order="C", copy=True)
        if array.size == 0:
            msg = f"params[{name!r}] must hold at least one element, got shape {array.shape}"
            raise ValueError(msg)
        if not np.isfinite(array).all():
            msg = f"params[{name!r}] must be finite, got nan or inf values"
            raise ValueError(msg)
        arrays[name] = array
    return arrays


def _all_finite(array: np.ndarray) -> bool:
    # A sum is one pass without a temporary; it is not finite if any element is not
    # (or if it overflows, which the exact check below sorts out).
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(array.sum()):
            return True
    return bool(np.isfinite(array).all())


def check_gradients(
    gradients: object, shapes: Mapping[str, tuple[int, ...]], dtypes: Mapping[str, np.dtype[Any]]
) -> dict[str, np.ndarray]:
    """Validate a push: exactly the server's keys, shapes, numeric and finite values.

    Returns the gradients as arrays of the parameters' dtypes (no copy when they are
    already).

    Examples:
        >>> shapes, dtypes = {"w": (2,)}, {"w": np.dtype("float64")}
        >>> check_gradients({"w": [0.5, 1]}, shapes, dtypes)["w"]
        array([0.5, 1. ])
        >>> check_gradients({"w": [1, 2, 3]}, shapes, dtypes)
        Traceback (most recent call last):
        ...
        ValueError: gradients['w'] must have shape (2,), got shape (3,)
    """
    if not isinstance(gradients, Mapping):
        msg = f"'gradients' must be a dict of name -> numpy array, got {describe(gradients)}"
        raise TypeError(msg)
    unknown = [key for key in gradients if key not in shapes]
    if unknown:
        msg = (
            f"'gradients' has unknown key {unknown[0]!r}: this server holds "
            f"{', '.join(repr(k) for k in shapes)}"
        )
        raise ValueError(msg)
    missing = [key for key in shapes if key not in gradients]
    if missing:
        msg = f"'gradients' is missing key {missing[0]!r} (every push updates every array)"
        raise ValueError(msg)
    checked: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        array = _numeric(f"gradients[{name!r}]", gradients[name])
        if array.shape != shape:
            msg = f"gradients[{name!r}] must have shape {shape}, got shape {array.shape}"
            raise ValueError(msg)
        array = np.asarray(array, dtype=dtypes[name])
        if not _all_finite(array):
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            msg = f"gradients[{name!r}] must be finite, got {bad} nan or inf value(s)"
            raise ValueError(msg)
        checked[name] = array
    return checked


def check_optimizer(
    optimizer: object, learning_rate: object, options: object
) -> tuple[str, float, dict[str, float]]:
    """Validate the optimizer's name, learning rate and options; fill in default options.

    Examples:
        >>> check_optimizer("momentum", 0.1, None)
        ('momentum', 0.1, {'momentum': 0.9})
    """
    name = check_choice("optimizer", optimizer, OPTIMIZERS)
    rate = check_number("learning_rate", learning_rate, positive=True)
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        msg = f"'optimizer_options' must be a dict or None, got {describe(options)}"
        raise TypeError(msg)
    defaults = _OPTIMIZER_DEFAULTS[name]
    for key in options:
        if key not in defaults:
            allowed = ", ".join(repr(k) for k in defaults) or "none"
            msg = (
                f"'optimizer_options' has {key!r}, which optimizer {name!r} does not take "
                f"(it takes {allowed})"
            )
            raise ValueError(msg)
    merged = {**defaults, **options}
    for key, value in merged.items():
        if key == "epsilon":
            merged[key] = check_number(f"optimizer_options[{key!r}]", value, positive=True)
        else:  # momentum and the betas: decay rates in [0, 1)
            number = check_number(f"optimizer_options[{key!r}]", value, minimum=0.0)
            if number >= 1.0:
                msg = f"'optimizer_options[{key!r}]' must be a number in [0, 1), got {value!r}"
                raise ValueError(msg)
            merged[key] = number
    return name, rate, merged


# --- the shard plan -------------------------------------------------------------------------


class Piece(NamedTuple):
    """A contiguous range ``[start, stop)`` of the elements of array ``name`` (C order).

    When the array has enough rows, a piece is a range of whole rows.

    Examples:
        >>> Piece("W", 0, 320).size
        320
    """

    name: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        """How many elements the piece holds."""
        return self.stop - self.start


def _row_length(shape: tuple[int, ...]) -> int:
    return math.prod(shape[1:]) if len(shape) > 1 else 1


def _cut(name: str, shape: tuple[int, ...], start: int, stop: int, k: int) -> list[Piece]:
    """Cut elements ``[start, stop)`` of one array into ``k`` near-equal pieces.

    Cuts fall between rows when the range holds at least ``k`` whole rows, else between
    elements (a single-row matrix still splits).
    """
    row = _row_length(shape)
    if start % row == 0 and stop % row == 0 and (stop - start) // row >= k:
        first, rows = start // row, (stop - start) // row
        bounds = [(first + (rows * i) // k) * row for i in range(k + 1)]
    else:
        bounds = [start + ((stop - start) * i) // k for i in range(k + 1)]
    return [Piece(name, bounds[i], bounds[i + 1]) for i in range(k)]


def plan_shards(shapes: Mapping[str, tuple[int, ...]], n_shards: int) -> list[list[Piece]]:
    """Spread the arrays over ``n_shards`` shards, balanced by size; one list of pieces each.

    Every array larger than the fair share (total elements / shards, rounded up) is cut
    into row ranges of about that size; if there are still fewer pieces than shards
    (few, small arrays), the largest piece is halved until there are enough. Pieces are
    then given out largest first, each to the shard holding the fewest elements so far,
    and the shards are numbered in the order of their first piece. Every shard gets at
    least one piece. The plan depends only on the shapes and the
    number of shards, so it is the same every time.

    Args:
        shapes: Array name -> shape, in a fixed order.
        n_shards: How many shards (1 to the total number of elements).

    Returns:
        For each shard, its pieces in array order.

    Raises:
        ValueError: If ``n_shards`` exceeds the number of elements.

    Examples:
        >>> plan_shards({"W": (6, 2)}, 3)  # one matrix still shards: two rows each
        [[Piece(name='W', start=0, stop=4)], [Piece(name='W', start=4, stop=8)],
         [Piece(name='W', start=8, stop=12)]]
        >>> [sum(p.size for p in s) for s in plan_shards({"W": (64, 10), "b": (10,)}, 2)]
        [330, 320]
    """
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    total = sum(sizes.values())
    if n_shards > total:
        msg = (
            f"'n_shards' must be an int <= {total} (the number of parameter elements), "
            f"got {n_shards}"
        )
        raise ValueError(msg)
    fair = -(-total // n_shards)
    pieces: list[Piece] = []
    for name, shape in shapes.items():
        size = sizes[name]
        pieces += _cut(name, shape, 0, size, min(size, -(-size // fair)))
    while len(pieces) < n_shards:
        biggest = max(range(len(pieces)), key=lambda i: pieces[i].size)
        piece = pieces.pop(biggest)
        pieces[biggest:biggest] = _cut(piece.name, shapes[piece.name], piece.start, piece.stop, 2)
    order = {name: i for i, name in enumerate(shapes)}
    plan: list[list[Piece]] = [[] for _ in range(n_shards)]
    loads = [0] * n_shards
    for piece in sorted(pieces, key=lambda p: -p.size):  # stable: ties keep array order
        target = loads.index(min(loads))
        plan[target].append(piece)
        loads[target] += piece.size

    def first(piece: Piece) -> tuple[int, int]:
        return order[piece.name], piece.start

    # Shards in the order of their first piece: shard 0 holds the start of the first array.
    return sorted((sorted(shard, key=first) for shard in plan), key=lambda s: first(s[0]))


@dataclass(frozen=True)
class Layout:
    """Where each array lives: its shape and dtype, and the pieces each shard holds.

    A facade keeps a `Layout` to cut a push into per-shard pieces (`split`) and to put
    the pieces of a pull back together (`assemble`).

    Examples:
        >>> params = {"W": np.arange(6.0).reshape(3, 2), "b": np.zeros(2)}
        >>> layout = Layout.plan(params, n_shards=2)
        >>> parts = layout.split(params)
        >>> [sorted(p.name for p in part) for part in parts]
        [['W', 'b'], ['W']]
        >>> layout.assemble(parts)["W"].tolist()
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """

    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, np.dtype[Any]]
    shards: list[list[Piece]]

    @classmethod
    def plan(cls, params: Mapping[str, np.ndarray], n_shards: int) -> Layout:
        """The layout of checked ``params`` over ``n_shards`` shards (see `plan_shards`)."""
        shapes = {name: tuple(array.shape) for name, array in params.items()}
        dtypes = {name: array.dtype for name, array in params.items()}
        return cls(shapes, dtypes, plan_shards(shapes, n_shards))

    @property
    def elements(self) -> list[int]:
        """Elements per shard."""
        return [sum(p.size for p in shard) for shard in self.shards]

    @property
    def nbytes(self) -> list[int]:
        """Parameter bytes per shard (without the optimizer's state)."""
        return [sum(p.size * self.dtypes[p.name].itemsize for p in shard) for shard in self.shards]

    def split(self, arrays: Mapping[str, np.ndarray]) -> list[dict[Piece, np.ndarray]]:
        """Cut full arrays into each shard's flat pieces (views when the arrays are contiguous)."""
        flat = {name: np.ravel(array) for name, array in arrays.items()}
        return [{p: flat[p.name][p.start : p.stop] for p in shard} for shard in self.shards]

    def assemble(self, parts: list[Mapping[Piece, np.ndarray]]) -> dict[str, np.ndarray]:
        """Put each shard's pieces back into fresh, writable arrays of the full shapes."""
        flat = {
            name: np.empty(math.prod(shape), dtype=self.dtypes[name])
            for name, shape in self.shapes.items()
        }
        for part in parts:
            for piece, values in part.items():
                flat[piece.name][piece.start : piece.stop] = values
        return {name: flat[name].reshape(shape) for name, shape in self.shapes.items()}


# --- optimizers -----------------------------------------------------------------------------


class Optimizer:
    """One optimizer step on a flat piece of parameters, in place; elementwise.

    Every operation is elementwise and done in the parameters' dtype in a fixed order,
    so a piece updated on its own ends bit for bit where it would inside the whole array:
    the number of shards never changes the result.

    - ``sgd``: ``p -= lr * g``
    - ``momentum``: ``v = momentum * v + g``; ``p -= lr * v``
    - ``adam``: ``m = b1 * m + (1 - b1) * g``; ``v = b2 * v + (1 - b2) * g * g``;
      ``p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + epsilon)`` at step ``t``

    Examples:
        >>> opt = Optimizer("sgd", 0.5)
        >>> p = np.array([1.0, 2.0])
        >>> opt.step(p, np.array([2.0, -2.0]), opt.init_state(p), t=1)
        >>> p.tolist()
        [0.0, 3.0]
    """

    def __init__(self, name: str, learning_rate: float, options: Mapping[str, float] | None = None):
        self.name, self.learning_rate, self.options = check_optimizer(name, learning_rate, options)

    def config(self) -> dict[str, Any]:
        """The arguments that rebuild this optimizer."""
        return {"name": self.name, "learning_rate": self.learning_rate, "options": self.options}

    def init_state(self, piece: np.ndarray) -> dict[str, np.ndarray]:
        """Fresh optimizer state for ``piece`` (zeros of its shape and dtype)."""
        if self.name == "momentum":
            return {"velocity": np.zeros_like(piece)}
        if self.name == "adam":
            return {"m": np.zeros_like(piece), "v": np.zeros_like(piece)}
        return {}

    def step(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, np.ndarray], t: int
    ) -> None:
        """Apply step number ``t`` (1, 2, ...) of gradient ``grad`` to ``param`` in place."""
        lr = self.learning_rate
        if self.name == "sgd":
            param -= lr * grad
        elif self.name == "momentum":
            velocity = state["velocity"]
            velocity *= self.options["momentum"]
            velocity += grad
            param -= lr * velocity
        else:
            b1, b2, eps = self.options["beta1"], self.options["beta2"], self.options["epsilon"]
            m, v = state["m"], state["v"]
            m *= b1
            m += (1.0 - b1) * grad
            v *= b2
            v += (1.0 - b2) * (grad * grad)
            m_hat = m / (1.0 - b1**t)
            v_hat = v / (1.0 - b2**t)
            param -= lr * m_hat / (np.sqrt(v_hat) + eps)


# --- one shard ------------------------------------------------------------------------------


class ShardState:
    """One shard of a parameter server: plain Python and numpy, no Ray.

    It holds flat pieces of the parameters, the optimizer's state for each, ``version``
    (pushes applied), ``dropped_stale`` (pushes refused as too old), and the memory of
    applied requests (a `patterns._requests.RequestLog`), so a push that arrives twice
    is applied once and answered the same way both times.

    A push is applied or dropped as a whole. The decision is taken either here, from the
    push's ``version`` and ``max_staleness`` (the lead shard), or passed in as
    ``decision`` (the other shards, which must follow the lead so that all shards apply
    the same pushes).

    Examples:
        >>> piece = Piece("w", 0, 2)
        >>> sgd = Optimizer("sgd", 0.5)
        >>> state = ShardState({piece: np.array([1.0, 1.0])}, sgd, max_staleness=1)
        >>> state.push({piece: np.array([2.0, 2.0])}, version=0, request=(7, 1))
        True
        >>> state.push({piece: np.array([2.0, 2.0])}, version=0, request=(7, 1))  # a retry
        True
        >>> state.version, state.pieces[piece].tolist()
        (1, [0.0, 0.0])
        >>> state.push({piece: np.array([2.0, 2.0])}, version=0)  # 1 behind: allowed
        True
        >>> state.push({piece: np.array([2.0, 2.0])}, version=0)  # 2 behind: dropped
        False
        >>> ShardState.from_snapshot(state.snapshot()).dropped_stale
        1
    """

    def __init__(
        self,
        pieces: Mapping[Piece, np.ndarray],
        optimizer: Optimizer,
        max_staleness: int | None = None,
    ) -> None:
        self.pieces = {piece: np.array(values, copy=True) for piece, values in pieces.items()}
        self.optimizer = optimizer
        self.max_staleness = max_staleness
        self.slots = {piece: optimizer.init_state(values) for piece, values in self.pieces.items()}
        self.version = 0
        self.dropped_stale = 0
        self.changes = 0  # pushes decided (applied or dropped): when to checkpoint
        self.requests = RequestLog()
        self.recent_drops: deque[tuple[int, int]] = deque(maxlen=RECENT_DROPS)

    @property
    def nbytes(self) -> int:
        """Bytes of parameters this shard holds (without the optimizer's state)."""
        return sum(values.nbytes for values in self.pieces.values())

    def is_fresh(self, version: int | None) -> bool:
        """True if gradients computed on ``version`` are within ``max_staleness``.

        No bound, or no version given, means fresh; a version newer than this shard's
        (another client's view) counts as fresh too.
        """
        if self.max_staleness is None or version is None:
            return True
        return self.version - version <= self.max_staleness

    def push(
        self,
        gradients: Mapping[Piece, np.ndarray],
        *,
        version: int | None = None,
        decision: bool | None = None,
        request: tuple[int, int] | None = None,
    ) -> bool:
        """Apply one optimizer step with ``gradients``, or drop it; return True if applied.

        Args:
            gradients: One flat array per piece of this shard, exactly its pieces.
            version: The version the gradients were computed on (for the staleness bound).
            decision: Apply (True) or drop (False) as decided elsewhere; when given,
                ``version`` is not looked at.
            request: ``(client, seq)``: a request seen before is not applied again and
                gets the answer it got the first time.
        """
        if gradients.keys() != self.pieces.keys():
            msg = (
                f"a push must hold exactly this shard's pieces {sorted(self.pieces)}, "
                f"got {sorted(gradients)}"
            )
            raise ValueError(msg)
        if request is not None and not self.requests.first_time(*request):
            return request not in self.recent_drops
        apply = self.is_fresh(version) if decision is None else bool(decision)
        if apply:
            step = self.version + 1
            for piece, grad in gradients.items():
                self.optimizer.step(self.pieces[piece], grad, self.slots[piece], step)
            self.version = step
        else:
            self.dropped_stale += 1
            if request is not None:
                self.recent_drops.append(request)
        self.changes += 1
        return apply

    def pull(self) -> tuple[int, dict[Piece, np.ndarray]]:
        """This shard's version and pieces (the live arrays: copy before changing them)."""
        return self.version, self.pieces

    def snapshot(self) -> dict[str, Any]:
        """A plain, picklable copy of the state (pickle it before the next push)."""
        return {
            "format": _SNAPSHOT_FORMAT,
            "pieces": self.pieces,
            "slots": self.slots,
            "optimizer": self.optimizer.config(),
            "max_staleness": self.max_staleness,
            "version": self.version,
            "dropped_stale": self.dropped_stale,
            "requests": self.requests.snapshot(),
            "recent_drops": list(self.recent_drops),
        }

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> ShardState:
        """Rebuild a shard from `snapshot()` output."""
        if snapshot.get("format") != _SNAPSHOT_FORMAT:
            msg = f"unknown parameter-server snapshot format {snapshot.get('format')!r}"
            raise ValueError(msg)
        config = snapshot["optimizer"]
        optimizer = Optimizer(config["name"], config["learning_rate"], config["options"])
        state = cls(snapshot["pieces"], optimizer, snapshot["max_staleness"])
        state.slots = {
            piece: {k: np.array(v, copy=True) for k, v in slot.items()}
            for piece, slot in snapshot["slots"].items()
        }
        state.version = snapshot["version"]
        state.dropped_stale = snapshot["dropped_stale"]
        state.requests = RequestLog.from_snapshot(snapshot["requests"])
        state.recent_drops.extend(snapshot["recent_drops"])
        return state


def check_staleness(name: str, value: object) -> int | None:
    """None, or an int >= 0 (a number of versions)."""
    return None if value is None else check_int(name, value, minimum=0)
