"""One node's share of a `BlockOwner`: the Ray objects holding Dataset blocks, per transfer.

Ray makes the process that calls ``ray.put`` the owner of the object, and an object
dies with its owner. A Spark Python worker is a poor owner: Spark retires idle workers,
a failed task's worker may be killed, and the bridge's connection to Ray is closed
after ``executor_idle_s``. So the Spark task hands each block to the `BlockShelf` actor
on its own Ray node, which stores a copy of its own (``ray.put`` in the shelf: the
shelf owns it) before the task's call returns. The shelf outlives the Spark worker; the
block never passes through the driver.

Exactly once, whatever Spark retries: a shelf files every block under its transfer,
its Spark partition, the *task attempt* that sent it and its number in that attempt.
When the Spark job has finished, the driver knows from Spark which attempt of each
partition succeeded (the one whose result Spark kept), and `take` hands over exactly
those attempts' blocks, in order, and drops every other attempt's blocks (a killed or
re-run task's, complete or not). The references move to the driver inside an actor
call, so Ray's reference counting follows them: once the shelf has dropped its own
references, a block lives exactly as long as a Dataset refers to it.

`from_ray_dataset` uses the same actor the other way round: the driver ``stage``s the
references of a Dataset's blocks, and each Spark task asks for its share, again inside
an actor call (a reference pickled into a Spark closure would be pinned for as long as
its owner lives).

The class is plain Python (the store is passed in), so its bookkeeping is tested
without Ray; `patterns.spark_bridge._owner` makes it an actor.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from patterns.errors import PatternError

__all__ = ["Accepted", "BlockShelf", "TransferRecord"]

# How many finished transfers a shelf remembers (for `history`, which tests read).
HISTORY = 32
# How many ended transfers a shelf refuses late deliveries for (a Spark task that was
# still running when its job ended: a speculative copy, or one being cancelled).
ENDED = 4096


@dataclass(frozen=True)
class Accepted:
    """The attempt of a Spark partition whose result Spark kept, and how many blocks it sent."""

    partition: int
    attempt: int
    blocks: int


@dataclass
class TransferRecord:
    """What a shelf did with one transfer: blocks kept and dropped, per (partition, attempt)."""

    transfer: str
    kept: dict[tuple[int, int], int] = field(default_factory=dict)
    dropped: dict[tuple[int, int], int] = field(default_factory=dict)
    senders: dict[tuple[int, int], int] = field(default_factory=dict)  # the Spark worker pids


@dataclass
class _Block:
    ref: Any
    metadata: Any
    rows: int


class BlockShelf:
    """Blocks delivered by Spark tasks, filed by transfer, partition, attempt and number.

    Args:
        put: Stores a table and returns a reference (``ray.put`` in the actor).
        describe: Block metadata for a table (Ray Data's, computed where the table is).

    Examples:
        >>> shelf = BlockShelf(put=lambda table: f"ref:{table}", describe=len)
        >>> for attempt in (7, 9):  # a first attempt, and Spark's re-run of it
        ...     _ = shelf.deliver("t1", 0, attempt, 0, "abc", rows=3, sender=1)
        >>> kept = shelf.take("t1", [Accepted(partition=0, attempt=9, blocks=1)])
        >>> kept[0][0]["ref"], shelf.history()[-1].dropped
        ('ref:abc', {(0, 7): 1})
    """

    def __init__(
        self, *, put: Callable[[Any], Any], describe: Callable[[Any], Any] | None = None
    ) -> None:
        self._put = put
        self._describe = describe
        self._lock = threading.Lock()
        # transfer -> (partition, attempt) -> number -> block
        self._open: dict[str, dict[tuple[int, int], dict[int, _Block]]] = {}
        self._senders: dict[str, dict[tuple[int, int], int]] = {}
        self._staged: dict[str, list[Any]] = {}
        self._history: deque[TransferRecord] = deque(maxlen=HISTORY)
        self._ended: set[str] = set()
        self._ended_order: deque[str] = deque()

    def _end(self, transfer: str) -> None:
        """Refuse later deliveries for ``transfer`` (call with the lock held)."""
        if transfer not in self._ended:
            self._ended.add(transfer)
            self._ended_order.append(transfer)
            if len(self._ended_order) > ENDED:
                self._ended.discard(self._ended_order.popleft())

    def _refuse(self, transfer: str) -> PatternError:
        return PatternError(
            f"{transfer} has ended (its Spark job finished, failed or was cancelled): "
            "this block is not kept"
        )

    def deliver(
        self,
        transfer: str,
        partition: int,
        attempt: int,
        number: int,
        table: Any,
        *,
        rows: int,
        sender: int = 0,
    ) -> int:
        """Store a copy of ``table`` (this shelf owns it); return its rows.

        Raises:
            PatternError: The transfer has ended (a late task's block is not kept).
        """
        with self._lock:
            if transfer in self._ended:
                raise self._refuse(transfer)
        ref = self._put(table)
        metadata = self._describe(table) if self._describe is not None else None
        with self._lock:
            if transfer in self._ended:  # ended while this copy was made: let it go
                raise self._refuse(transfer)
            attempts = self._open.setdefault(transfer, {})
            attempts.setdefault((partition, attempt), {})[number] = _Block(ref, metadata, rows)
            self._senders.setdefault(transfer, {})[(partition, attempt)] = sender
        return rows

    def take(self, transfer: str, accepted: Sequence[Accepted]) -> dict[int, list[dict[str, Any]]]:
        """Hand over the accepted attempts' blocks, in order; drop every other attempt's.

        Returns:
            Per partition, its blocks as ``{"ref", "metadata", "rows"}``, in the order sent.

        Raises:
            PatternError: An accepted attempt's blocks are not all here (they were sent
                to this shelf, so this means the shelf lost them).
        """
        with self._lock:
            attempts = self._open.pop(transfer, {})
            senders = self._senders.pop(transfer, {})
            self._end(transfer)
        record = TransferRecord(transfer, senders=senders)
        out: dict[int, list[dict[str, Any]]] = {}
        missing: list[str] = []
        for item in accepted:
            blocks = attempts.pop((item.partition, item.attempt), {})
            if sorted(blocks) != list(range(item.blocks)):
                missing.append(
                    f"partition {item.partition} (attempt {item.attempt}): "
                    f"{len(blocks)} of {item.blocks} blocks"
                )
                continue
            record.kept[(item.partition, item.attempt)] = item.blocks
            out[item.partition] = [
                {"ref": b.ref, "metadata": b.metadata, "rows": b.rows}
                for b in (blocks[i] for i in range(item.blocks))
            ]
        for key, blocks in attempts.items():  # attempts Spark did not keep: released now
            record.dropped[key] = len(blocks)
        self._history.append(record)
        if missing:
            msg = f"block shelf on pid {os.getpid()}: blocks are missing for " + "; ".join(missing)
            raise PatternError(msg)
        return out

    def drop(self, transfer: str) -> int:
        """Forget a transfer (failed or cancelled): its blocks are released; return how many."""
        with self._lock:
            attempts = self._open.pop(transfer, {})
            senders = self._senders.pop(transfer, {})
            staged = self._staged.pop(transfer, [])
            self._end(transfer)
        record = TransferRecord(transfer, senders=senders)
        for key, blocks in attempts.items():
            record.dropped[key] = len(blocks)
        if attempts:
            self._history.append(record)
        return sum(len(b) for b in attempts.values()) + len(staged)

    def stage(self, transfer: str, refs: list[Any]) -> int:
        """Keep a Dataset's block references for Spark tasks to ask for (`from_ray_dataset`)."""
        with self._lock:
            self._staged[transfer] = list(refs)
        return len(refs)

    def staged(self, transfer: str, start: int, stop: int) -> list[Any]:
        """The staged references ``start:stop`` of a transfer (a Spark task's share)."""
        with self._lock:
            refs = self._staged.get(transfer)
        if refs is None:
            msg = f"no blocks are staged for {transfer} (the transfer ended, or never began)"
            raise PatternError(msg)
        return refs[start:stop]

    def unstage(self, transfer: str) -> None:
        """Forget a `stage`; the blocks stay wherever else they are referenced."""
        with self._lock:
            self._staged.pop(transfer, None)

    def progress(self) -> dict[tuple[str, int, int], tuple[int, int]]:
        """Open attempts: (transfer, partition, attempt) -> (sender pid, blocks delivered)."""
        with self._lock:
            return {
                (transfer, partition, attempt): (
                    self._senders.get(transfer, {}).get((partition, attempt), 0),
                    len(blocks),
                )
                for transfer, attempts in self._open.items()
                for (partition, attempt), blocks in attempts.items()
            }

    def holding(self) -> int:
        """Blocks this shelf holds references to right now (open transfers and staged)."""
        with self._lock:
            open_blocks = sum(len(b) for a in self._open.values() for b in a.values())
            return open_blocks + sum(len(r) for r in self._staged.values())

    def history(self) -> list[TransferRecord]:
        """The last transfers taken or dropped, oldest first."""
        with self._lock:
            return list(self._history)
