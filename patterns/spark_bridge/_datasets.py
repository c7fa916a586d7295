"""Spark DataFrame <-> Ray Dataset through the object store: `to_ray_dataset`, `from_ray_dataset`.

``to_ray_dataset(df)``::

    Spark executors (mapInArrow, one task per partition)         Ray
     partition -> Arrow batches -> blocks of ~block_bytes  --->  BlockOwner actor of the node
     one summary row: (partition, attempt, blocks, rows)          (owns a copy of each block)
                    |                                                      |
    driver: collect() the summaries (Spark keeps one attempt per partition) |
            take the kept attempts' references, drop the rest  <------------'
            -> ray.data Dataset over those references (no data on the driver)

``from_ray_dataset(ds, spark)``::

    driver: ds.to_arrow_refs() (Ray Data runs ds), stage the references in a BlockOwner
            actor; spark.range(P).mapInArrow(fetch): task i asks the actor for its share
            of references, reads the blocks from the object store (Arrow, zero copy on
            the same node) and hands them to Spark; localCheckpoint() keeps the result
            in Spark, so later actions never need Ray.

References always travel inside Ray calls, never inside a pickled Spark closure: Ray
counts them, and nothing is pinned beyond its use.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray

from patterns._calls import DEFAULT, Default, get, resolve_timeout
from patterns._checks import check_int, check_name, check_positive_float, describe
from patterns.errors import CallTimeoutError, PatternError
from patterns.spark_bridge._blocks import Accepted
from patterns.spark_bridge._executor import AuthSettings, driver_auth, lease
from patterns.spark_bridge._owner import NAMESPACE, BlockOwner, default_owner
from patterns.spark_bridge._run import _job_group

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "BLOCK_BYTES",
    "TRANSFER_TIMEOUT_S",
    "from_ray_dataset",
    "to_ray_dataset",
]

BLOCK_BYTES = 32 * 1024 * 1024
"""Default block size of `to_ray_dataset`: Spark's Arrow batches are joined up to this."""

TRANSFER_TIMEOUT_S = 1800.0
"""Default budget of one transfer (its Spark job and every wait on Ray within it)."""

# The rows of a Spark batch handed back to Spark at once (`from_ray_dataset`).
SPARK_BATCH_ROWS = 65_536

# One row per Spark task of `to_ray_dataset`: what it sent, and where.
_SUMMARY = (
    "partition long, attempt long, shelf string, blocks long, rows long, bytes long, "
    "arrow_schema binary"
)


# --- schemas: Spark <-> Arrow, on PySpark 3.5 and 4 -------------------------------------------


def _arrow_type(data_type: Any) -> Any:
    """The Arrow type Spark uses for ``data_type`` (timestamps in UTC, as Spark stores them)."""
    from pyspark.sql.pandas.types import to_arrow_type

    if "timezone" in inspect.signature(to_arrow_type).parameters:  # PySpark 4
        return to_arrow_type(data_type, timezone="UTC")
    return to_arrow_type(data_type)  # PySpark 3.5: timestamps are UTC already


def _arrow_schema(struct: Any) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _arrow_type(f.dataType), f.nullable) for f in struct.fields])


def _plain_arrow_type(column: str, arrow_type: Any) -> Any:
    """``arrow_type`` with Arrow's large variants made plain (Spark reads the plain ones)."""
    import pyarrow as pa

    t = pa.types
    if isinstance(arrow_type, pa.ExtensionType):
        msg = (
            f"'ds' column {column!r} has the Arrow extension type {arrow_type} "
            "(a tensor?), which Spark cannot hold: convert it first, or pass 'schema'"
        )
        raise TypeError(msg)
    if t.is_large_string(arrow_type) or t.is_string_view(arrow_type):
        return pa.string()
    if t.is_large_binary(arrow_type) or t.is_binary_view(arrow_type):
        return pa.binary()
    if t.is_large_list(arrow_type) or t.is_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return pa.list_(_plain_arrow_type(column, arrow_type.value_type))
    if t.is_struct(arrow_type):
        return pa.struct(
            [pa.field(f.name, _plain_arrow_type(column, f.type), f.nullable) for f in arrow_type]
        )
    if t.is_map(arrow_type):
        return pa.map_(
            _plain_arrow_type(column, arrow_type.key_type),
            _plain_arrow_type(column, arrow_type.item_type),
        )
    return arrow_type


