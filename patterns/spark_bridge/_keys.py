"""Group keys: a stable actor per key, and finding groups in key-sorted Arrow data.

Python's ``hash()`` of a str is salted per process, so two Spark workers would send
the same key to different actors. The bridge hashes a canonical text of the key with
BLAKE2b instead: the same key picks the same actor in every process, on every run.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from patterns._checks import check_int, describe

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["GroupPacker", "actor_for_key", "canonical_key", "group_starts", "rebatch"]


def _canonical_value(value: object) -> object:
    if isinstance(value, float):
        if math.isnan(value):
            return "<NaN>"  # Spark puts every NaN in one group
        if value == 0.0:
            return 0.0  # and -0.0 with 0.0
    return value


def canonical_key(key: Sequence[object]) -> tuple[object, ...]:
    """The key as the bridge compares and hashes it: NaNs equal, -0.0 equal to 0.0.

    Examples:
        >>> canonical_key((float("nan"), -0.0, "é")) == canonical_key((float("nan"), 0.0, "é"))
        True
    """
    return tuple(_canonical_value(v) for v in key)


def actor_for_key(key: Sequence[object] | object, n_actors: int) -> int:
    """The index of the pool actor that handles group ``key`` (the same in every process).

    ``map_groups_with_actors`` sends every group to ``actor_for_key(key, n_actors)``,
    where ``key`` is the tuple of the group's key values (``None`` for a null). The
    choice depends only on the key and the pool size, not on the process, the run, or
    Python's per-process string hashing, so state an actor keeps per key stays with it.

    Args:
        key: The group key: a tuple of plain Python values (a single value is taken
            as a one-element key).
        n_actors: The number of actors in the pool (an int >= 1).

    Returns:
        An int in ``range(n_actors)``.

    Raises:
        TypeError: If ``n_actors`` is not an int.
        ValueError: If ``n_actors < 1``.

    Examples:
        >>> actor_for_key(("store-7", 42), 4) == actor_for_key(("store-7", 42), 4)
        True
        >>> 0 <= actor_for_key("Zürich", 3) < 3
        True
    """
    n_actors = check_int("n_actors", n_actors, minimum=1)
    if not isinstance(key, tuple):
        key = (key,)
    text = repr(canonical_key(key)).encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_actors


def group_starts(table: pa.Table, key_names: Sequence[str]) -> list[int]:
    """Row offsets where a new group starts in ``table``, which is sorted by the keys.

    Rows with equal keys must be next to each other (any order of the groups). Two
    nulls are equal, two NaNs are equal, -0.0 equals 0.0: as Spark groups them.

    Examples:
        >>> import pyarrow as pa
        >>> t = pa.table({"k": [None, None, "a", "a", "b"], "v": [1, 2, 3, 4, 5]})
        >>> group_starts(t, ["k"])
        [0, 2, 4]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if n == 0:
        return []
    if n == 1:
        return [0]
    changed = None
    for name in key_names:
        column = table.column(name).combine_chunks()
        before, after = column.slice(0, n - 1), column.slice(1)
        differs = pc.fill_null(pc.not_equal(before, after), False)
        # A null next to a value is a change; two nulls are not.
        differs = pc.or_(differs, pc.not_equal(before.is_null(), after.is_null()))
        if pa.types.is_floating(column.type):
            both_nan = pc.and_(
                pc.fill_null(pc.is_nan(before), False), pc.fill_null(pc.is_nan(after), False)
            )
            differs = pc.and_(differs, pc.invert(both_nan))
        changed = differs if changed is None else pc.or_(changed, differs)
    assert changed is not None
    return [0, *(i + 1 for i in pc.indices_nonzero(changed).to_pylist())]


def key_at(table: pa.Table, key_names: Sequence[str], row: int) -> tuple[Any, ...]:
    """The key of ``row`` as a tuple of plain Python values (None for a null)."""
    return tuple(table.column(name)[row].as_py() for name in key_names)


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.Table]:
    """Regroup Arrow batches into tables of ``batch_size`` rows (the last may be smaller).

    Examples:
        >>> import pyarrow as pa
        >>> parts = [pa.record_batch({"x": list(range(n))}) for n in (3, 4, 2)]
        >>> [t.num_rows for t in rebatch(parts, 4)]
        [4, 4, 1]
    """
    import pyarrow as pa

    held: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_size - rows, batch.num_rows)
            held.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == batch_size:
                yield pa.Table.from_batches(held)
                held, rows = [], 0
    if rows:
        yield pa.Table.from_batches(held)


