"""What differs between the PySpark lines the project supports (3.5 and 4.x), in one place.

Each function does the Spark 4 call where it exists and the PySpark 3.5 equivalent
where it does not, decided by what the installed PySpark offers (not by its version
string), so a call site stays one line. Nothing here imports pyspark at module level.
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["arrow_type", "collect_as_arrow", "create_dataframe_from_arrow", "parse_ddl"]


def parse_ddl(ddl: str) -> Any:
    """Spark's parse of a DDL string (``"a long, b string"`` or a bare type).

    ``DataType.fromDDL`` is PySpark 4 only; 3.5 has ``_parse_datatype_string``, which
    parses with the active SparkContext's JVM as ``fromDDL`` does.
    """
    from pyspark.sql.types import DataType

    from_ddl = getattr(DataType, "fromDDL", None)
    if from_ddl is not None:
        return from_ddl(ddl)
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(ddl)


def collect_as_arrow(df: Any) -> Any:
    """The DataFrame's rows on the driver as one ``pyarrow.Table`` (a Spark job).

    ``DataFrame.toArrow()`` is PySpark 4 only; 3.5 has the private
    ``_collect_as_arrow()`` (the same Arrow collect ``toPandas`` uses), whose batches
    are made into a table of the DataFrame's Arrow schema here.
    """
    to_arrow = getattr(df, "toArrow", None)
    if to_arrow is not None:
        return to_arrow()
    import pyarrow as pa

    batches = df._collect_as_arrow()
    schema = pa.schema([pa.field(f.name, arrow_type(f.dataType), f.nullable) for f in df.schema])
    if not batches:
        return schema.empty_table()
    return pa.Table.from_batches(batches).cast(schema)


def create_dataframe_from_arrow(spark: Any, table: Any, schema: Any) -> Any:
    """A Spark DataFrame of ``schema`` from a ``pyarrow.Table``.

    PySpark 4 takes the Arrow table itself; 3.5's ``createDataFrame`` does not know
    Arrow tables, so it gets the table as pandas (its Arrow path for pandas input).
    """
    if _pyspark_major() >= 4:
        return spark.createDataFrame(table, schema=schema)
    return spark.createDataFrame(table.to_pandas(), schema=schema)


def arrow_type(data_type: Any) -> Any:
    """The Arrow type Spark uses for ``data_type`` (timestamps in UTC, as Spark stores them).

    PySpark 4's ``to_arrow_type`` needs a timezone for a timestamp (without one it
    raises); 3.5's takes none and gives UTC timestamps.
    """
    from pyspark.sql.pandas.types import to_arrow_type

    if "timezone" in inspect.signature(to_arrow_type).parameters:
        return to_arrow_type(data_type, timezone="UTC")
    return to_arrow_type(data_type)


def _pyspark_major() -> int:
    import pyspark

    return int(pyspark.__version__.split(".")[0])