def spark_schema_of(arrow_schema: pa.Schema) -> Any:
    """The Spark ``StructType`` for a Dataset's Arrow schema, or TypeError naming the column."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    # Arrow timestamps without a zone are Spark's TIMESTAMP_NTZ (PySpark 4's default;
    # PySpark 3.5 would make them TIMESTAMP, shifting them by the session's zone).
    options = {}
    if "prefer_timestamp_ntz" in inspect.signature(from_arrow_type).parameters:
        options["prefer_timestamp_ntz"] = True
    fields = []
    for field in arrow_schema:
        plain = _plain_arrow_type(field.name, field.type)
        try:
            data_type = from_arrow_type(plain, **options)
        except Exception as exc:
            msg = (
                f"'ds' column {field.name!r} has the Arrow type {field.type}, which Spark "
                f"cannot hold ({exc}): pass 'schema'"
            )
            raise TypeError(msg) from None
        fields.append(StructField(field.name, data_type, field.nullable))
    return StructType(fields)


def _parse_schema(spark: Any, schema: object) -> Any:
    """``schema`` (DDL or StructType) as a StructType, or TypeError/ValueError naming it."""
    from pyspark.sql.types import StructType

    if isinstance(schema, StructType):
        struct = schema
    elif isinstance(schema, str):
        if not schema.strip():
            raise ValueError("'schema' must be a DDL string or a StructType, got ''")
        try:  # works on PySpark 3.5 and 4 (StructType.fromDDL is 4 only)
            struct = spark.createDataFrame([], schema).schema
        except Exception as exc:
            msg = f"'schema' is not a valid Spark DDL schema: {schema!r} ({_first_line(exc)})"
            raise ValueError(msg) from None
    else:
        msg = f"'schema' must be None, a DDL string or a StructType, got {describe(schema)}"
        raise TypeError(msg)
    if not struct.fields:
        raise ValueError("'schema' must have at least one column, got none")
    for field in struct.fields:
        try:
            _arrow_type(field.dataType)
        except Exception as exc:
            msg = f"'schema' column {field.name!r} has a type Arrow cannot carry: {exc}"
            raise TypeError(msg) from None
    return struct


def _check_columns(struct: Any, arrow_schema: pa.Schema) -> None:
    """Every column of ``struct`` is in the Dataset and converts to its type; else ValueError."""
    target = _arrow_schema(struct)
    names = arrow_schema.names
    missing = [f.name for f in target if f.name not in names]
    if missing:
        msg = (
            f"'schema' names columns the Dataset does not have: {', '.join(map(repr, missing))} "
            f"(it has {', '.join(map(repr, names))})"
        )
        raise ValueError(msg)
    empty = arrow_schema.empty_table()
    for field in target:
        column = empty.column(field.name)
        try:
            column.cast(field.type)
        except Exception:
            msg = (
                f"'schema' column {field.name!r} is {field.type}, and the Dataset's "
                f"{column.type} does not convert to it"
            )
            raise ValueError(msg) from None


def _conform(table: pa.Table, target: pa.Schema, where: str) -> pa.Table:
    """``table``'s columns of ``target``, cast to its types, or PatternError naming the column."""
    import pyarrow as pa

    arrays = []
    for field in target:
        if field.name not in table.column_names:
            raise PatternError(f"from_ray_dataset: {where} has no column {field.name!r}")
        column = table.column(field.name)
        try:
            column = column.cast(field.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            msg = (
                f"from_ray_dataset: {where}, column {field.name!r}: its {column.type} "
                f"values do not convert to {field.type} ({_first_line(exc)})"
            )
            raise PatternError(msg) from None
        if not field.nullable and column.null_count:
            msg = (
                f"from_ray_dataset: {where}, column {field.name!r} is NOT NULL in 'schema' "
                f"and holds {column.null_count} null(s)"
            )
            raise PatternError(msg)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=target)


