"""`BlockOwner`: the Ray actors that own the blocks of the Datasets `to_ray_dataset` makes.

One `BlockShelf` actor per Ray node (no CPU, pinned to its node), so a Spark task hands
its blocks to the shelf of its own node and the data does not cross the network to be
owned. A shelf outlives the Spark Python workers that fill it; it dies when its
`BlockOwner` is closed, or with the driver's Ray connection (it is an ordinary actor
of the driver's job), and every block it owns dies with it.

Each driver has a default owner, started by the first `to_ray_dataset` (or
`from_ray_dataset`) that needs it and kept until this process leaves the Ray cluster.
A `BlockOwner` of your own, closed when you are done, releases its blocks at a moment
you choose, even those whose references escaped Ray's counting (see `BlockOwner`).
"""

from __future__ import annotations

import enum
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import ray

from patterns._calls import DEFAULT, Default, get, resolve_timeout, stop_actors
from patterns.errors import FacadeClosedError
from patterns.spark_bridge._blocks import Accepted, BlockShelf, TransferRecord

__all__ = ["NAMESPACE", "START_TIMEOUT_S", "BlockOwner", "OwnerState", "default_owner"]

NAMESPACE = "spark-bridge-blocks"
"""Where the owners' actors are named (apart from the map functions' pools)."""

START_TIMEOUT_S = 120.0
"""How long the shelves may take to start, by default (a new Ray worker process each)."""

CALL_TIMEOUT_S = 60.0
"""How long a call to a shelf may take, by default (they hand over references only)."""


def _metadata(table: Any) -> Any:
    """Ray Data's metadata of a block (rows, bytes, schema), computed where the block is."""
    try:
        from ray.data.block import BlockMetadataWithSchema
    except ImportError:  # another Ray: the Dataset is then built with Ray Data's own calls
        return None
    return BlockMetadataWithSchema.from_block(table)


class ShelfActor(BlockShelf):
    """A `BlockShelf` in a Ray actor: ``ray.put`` makes this actor the blocks' owner."""

    def __init__(self) -> None:
        super().__init__(put=ray.put, describe=_metadata)

    def ping(self) -> tuple[int, str]:
        """The actor's pid and Ray node, once it runs."""
        return os.getpid(), ray.get_runtime_context().get_node_id()


# Several Spark tasks of a node deliver at once; a delivery is a copy into the object
# store, which runs outside the GIL, so a few threads keep them from queueing.
_RemoteShelf: Any = ray.remote(num_cpus=0, max_restarts=0, max_concurrency=8)(  # type: ignore[call-overload]
    ShelfActor
)


class OwnerState(enum.Enum):
    """Where a `BlockOwner` is in its life."""

    OPEN = "open"
    CLOSED = "closed"