@dataclass
class Pack:
    """Whole groups for one actor, sent as one call: their keys and their rows."""

    actor: int
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    parts: list[pa.Table] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.sizes)


class GroupPacker:
    """Cut key-sorted Arrow batches into whole groups and pack them per actor.

    Feed the batches of one partition (rows with equal keys next to each other, a
    group may span batches) with `add`, then call `finish`. Each returned `Pack`
    holds whole groups of one actor, about ``batch_size`` rows at most (a larger group
    travels alone), so many small groups cost one call, not one call each.

    Examples:
        >>> import pyarrow as pa
        >>> packer = GroupPacker(["k"], n_actors=1, batch_size=3)
        >>> packs = packer.add(pa.record_batch({"k": ["a", "a", "b"]}))
        >>> packs += packer.add(pa.record_batch({"k": ["b", "c"]}))
        >>> packs += packer.finish()
        >>> [(p.keys, p.sizes) for p in packs]
        [([('a',)], [2]), ([('b',), ('c',)], [2, 1])]
    """

    def __init__(self, key_names: Sequence[str], *, n_actors: int, batch_size: int) -> None:
        self._key_names = list(key_names)
        self._n_actors = n_actors
        self._batch_size = batch_size
        self._open: dict[int, Pack] = {}
        # The group still being read: its key (canonical and plain) and its pieces.
        self._current: tuple[tuple[object, ...], tuple[Any, ...]] | None = None
        self._pieces: list[pa.Table] = []

    def _close_group(self) -> list[Pack]:
        import pyarrow as pa

        if self._current is None:
            return []
        _, key = self._current
        rows = pa.concat_tables(self._pieces) if len(self._pieces) > 1 else self._pieces[0]
        self._current, self._pieces = None, []
        actor = actor_for_key(key, self._n_actors)
        ready = []
        pack = self._open.get(actor)
        if pack is not None and pack.rows + rows.num_rows > self._batch_size:
            ready.append(self._open.pop(actor))
            pack = None
        if pack is None:
            pack = self._open[actor] = Pack(actor)
        pack.keys.append(key)
        pack.sizes.append(rows.num_rows)
        pack.parts.append(rows)
        if pack.rows >= self._batch_size:
            ready.append(self._open.pop(actor))
        return ready

    def add(self, batch: pa.RecordBatch | pa.Table) -> list[Pack]:
        """Take the next batch of the partition; return the packs it completed."""
        import pyarrow as pa

        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        ready: list[Pack] = []
        starts = group_starts(table, self._key_names)
        ends = [*starts[1:], table.num_rows]
        for start, end in zip(starts, ends, strict=True):
            key = key_at(table, self._key_names, start)
            canonical = canonical_key(key)
            if self._current is None or self._current[0] != canonical:
                ready += self._close_group()
                self._current = (canonical, key)
            self._pieces.append(table.slice(start, end - start))
        return ready

    def finish(self) -> list[Pack]:
        """Close the last group; return every pack still open."""
        ready = self._close_group()
        ready += [self._open.pop(actor) for actor in sorted(self._open)]
        return ready


def check_key_names(key_cols: object, columns: Sequence[str]) -> list[str]:
    """``key_cols`` as a list of column names of the DataFrame, or raise naming it."""
    names = [key_cols] if isinstance(key_cols, str) else key_cols
    if not isinstance(names, list | tuple) or not names:
        msg = (
            "'key_cols' must be a column name or a non-empty list of them, "
            f"got {describe(key_cols)}"
        )
        raise TypeError(msg)
    for name in names:
        if not isinstance(name, str):
            msg = f"'key_cols' must hold column names (str), got {describe(name)}"
            raise TypeError(msg)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        msg = f"'key_cols' names a column more than once: {', '.join(map(repr, repeated))}"
        raise ValueError(msg)
    missing = [n for n in names if n not in columns]
    if missing:
        msg = (
            f"'key_cols' names column(s) the DataFrame lacks: {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, columns))})"
        )
        raise ValueError(msg)
    return list(names)