# --- Spark jobs with a budget -------------------------------------------------------------------


def _first_line(exc: object) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


_PYTHON_ERROR = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception)): (.+)$")


def _spark_failure(exc: BaseException) -> str:
    """The Python error inside a Spark job's failure (the last one), else its first line."""
    found = None
    for line in str(exc).splitlines():
        match = _PYTHON_ERROR.match(line.strip())
        if match and not match.group(1).startswith(("org.", "java.", "py4j.")):
            found = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    text = found or _first_line(exc)
    return text if len(text) <= 500 else text[:497] + "..."


def _run_job(spark: Any, action: Callable[[], Any], *, label: str, budget: float | None) -> Any:
    """Run ``action`` (a Spark action) in a job group; cancel it when ``budget`` runs out.

    Raises:
        CallTimeoutError: The budget ran out (the job was cancelled).
        PatternError: The Spark job failed (the Python error inside it, when there is one).
    """
    group = f"spark-bridge-{uuid.uuid4().hex[:12]}"
    expired = threading.Event()

    def cancel() -> None:
        expired.set()
        spark.sparkContext.cancelJobGroup(group)

    timer = None
    if budget is not None:
        timer = threading.Timer(budget, cancel)
        timer.daemon = True
    with _job_group(spark, group, label):
        if timer is not None:
            timer.start()
        try:
            return action()
        except Exception as exc:
            if expired.is_set():
                msg = f"{label}: the transfer did not finish within {budget:g} s; it was cancelled"
                raise CallTimeoutError(msg) from exc
            raise PatternError(f"{label}: the Spark job failed: {_spark_failure(exc)}") from exc
        finally:
            if timer is not None:
                timer.cancel()


# --- to_ray_dataset -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportPlan:
    """What a Spark task of `to_ray_dataset` needs (it travels inside the Spark job)."""

    transfer: str
    shelves: dict[str, str]  # Ray node id -> the owner's actor there
    address: str
    auth: AuthSettings
    idle_s: float
    block_bytes: int
    max_in_flight: int
    timeout_s: float | None

    def shelf_for(self, node: str, partition: int) -> str:
        """The actor on ``node``; for a node without one (it joined since), one by partition."""
        name = self.shelves.get(node)
        if name is not None:
            return name
        names = sorted(self.shelves.values())
        return names[partition % len(names)]


def export_partition(plan: ExportPlan, batches: Iterator[pa.RecordBatch]) -> Iterator[Any]:
    """The ``mapInArrow`` function of `to_ray_dataset`: deliver one partition, yield a summary."""
    import pyarrow as pa
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    attempt = context.taskAttemptId() if context is not None else 0
    with lease(plan.address, plan.auth, plan.idle_s):
        name = plan.shelf_for(ray.get_runtime_context().get_node_id(), partition)
        try:
            shelf = ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            msg = f"to_ray_dataset: the BlockOwner actor {name!r} is gone (owner closed?)"
            raise PatternError(msg) from None
        who = f"BlockOwner actor {name!r}"
        pending: deque[Any] = deque()
        held: list[pa.RecordBatch] = []
        held_bytes = blocks = rows = sent_bytes = 0
        schema = None

        def deliver() -> None:
            nonlocal held_bytes, blocks, rows, sent_bytes
            table = pa.Table.from_batches(held)
            pending.append(
                shelf.deliver.remote(
                    plan.transfer, partition, attempt, blocks, table,
                    rows=table.num_rows, sender=os.getpid(),
                )
            )  # fmt: skip
            blocks += 1
            rows += table.num_rows
            sent_bytes += held_bytes
            held.clear()
            held_bytes = 0
            while len(pending) >= plan.max_in_flight:  # back-pressure: a few blocks out
                get(pending.popleft(), timeout=plan.timeout_s, who=who, method="deliver")

        for batch in batches:
            if schema is None:
                schema = batch.schema
            if batch.num_rows == 0:
                continue
            held.append(batch)
            held_bytes += batch.nbytes
            if held_bytes >= plan.block_bytes:
                deliver()
        if held:
            deliver()
        while pending:  # every block is owned by the shelf before Spark sees this task done
            get(pending.popleft(), timeout=plan.timeout_s, who=who, method="deliver")
    summary = {
        "partition": pa.array([partition], pa.int64()),
        "attempt": pa.array([attempt], pa.int64()),
        "shelf": pa.array([name], pa.string()),
        "blocks": pa.array([blocks], pa.int64()),
        "rows": pa.array([rows], pa.int64()),
        "bytes": pa.array([sent_bytes], pa.int64()),
        "arrow_schema": pa.array(
            [None if schema is None else schema.serialize().to_pybytes()], pa.binary()
        ),
    }
    yield pa.RecordBatch.from_pydict(summary)


