"""The result check: a pandas DataFrame from ``__call__`` made into Arrow of ``output_schema``.

The driver turns ``output_schema`` (Spark DDL or a ``StructType``) into a `Target`:
per column its name, its Arrow type and its Spark type name. The target travels to the
actors, which convert each result with it, so a wrong column fails on the actor, for
the batch that produced it, with the column, the expected type and what came instead.
Actors need pandas and pyarrow, not pyspark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patterns import _compat
from patterns._checks import describe
from patterns.spark_bridge._errors import BridgeSchemaError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Column", "Target", "parse_output_schema"]


@dataclass(frozen=True)
class Column:
    """One column of the output: its name, Arrow type, Spark type name, nullability."""

    name: str
    arrow_type: Any
    spark_type: str
    nullable: bool


@dataclass(frozen=True)
class Target:
    """What every result must hold: these columns, in any order, and no others."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(c.name, c.arrow_type, c.nullable) for c in self.columns])

    def empty(self) -> pa.Table:
        """A table with no rows and this schema."""
        return self.arrow_schema().empty_table()

    def conform(self, result: object, *, key: object, actor: int | None) -> pa.Table:
        """Return ``result`` as an Arrow table of this schema, or raise `BridgeSchemaError`.

        Args:
            result: What ``__call__`` returned (a pandas DataFrame is expected).
            key: The group key or batch description, for the error message.
            actor: The pool actor's index, for the error message.

        Raises:
            BridgeSchemaError: A column is missing or unexpected, or its values do not
                convert to the column's type (or hold nulls where none are allowed).
        """
        import pandas as pd
        import pyarrow as pa

        def mismatch(column: str | None, expected: str, got: str) -> BridgeSchemaError:
            return BridgeSchemaError.mismatch(
                key, actor=actor, column=column, expected=expected, got=got
            )

        if not isinstance(result, pd.DataFrame):
            raise mismatch(None, "a pandas.DataFrame", describe(result))
        present = [str(c) for c in result.columns]
        for column in self.columns:
            if column.name not in present:
                raise mismatch(
                    column.name,
                    f"present ({column.spark_type})",
                    f"no such column (the result has {', '.join(map(repr, present)) or 'none'})",
                )
        extra = [c for c in present if c not in self.names]
        if extra:
            raise mismatch(extra[0], "absent (output_schema has no such column)", "a column")
        arrays = []
        for column in self.columns:
            values = result[column.name]
            try:
                array = pa.array(values, type=column.arrow_type, from_pandas=True, safe=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                sample = next((v for v in values if not _is_null(v)), None)
                got = f"{values.dtype} values like {describe(sample)}"
                raise mismatch(column.name, column.spark_type, got) from None
            if not column.nullable and array.null_count:
                raise mismatch(
                    column.name, f"{column.spark_type} NOT NULL", f"{array.null_count} null(s)"
                )
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=self.arrow_schema())


def _is_null(value: object) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays, lists: not a scalar null
        return False


def parse_output_schema(output_schema: object) -> tuple[Any, Target]:
    """``output_schema`` as a Spark ``StructType`` and its `Target`, or raise naming it.

    Needs pyspark and an active SparkContext for DDL strings (Spark parses them).
    """
    from pyspark.sql.types import StructType

    if isinstance(output_schema, str):
        if not output_schema.strip():
            msg = "'output_schema' must be a non-empty DDL string or a StructType, got ''"
            raise ValueError(msg)
        try:
            struct = _compat.parse_ddl(output_schema)
        except Exception as exc:  # Spark's parse error names the position
            msg = f"'output_schema' is not a valid Spark DDL schema: {output_schema!r} ({exc})"
            raise ValueError(msg) from None
        if not isinstance(struct, StructType):
            msg = (
                f"'output_schema' must name columns (\"name type, ...\"), got the bare type "
                f"{output_schema!r}"
            )
            raise ValueError(msg)
    elif isinstance(output_schema, StructType):
        struct = output_schema
    else:
        msg = (
            "'output_schema' must be a Spark DDL string or a StructType, "
            f"got {describe(output_schema)}"
        )
        raise TypeError(msg)
    if not struct.fields:
        raise ValueError("'output_schema' must have at least one column, got none")
    columns = []
    for field in struct.fields:
        try:
            arrow_type = _compat.arrow_type(field.dataType)
        except Exception as exc:
            msg = f"'output_schema' column {field.name!r} has a type Arrow cannot carry: {exc}"
            raise TypeError(msg) from None
        spark_type = field.dataType.simpleString()
        columns.append(Column(field.name, arrow_type, spark_type, field.nullable))
    return struct, Target(tuple(columns))
