"""Run every tutorial program in ``examples/`` on the shared test cluster.

Each example is a module with a ``main() -> None`` that expects a connected Ray
cluster and asserts what it shows. The runner imports the file and calls
``main()``; its ``if __name__ == "__main__":`` block (which starts a cluster of
its own) is not run here. ``tests/test_docs.py`` relies on :func:`example_files`
to prove that every file a tutorial page includes is run by this test.

An example that needs Spark sets ``REQUIRES_SPARK = True``: its test carries the
``spark`` marker and runs against the SparkSession of the Ray-on-Spark cluster.
``make test-fast`` (a plain local Ray, ``-m "not spark"``) deselects it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_files() -> list[Path]:
    """Every example program the runner executes (helpers start with ``_``)."""
    return sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def load_example(path: Path):
    """Import ``examples/<name>.py`` as the module ``examples.<name>``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(f"examples.{path.stem}")
    # Workers cannot import `examples`: send the example's functions and classes
    # by value, as they would be when the file runs as a script.
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(module)
    try:
        import pyspark.cloudpickle
    except ImportError:
        pass
    else:
        pyspark.cloudpickle.register_pickle_by_value(module)
    return module


def _active_spark():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def _needs_spark(path: Path) -> bool:
    return "REQUIRES_SPARK = True" in path.read_text(encoding="utf-8")


def _example_params() -> list:
    # An example that needs Spark carries the `spark` marker, so `make test-fast`
    # (-m "not spark") deselects it instead of counting a skip.
    return [
        pytest.param(path, id=path.name, marks=[pytest.mark.spark] if _needs_spark(path) else [])
        for path in example_files()
    ]


@pytest.mark.parametrize("path", _example_params())
def test_example_runs(path: Path, ray_cluster: dict) -> None:
    module = load_example(path)
    main = getattr(module, "main", None)
    assert callable(main), f"{path.name} has no main() for the examples runner to call"
    if getattr(module, "REQUIRES_SPARK", False) and _active_spark() is None:
        pytest.fail(f"{path.name} needs Spark, but the {ray_cluster['kind']} cluster has none")
    assert main() is None


def test_examples_exist() -> None:
    assert example_files(), "examples/ holds no example programs"