def _dataset(blocks: list[dict[str, Any]], schema: pa.Schema) -> Any:
    """A Dataset over these blocks, with the metadata the owner computed (no Ray tasks)."""
    refs = [b["ref"] for b in blocks]
    metadata = [b["metadata"] for b in blocks]
    if not refs:
        return ray.data.from_arrow(schema.empty_table())
    try:
        from ray.data._internal.logical.interfaces import LogicalPlan
        from ray.data._internal.logical.operators.from_operators import FromArrow
        from ray.data._internal.stats import DatasetStats
        from ray.data.context import DataContext
        from ray.data.dataset import MaterializedDataset
    except ImportError:  # another Ray: its public call (a small Ray task per block)
        return ray.data.from_arrow_refs(refs)
    if any(m is None for m in metadata):
        return ray.data.from_arrow_refs(refs)
    # What ray.data.from_arrow_refs builds, with metadata the shelves computed already.
    stats = DatasetStats(metadata={"FromArrow": metadata}, parent=None)
    context = DataContext.get_current().copy()
    plan = LogicalPlan(FromArrow(refs, metadata), context)
    return MaterializedDataset(plan, context, stats)


def _accepted(rows: list[Any]) -> tuple[dict[str, list[Accepted]], pa.Schema | None, int]:
    """The summaries Spark kept, one per partition: accepted attempts by actor; schema; rows."""
    import pyarrow as pa

    seen: set[int] = set()
    by_shelf: dict[str, list[Accepted]] = {}
    schema = None
    total = 0
    for row in rows:
        if row.partition in seen:
            msg = f"to_ray_dataset: Spark returned partition {row.partition} twice"
            raise PatternError(msg)
        seen.add(row.partition)
        by_shelf.setdefault(row.shelf, []).append(Accepted(row.partition, row.attempt, row.blocks))
        total += row.rows
        if schema is None and row.arrow_schema is not None:
            schema = pa.ipc.read_schema(pa.py_buffer(bytes(row.arrow_schema)))
    return by_shelf, schema, total