class BlockOwner:
    """Ray actors that own the blocks of the Datasets `to_ray_dataset` makes: one per node.

    Ray frees an object when nothing refers to it any more, or when its owner dies.
    A Spark task cannot own the blocks it sends (Spark retires its Python workers), so
    it hands them to the ``BlockOwner``'s actor on its node, which keeps a copy of its
    own; the driver's Dataset then refers to them. So a block lives:

    - until no Dataset (or other reference) in the driver refers to it: Ray's
      reference counting frees it, the owner keeps nothing once it has handed over;
    - at most until the owner is closed (or, for the default owner, until this
      process disconnects from Ray): then every block it owns is freed, and a
      Dataset still referring to them fails when read (``OwnerDiedError``).

    The second bound is what a reference that escaped Ray's counting needs: an
    ``ObjectRef`` that Ray's pickler serializes outside a Ray call
    (``ray.cloudpickle.dumps`` of a Dataset or of its references, to keep in a file
    or send elsewhere) is pinned for as long as its owner lives, whatever happens to
    the Dataset. With the default owner that is until the driver leaves the cluster;
    with your own owner, until you close it. The bridge passes references only
    inside Ray calls, so it pins nothing itself.

    Every node of the Ray cluster gets an actor (no CPU; nodes that join later get
    one at the next `to_ray_dataset`). Use it as a context manager, or call `close`.

    Args:
        timeout: How long the actors may take to start (seconds; ``DEFAULT``: 120 s).

    Raises:
        RuntimeError: Ray is not connected in this process.
        CallTimeoutError: The actors did not start within ``timeout``.

    Examples:
        >>> with BlockOwner() as owner:  # doctest: +SKIP
        ...     ds = to_ray_dataset(spark.range(1_000), owner=owner)
        ...     ds.sum("id")
        499500
        >>> # closed: every block of ds is freed, even if a reference escaped
    """

    def __init__(self, *, timeout: float | Default | None = DEFAULT) -> None:
        wait = resolve_timeout(timeout, START_TIMEOUT_S)
        from patterns.spark_bridge import _check_ray_connected

        _check_ray_connected()
        self._id = uuid.uuid4().hex[:10]
        self._lock = threading.Lock()
        self._shelves: dict[str, Any] = {}  # node id -> actor handle
        self._names: dict[str, str] = {}  # node id -> actor name
        self._started = 0  # actors started so far (they are numbered)
        self.state = OwnerState.OPEN
        try:
            self._cover_nodes(wait)
        except BaseException:
            self.close()
            raise

    def _cover_nodes(self, timeout: float | None) -> None:
        """Start a shelf on every alive node that has none; wait until they run."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._forget_dead_shelves(timeout)
        with self._lock:
            alive = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
            started = []
            for node in alive:
                if node in self._shelves:
                    continue
                # A new name for each actor: a crashed one's may not be released yet.
                self._started += 1
                name = f"blocks-{self._id}-{node[:12]}-{self._started}"
                strategy = NodeAffinitySchedulingStrategy(node, soft=False)
                self._shelves[node] = _RemoteShelf.options(
                    name=name, namespace=NAMESPACE, scheduling_strategy=strategy
                ).remote()
                self._names[node] = name
                started.append(self._shelves[node])
        if started:
            get(
                [shelf.ping.remote() for shelf in started],
                timeout=timeout,
                who=self._who(),
                method="start",
            )

    def _forget_dead_shelves(self, timeout: float | None) -> None:
        """Forget the actors that died since they started: a new one takes each place.

        A shelf that crashed (SIGKILL, the node's memory monitor, its node left the
        cluster) owns nothing any more: Ray freed its blocks with it, and a Dataset that
        still refers to them fails when read (``OwnerDiedError``). Kept, it would fail
        every later transfer that asks it to hand over or drop its part.
        """
        from patterns.errors import ActorLostError

        with self._lock:
            shelves = dict(self._shelves)
        if not shelves:
            return
        probes = {node: shelf.ping.remote() for node, shelf in shelves.items()}
        dead = []
        for node, probe in probes.items():
            try:
                get(probe, timeout=timeout, who=self._who(), method="start")
            except ActorLostError:
                dead.append(node)
        with self._lock:
            for node in dead:
                if self._shelves.get(node) is shelves[node]:
                    del self._shelves[node], self._names[node]

    def _who(self) -> str:
        return f"BlockOwner {self._id!r}"

    def _check_open(self) -> None:
        if self.state is OwnerState.CLOSED:
            msg = f"{self._who()} is closed: its blocks are freed; use a new BlockOwner"
            raise FacadeClosedError(msg)

    @property
    def nodes(self) -> int:
        """How many Ray nodes have an actor of this owner."""
        return len(self._shelves)

    def _shelf_names(self) -> dict[str, str]:
        """The actors' names by Ray node id (Spark tasks find their node's actor by name)."""
        return dict(self._names)

    def _relay(self) -> Any:
        """The actor that passes a Dataset's references to Spark tasks (`from_ray_dataset`).

        The one on the driver's node: only references go through it, never data.
        """
        here = ray.get_runtime_context().get_node_id()
        return self._shelves.get(here) or next(iter(self._shelves.values()))

    def _name_of(self, shelf: Any) -> str:
        """The name of one of this owner's actors."""
        for node, handle in self._shelves.items():
            if handle is shelf:
                return self._names[node]
        raise KeyError(shelf)

    def _take(
        self, transfer: str, accepted: Mapping[str, Sequence[Accepted]], *, timeout: float | None
    ) -> dict[int, list[dict[str, Any]]]:
        """Each shelf hands over its accepted blocks and drops the rest (every shelf is asked)."""
        by_name = {self._names[node]: shelf for node, shelf in self._shelves.items()}
        unknown = set(accepted) - set(by_name)
        refs = [
            shelf.take.remote(transfer, list(accepted.get(name, ())))
            for name, shelf in by_name.items()
        ]
        parts: list[dict[int, list[dict[str, Any]]]] = get(
            refs, timeout=timeout, who=self._who(), method="take"
        )
        if unknown:
            from patterns.errors import PatternError

            msg = f"{self._who()}: blocks were sent to actors it does not have: {sorted(unknown)}"
            raise PatternError(msg)
        merged: dict[int, list[dict[str, Any]]] = {}
        for part in parts:
            merged.update(part)
        return merged

    def _drop(self, transfer: str, *, timeout: float | None) -> None:
        """Every shelf forgets a transfer (a failed or cancelled one); its blocks are freed."""
        refs = [shelf.drop.remote(transfer) for shelf in self._shelves.values()]
        try:
            get(refs, timeout=timeout, who=self._who(), method="drop")
        except Exception:  # the transfer failed already: its error is the one to raise
            pass

    def _history(self, *, timeout: float | Default | None = DEFAULT) -> list[TransferRecord]:
        """What the actors did with the last transfers: blocks kept and dropped per attempt.

        One record per transfer, with what every node's actor did.
        """
        wait = resolve_timeout(timeout, CALL_TIMEOUT_S)
        parts = get(
            [shelf.history.remote() for shelf in self._shelves.values()],
            timeout=wait,
            who=self._who(),
            method="history",
        )
        merged: dict[str, TransferRecord] = {}  # one record per transfer, all nodes together
        for part in parts:
            for record in part:
                into = merged.setdefault(record.transfer, TransferRecord(record.transfer))
                into.kept.update(record.kept)
                into.dropped.update(record.dropped)
                into.senders.update(record.senders)
        return list(merged.values())

    def _progress(
        self, *, timeout: float | Default | None = DEFAULT
    ) -> dict[tuple[str, int, int], tuple[int, int]]:
        """Transfers still running: (transfer, partition, attempt) -> (Spark worker pid, blocks)."""
        wait = resolve_timeout(timeout, CALL_TIMEOUT_S)
        parts = get(
            [shelf.progress.remote() for shelf in self._shelves.values()],
            timeout=wait,
            who=self._who(),
            method="progress",
        )
        return {key: value for part in parts for key, value in part.items()}

    def holding(self, *, timeout: float | Default | None = DEFAULT) -> int:
        """Blocks the actors hold references to right now (transfers still running)."""
        wait = resolve_timeout(timeout, CALL_TIMEOUT_S)
        counts = get(
            [shelf.holding.remote() for shelf in self._shelves.values()],
            timeout=wait,
            who=self._who(),
            method="holding",
        )
        return int(sum(counts))

    def close(self, *, timeout: float | Default | None = DEFAULT) -> None:
        """Stop the actors and wait until they are gone: every block they own is freed.

        Safe to call twice. A Dataset that still refers to these blocks fails when read.
        """
        wait = resolve_timeout(timeout, START_TIMEOUT_S)
        if self.state is OwnerState.CLOSED:
            return
        self.state = OwnerState.CLOSED
        stop_actors(list(self._shelves.values()), timeout=wait, who=self._who())

    def __enter__(self) -> BlockOwner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BlockOwner({self._id!r}, nodes={self.nodes}, state={self.state.value})"


_default: BlockOwner | None = None
_default_key: tuple[str, str] | None = None
_default_lock = threading.Lock()


def default_owner(*, timeout: float | None) -> BlockOwner:
    """This driver's default owner: started on first use, kept while this connection lasts.

    A new connection (``ray.shutdown`` and ``ray.init`` again, another cluster) gets a
    new one; nodes that joined since the last call get their actor now.
    """
    global _default, _default_key
    context = ray.get_runtime_context()
    key = (context.gcs_address, context.get_job_id())
    with _default_lock:
        if _default is None or _default_key != key or _default.state is OwnerState.CLOSED:
            _default, _default_key = BlockOwner(timeout=timeout), key
            return _default
        owner = _default
    owner._cover_nodes(timeout)
    return owner
