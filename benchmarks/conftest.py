"""Fixtures and hooks of the engine benchmarks: sizes, engines, progress, machine facts.

- Smoke mode (``--benchmark-disable``, as ``make test`` runs it, or
  ``RAP_BENCH_SMOKE=1``) picks the smallest sizes; the full run (``make bench``)
  the real ones. Tests parametrised on ``inputs`` or ``size_mb`` get the list of
  the current mode.
- Engines: ``spark`` is the SparkSession of the shared Ray-on-Spark cluster (the
  root ``conftest.py``'s ``ray_cluster``); ``dask_client`` a session-scoped Dask
  ``LocalCluster`` of two single-threaded worker processes on 127.0.0.1, closed
  at the end of the session.
- Progress: in a timed run every benchmark prints which workload and engine it
  runs and how many remain.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import benchmarks
from benchmarks import _engines, _harness, _workloads

HERE = Path(__file__).resolve().parent
_LOAD_AT_START = os.getloadavg()
_STARTED = time.monotonic()
_progress: dict[str, Any] = {"total": 0, "done": 0, "enabled": False}


def _ship_by_value() -> None:
    """Send this package's functions by value: engine workers cannot import ``benchmarks``."""
    import cloudpickle  # Dask's pickler
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(benchmarks)
    # Dask checks the exact module of each pickled object, not its package.
    cloudpickle.register_pickle_by_value(_workloads)
    try:
        import pyspark.cloudpickle
    except ImportError:  # no Spark installed: the Spark engines fail on their own
        return
    pyspark.cloudpickle.register_pickle_by_value(benchmarks)


_ship_by_value()


# --- sizes -----------------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    sizes = _harness.Sizes.for_mode(_harness.is_smoke(metafunc.config))
    if "inputs" in metafunc.fixturenames:
        metafunc.parametrize("inputs", sizes.sleep_inputs, ids=lambda n: f"{n}-inputs")
    if "size_mb" in metafunc.fixturenames:
        metafunc.parametrize("size_mb", sizes.model_mb, ids=lambda s: f"{s:g}MB")


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> _harness.Sizes:
    """The workload sizes of this run (smoke or full)."""
    return _harness.Sizes.for_mode(_harness.is_smoke(request.config))


# --- engines ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def spark(ray_cluster: dict) -> Any:
    """The SparkSession of the shared Ray-on-Spark cluster (its free executors run Spark jobs)."""
    launcher = ray_cluster.get("launcher")
    if launcher is None:
        pytest.fail(
            "this benchmark needs Spark, but RAP_TEST_RAY=local started Ray without Spark; "
            "run without RAP_TEST_RAY, or deselect the Spark engines with -m 'not spark'"
        )
    return launcher.spark


@pytest.fixture(scope="session")
def ray_ready(ray_cluster: dict) -> dict:
    """The shared Ray cluster, checked to offer the slots the ideal times assume."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    assert cpus >= 1, f"the Ray cluster offers no CPU to tasks: {ray.cluster_resources()}"
    return {**ray_cluster, "cpus": cpus}


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    """A Dask client on a LocalCluster of 2 single-threaded worker processes, closed after."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=_harness.SLOTS,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )
    try:
        client = Client(cluster)
        try:
            client.wait_for_workers(_harness.SLOTS, timeout=120)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def inference_batches(sizes: _harness.Sizes) -> list[Any]:
    """The input batches of workloads 3 and 5 (key column, then features)."""
    return _workloads.make_batches(sizes.batches, sizes.batch_rows)


@pytest.fixture(scope="session")
def inference_frame(spark: Any, inference_batches: list[Any]) -> Iterator[Any]:
    """The same batches as a cached Spark DataFrame, one partition per batch."""
    with _engines.spark_batches(spark, inference_batches) as frame:
        yield frame


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where models are saved for the engines that load them from storage."""
    return str(tmp_path_factory.mktemp("models"))


# --- progress and machine facts ----------------------------------------------------------------


def _is_benchmark(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def pytest_configure(config: pytest.Config) -> None:
    def write(line: str) -> None:
        # Looked up per line: the terminal reporter may register after this hook runs.
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if terminal is None:
            return
        # Inside a test, pytest captures file descriptor 1: step out of it to be seen.
        capture = config.pluginmanager.get_plugin("capturemanager")
        suspended = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
        with suspended:
            terminal.write_line(line, flush=True)

    _harness.set_progress_writer(write)
    smoke = _harness.is_smoke(config)
    _progress["enabled"] = not smoke or os.environ.get("RAP_BENCH_PROGRESS") == "1"


def pytest_collection_finish(session: pytest.Session) -> None:
    # After every deselection (-k, -m, --deselect): what will really run.
    _progress["total"] = sum(1 for item in session.items if _is_benchmark(item))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not (_progress["enabled"] and _is_benchmark(item)):
        return
    _progress["done"] += 1
    done, total = _progress["done"], _progress["total"]
    elapsed = time.monotonic() - _STARTED
    _harness.say(
        f"[bench {done}/{total}, {total - done} left, {elapsed / 60:.1f} min] "
        f"{item.nodeid.split('::', 1)[-1]}"
    )


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["rap"] = _harness.machine_facts(_LOAD_AT_START)
    machine_info["rap"]["sizes"] = _harness.sizes_record(
        _harness.Sizes.for_mode(_harness.is_smoke(config))
    )