def to_ray_dataset(
    df: Any,
    *,
    owner: BlockOwner | None = None,
    block_bytes: int = BLOCK_BYTES,
    max_in_flight: int = 2,
    ray_address: str | None = None,
    executor_idle_s: float = 10.0,
    timeout: float | Default | None = DEFAULT,
) -> Any:
    """A Ray Dataset with the rows of a Spark DataFrame, sent by the executors, not the driver.

    One Spark job runs ``df``: each task joins its partition's Arrow batches into blocks of
    about ``block_bytes`` and hands each to the `BlockOwner` actor on its own Ray node,
    which keeps a copy in the object store. The driver then builds the Dataset from the
    blocks' references, in partition order; no row passes through the driver.

    Exactly the rows once: a Spark task that is retried (its executor or Python worker
    died, or it failed) or run twice (speculation) sends its partition again, and only
    the attempt whose result Spark kept is in the Dataset; the other attempts' blocks
    are freed. The Arrow schema is Spark's own (``mapInArrow``'s), nulls included;
    timestamps arrive as UTC instants.

    Memory: the blocks live in Ray's object store (spilled to disk when it is full,
    like any Ray object) until no Dataset refers to them any more, and at most as long
    as their owner (see `BlockOwner`): by default a per-driver owner that lives while
    this process is connected to Ray.

    Args:
        df: The Spark DataFrame.
        owner: The `BlockOwner` whose actors keep the blocks; default: this driver's own,
            started on first use.
        block_bytes: Target size of a block: Spark's Arrow batches are joined until they
            reach it (a partition's last block is smaller).
        max_in_flight: Blocks each Spark task may have on their way to Ray at once.
        ray_address: Where Spark's Python workers find Ray; default the GCS address this
            driver is connected to.
        executor_idle_s: A Spark Python worker leaves the Ray cluster after this many
            seconds without bridge work.
        timeout: The budget of the whole transfer in seconds (``DEFAULT``: 1800 s; None:
            no bound): the Spark job is cancelled and the blocks freed when it runs out.

    Returns:
        A materialised ``ray.data.Dataset`` (its blocks are already in the object store).

    Raises:
        TypeError: ``df`` is not a DataFrame, or another argument has the wrong type.
        ValueError: An argument is out of range.
        RuntimeError: Ray is not connected in this process.
        FacadeClosedError: ``owner`` is closed.
        CallTimeoutError: The transfer did not finish within ``timeout``.
        PatternError: The Spark job failed (the Python error inside it is in the message).

    Examples:
        >>> ds = to_ray_dataset(spark.range(1_000))  # doctest: +SKIP
        >>> ds.count(), ds.sum("id")  # doctest: +SKIP
        (1000, 499500)
    """
    from patterns.spark_bridge import _check_dataframe, _check_ray_connected

    df = _check_dataframe(df)
    if owner is not None and not isinstance(owner, BlockOwner):
        msg = f"'owner' must be a BlockOwner or None, got {describe(owner)}"
        raise TypeError(msg)
    size = check_int("block_bytes", block_bytes, minimum=1)
    in_flight = check_int("max_in_flight", max_in_flight, minimum=1)
    address = None if ray_address is None else check_name("ray_address", ray_address)
    idle = check_positive_float("executor_idle_s", executor_idle_s)
    budget = resolve_timeout(timeout, TRANSFER_TIMEOUT_S)
    if owner is not None:
        owner._check_open()
    _check_ray_connected()

    deadline = None if budget is None else time.monotonic() + budget
    if owner is None:
        owner = default_owner(timeout=budget)
    else:
        owner._cover_nodes(_left(deadline))  # nodes that joined since it started
    transfer = f"to-ray-{uuid.uuid4().hex[:12]}"
    plan = ExportPlan(
        transfer=transfer,
        shelves=owner._shelf_names(),
        address=address or ray.get_runtime_context().gcs_address,
        auth=driver_auth(),
        idle_s=idle,
        block_bytes=size,
        max_in_flight=in_flight,
        timeout_s=budget,
    )
    summaries = df.mapInArrow(functools.partial(export_partition, plan), _SUMMARY)
    try:
        rows = _run_job(
            df.sparkSession, summaries.collect, label="to_ray_dataset", budget=_left(deadline)
        )
        accepted, schema, total = _accepted(rows)
        kept = owner._take(transfer, accepted, timeout=_left(deadline))
    except BaseException:
        owner._drop(transfer, timeout=_left(deadline) or 10.0)
        raise
    blocks = [block for partition in sorted(kept) for block in kept[partition]]
    if schema is None:  # no partition had a batch: the schema from Spark's
        schema = _arrow_schema(df.schema)
    got = sum(b["rows"] for b in blocks)
    if got != total:  # the shelves and Spark disagree: never hand out a wrong Dataset
        msg = f"to_ray_dataset: Spark sent {total} rows but the blocks hold {got}"
        raise PatternError(msg)
    return _dataset(blocks, schema)


