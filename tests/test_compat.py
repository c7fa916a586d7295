"""What differs between PySpark 3.5 and 4.x and between Ray versions, checked on the installed ones.

The main suite runs these on the locked versions (PySpark 4, Ray 2.60); `make test-compat`
runs them again on the lowest supported ones (requirements/compat.txt). The Spark-side
fallbacks (DDL parsing, the driver collect, createDataFrame) run for real in the Spark
bridge's tests, which `make test-compat` also runs on PySpark 3.5.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from launcher import _versions

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None, reason="needs the spark extra"
)


def test_a_timestamp_column_maps_to_utc_arrow_timestamps() -> None:
    # PySpark 4's to_arrow_type raises for a timestamp without a timezone: every
    # output_schema with a timestamp column was refused before.
    import pyarrow as pa
    from pyspark.sql.types import (
        LongType,
        StructField,
        StructType,
        TimestampNTZType,
        TimestampType,
    )

    from patterns.spark_bridge._schema import parse_output_schema

    struct = StructType(
        [
            StructField("ts", TimestampType()),
            StructField("local", TimestampNTZType()),
            StructField("n", LongType(), nullable=False),
        ]
    )
    parsed, target = parse_output_schema(struct)
    assert parsed is struct
    types = {c.name: c.arrow_type for c in target.columns}
    assert types == {
        "ts": pa.timestamp("us", tz="UTC"),
        "local": pa.timestamp("us"),
        "n": pa.int64(),
    }
    assert target.columns[2].nullable is False


def test_a_timestamp_result_conforms_to_its_target() -> None:
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql.types import StructField, StructType, TimestampType

    from patterns.spark_bridge._schema import parse_output_schema

    _, target = parse_output_schema(StructType([StructField("ts", TimestampType())]))
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01T00:00:00Z", None], utc=True)})
    table = target.conform(frame, key="k", actor=0)
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("ts").null_count == 1


def test_token_auth_is_there_exactly_when_the_ray_has_its_loader() -> None:
    import ray

    version = _versions.ray_version()
    assert _versions.has_token_auth() == (version >= _versions.TOKEN_AUTH_MIN_RAY), ray.__version__


def _in_a_fresh_process(code: str, **env: str) -> None:
    """Run ``code`` in a new interpreter: refreshing Ray's auth config in the test process
    would change how it talks to the session's cluster (it ended the whole run once)."""
    import subprocess
    import sys
    import textwrap

    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in {**os.environ, **env}.items() if k != "RAY_AUTH_TOKEN"},
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_token_auth_on_this_ray_works_or_refuses_naming_the_ray_it_needs() -> None:
    # The launcher sets RAY_AUTH_MODE=token and then refreshes Ray's auth config: on a
    # Ray without token auth that refresh must refuse, never leave an open cluster.
    _in_a_fresh_process(
        """
        import os, re
        from launcher import _internals, _versions
        if _versions.has_token_auth():
            _versions.require_token_auth()
            _internals.refresh_ray_auth_config()
        else:
            try:
                _internals.refresh_ray_auth_config()
            except _versions.UnsupportedRayError as exc:
                assert re.search(r"needs Ray >= 2\\.52", str(exc)), exc
            else:
                raise AssertionError("token auth on a Ray without it did not refuse")
        assert os.environ["RAY_AUTH_MODE"] == "token"
        """,
        RAY_AUTH_MODE="token",
    )


def test_disabled_auth_never_needs_token_support() -> None:
    _in_a_fresh_process(
        """
        from launcher import _internals
        _internals.refresh_ray_auth_config()  # on every Ray in the range: no error
        """,
        RAY_AUTH_MODE="disabled",
    )


def test_the_installed_versions_are_in_the_declared_ranges() -> None:
    import pyspark
    import ray

    assert (2, 52) <= _versions.ray_version() < (2, 61), ray.__version__
    assert pyspark.__version__.startswith(("3.5.", "4.")), pyspark.__version__