def _left(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (at least a moment), or None for no bound."""
    if deadline is None:
        return None
    return max(0.1, deadline - time.monotonic())


# --- from_ray_dataset ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportPlan:
    """What a Spark task of `from_ray_dataset` needs (it travels inside the Spark job)."""

    transfer: str
    relay: str  # the owner's actor holding the staged references
    bounds: tuple[tuple[int, int], ...]  # per Spark partition: its blocks start:stop
    target: Any  # the Arrow schema Spark expects
    address: str
    auth: AuthSettings
    idle_s: float
    timeout_s: float | None


def import_partition(plan: ImportPlan, rows: Iterator[Any]) -> Iterator[Any]:
    """The ``mapInArrow`` function of `from_ray_dataset`: this task's blocks, as Arrow batches."""
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    start, stop = plan.bounds[partition]
    for _ in rows:  # read the input to its end, or Spark does not reuse this Python worker
        pass
    with lease(plan.address, plan.auth, plan.idle_s):
        try:
            relay = ray.get_actor(plan.relay, namespace=NAMESPACE)
        except ValueError:
            msg = f"from_ray_dataset: the BlockOwner actor {plan.relay!r} is gone"
            raise PatternError(msg) from None
        who = f"BlockOwner actor {plan.relay!r}"
        refs = get(
            relay.staged.remote(plan.transfer, start, stop),
            timeout=plan.timeout_s,
            who=who,
            method="staged",
        )
        for number, ref in zip(range(start, stop), refs, strict=True):
            table = get(ref, timeout=plan.timeout_s, who="the object store", method="get")
            table = _conform(table, plan.target, f"block {number}")
            yield from table.to_batches(max_chunksize=SPARK_BATCH_ROWS)
            del table


def _dataset_arrow_schema(ds: Any, refs: list[Any], timeout: float | None) -> pa.Schema | None:
    """The Dataset's Arrow schema: Ray Data's, or (pandas blocks) a converted block's."""
    import pyarrow as pa

    schema = ds.schema()
    base = getattr(schema, "base_schema", schema)
    if isinstance(base, pa.Schema):
        return base
    if not refs:
        return None
    of_block = ray.remote(num_cpus=0)(_schema_of)
    found: pa.Schema = get(
        of_block.remote(refs[0]), timeout=timeout, who="a Ray task", method="schema"
    )
    return found


def _schema_of(table: pa.Table) -> pa.Schema:
    return table.schema


def from_ray_dataset(
    ds: Any,
    spark: Any,
    *,
    schema: Any = None,
    num_partitions: int | None = None,
    ray_address: str | None = None,
    executor_idle_s: float = 10.0,
    timeout: float | Default | None = DEFAULT,
) -> Any:
    """A Spark DataFrame with the rows of a Ray Dataset, read by the executors, not the driver.

    The Dataset is executed (``to_arrow_refs``; a materialised one is used as it is),
    and one Spark job reads its blocks: each task fetches a run of blocks straight
    from the object store and hands them to Spark as Arrow, in the Dataset's order.
    The result is materialised in Spark (``localCheckpoint``) before this returns, so
    later actions on it never need Ray, and the Dataset may be dropped.

    Args:
        ds: The Ray Dataset.
        spark: The SparkSession to make the DataFrame in.
        schema: The result's columns and types, a Spark DDL string or a ``StructType``;
            the Dataset's columns of those names are cast to them. None: the Dataset's
            own schema (Arrow's large strings and lists become Spark's plain ones).
        num_partitions: Spark partitions of the result (each a run of whole blocks);
            default as many as the blocks, at most Spark's default parallelism.
        ray_address: Where Spark's Python workers find Ray; default the GCS address this
            driver is connected to.
        executor_idle_s: A Spark Python worker leaves the Ray cluster after this many
            seconds without bridge work.
        timeout: The budget of the transfer in seconds (``DEFAULT``: 1800 s; None: no
            bound), its Spark job included; the time Ray Data takes to run a lazy ``ds``
            is Ray Data's own and not counted.

    Returns:
        A Spark DataFrame, already computed.

    Raises:
        TypeError: ``ds`` is not a Dataset, ``spark`` not a SparkSession, ``schema`` not a
            DDL string or StructType, or a Dataset column has a type Spark cannot hold.
        ValueError: ``schema`` is not valid DDL, names columns the Dataset lacks, or the
            Dataset is empty and has no schema to infer; ``num_partitions`` < 1.
        RuntimeError: Ray is not connected in this process.
        CallTimeoutError: The transfer did not finish within ``timeout``.
        PatternError: The Spark job failed (a value that does not convert to ``schema``
            names its column and block).

    Examples:
        >>> ds = ray.data.range(1_000).map_batches(lambda b: {"sq": b["id"] ** 2})  # doctest: +SKIP
        >>> from_ray_dataset(ds, spark).agg({"sq": "max"}).first()[0]  # doctest: +SKIP
        998001
    """
    from pyspark.sql import SparkSession

    from patterns.spark_bridge import _check_ray_connected

    if not isinstance(ds, ray.data.Dataset):
        msg = f"'ds' must be a ray.data.Dataset, got {describe(ds)}"
        raise TypeError(msg)
    if not isinstance(spark, SparkSession):
        msg = f"'spark' must be a pyspark.sql.SparkSession, got {describe(spark)}"
        raise TypeError(msg)
    struct = None if schema is None else _parse_schema(spark, schema)
    partitions = None
    if num_partitions is not None:
        partitions = check_int("num_partitions", num_partitions, minimum=1)
    address = None if ray_address is None else check_name("ray_address", ray_address)
    idle = check_positive_float("executor_idle_s", executor_idle_s)
    budget = resolve_timeout(timeout, TRANSFER_TIMEOUT_S)
    _check_ray_connected()
    import pyarrow as pa

    known = ds.schema(fetch_if_missing=False)
    known_base = getattr(known, "base_schema", known)
    if struct is not None and isinstance(known_base, pa.Schema):
        _check_columns(struct, known_base)  # before the Dataset runs

    refs = ds.to_arrow_refs()  # Ray Data runs the Dataset (if it has not run yet)
    deadline = None if budget is None else time.monotonic() + budget
    if struct is None:
        arrow = _dataset_arrow_schema(ds, refs, _left(deadline))
        if arrow is None:
            msg = "'schema' must be given: the Dataset is empty and has no schema to infer"
            raise ValueError(msg)
        struct = spark_schema_of(arrow)
    elif not isinstance(known_base, pa.Schema):
        arrow = _dataset_arrow_schema(ds, refs, _left(deadline))
        if arrow is not None:
            _check_columns(struct, arrow)
    if not refs:
        return spark.createDataFrame([], struct)

    owner = default_owner(timeout=_left(deadline))
    relay = owner._relay()
    transfer = f"from-ray-{uuid.uuid4().hex[:12]}"
    count = len(refs)
    tasks = partitions or min(count, max(1, spark.sparkContext.defaultParallelism))
    bounds = tuple((i * count // tasks, (i + 1) * count // tasks) for i in range(tasks))
    plan = ImportPlan(
        transfer=transfer,
        relay=owner._name_of(relay),
        bounds=bounds,
        target=_arrow_schema(struct),
        address=address or ray.get_runtime_context().gcs_address,
        auth=driver_auth(),
        idle_s=idle,
        timeout_s=budget,
    )
    who = f"BlockOwner actor {plan.relay!r}"
    get(relay.stage.remote(transfer, refs), timeout=_left(deadline), who=who, method="stage")
    try:
        frame = spark.range(0, tasks, 1, tasks).mapInArrow(
            functools.partial(import_partition, plan), struct
        )
        return _run_job(
            spark,
            lambda: frame.localCheckpoint(eager=True),
            label="from_ray_dataset",
            budget=_left(deadline),
        )
    finally:
        try:
            get(relay.unstage.remote(transfer), timeout=10.0, who=who, method="unstage")
        except Exception:  # the actor is gone: so are its staged references
            pass
