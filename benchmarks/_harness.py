"""What every engine benchmark shares: sizes, labels, machine facts, actor pools.

The test modules import from here (not from ``conftest.py``), and so does the
``make bench`` driver (:mod:`benchmarks.run`), which records the same machine
facts with the results.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

SLOTS = 2
"""Worker slots each engine gets under ``make bench``: 2 Spark executors, 2 Dask
workers, 2 Ray worker nodes, each with one core. Ideal times assume this many."""

RAY_GET_TIMEOUT_S = 600.0
"""Longest wait for any one Ray or Dask result: a stuck cluster fails, never hangs."""

_writer: Callable[[str], None] | None = None


def set_progress_writer(writer: Callable[[str], None] | None) -> None:
    """Where progress lines go (pytest's terminal, set by ``benchmarks/conftest.py``)."""
    global _writer
    _writer = writer


def say(line: str) -> None:
    """Show a progress line on the terminal, past pytest's output capture."""
    if _writer is not None:
        _writer(line)
    else:
        print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sizes:
    """Workload sizes: the full run (``make bench``) or smoke mode (``make test``).

    Attributes:
        smoke: True in smoke mode (``--benchmark-disable``): correctness only.
        rounds: Measured rounds per case (pytest-benchmark ``pedantic``).
        pause_s: Workload 1: seconds each input sleeps.
        sleep_inputs: Workload 1: input counts.
        cpu_inputs: Workload 2: inputs.
        cpu_numbers: Workload 2: Collatz numbers walked per input.
        model_mb: Workload 3: model sizes in MiB.
        batches: Workloads 3 and 5: batches (Spark partitions) per run.
        batch_rows: Workloads 3 and 5: rows per batch.
        cycles: Workload 4: predict/feedback/learn cycles.
        bridge_mb: Workload 5: model size in MiB.
        bridge_rows: Workload 5: rows per batch (Spark partition), enough that the
            model's work, not the engines' overheads, dominates.
    """

    smoke: bool
    rounds: int
    pause_s: float
    sleep_inputs: tuple[int, ...]
    cpu_inputs: int
    cpu_numbers: int
    model_mb: tuple[float, ...]
    batches: int
    batch_rows: int
    cycles: int
    bridge_mb: float
    bridge_rows: int

    @classmethod
    def for_mode(cls, smoke: bool) -> Sizes:
        """The sizes of smoke mode or of the full run."""
        if smoke:
            return cls(
                smoke=True,
                rounds=1,
                pause_s=0.05,
                sleep_inputs=(4,),
                cpu_inputs=4,
                cpu_numbers=2_000,
                model_mb=(1,),
                batches=2,
                batch_rows=200,
                cycles=2,
                bridge_mb=1,
                bridge_rows=200,
            )
        return cls(
            smoke=False,
            rounds=5,
            pause_s=1.0,
            sleep_inputs=(4, 16),
            cpu_inputs=8,
            cpu_numbers=90_000,
            model_mb=(1, 10, 100),
            batches=8,
            batch_rows=5_000,
            cycles=25,
            bridge_mb=10,
            bridge_rows=25_000,
        )


def is_smoke(config: Any) -> bool:
    """Smoke mode: pytest-benchmark disabled (as ``make test`` runs it) or RAP_BENCH_SMOKE=1."""
    if os.environ.get("RAP_BENCH_SMOKE") == "1":
        return True
    try:
        return bool(config.getoption("benchmark_disable"))
    except ValueError:  # pytest-benchmark not loaded: nothing is timed anyway
        return True


def label(
    benchmark: Any,
    workload: str,
    case: str,
    engine: str,
    **info: Any,
) -> None:
    """Name a benchmark for the report: its group is ``workload | case``.

    Args:
        benchmark: The pytest-benchmark fixture.
        workload: Workload id (``"sleep-double"``, ``"inference"``, ...).
        case: The size or variant within the workload (``"16 inputs"``).
        engine: Engine id (``"serial"``, ``"spark-udf"``, ``"ray-actor-pool"``, ...).
        **info: More facts for ``extra_info`` (``ideal_s``, ``setup_s``, ``slots``, ...).
    """
    benchmark.group = f"{workload} | {case}"
    benchmark.extra_info.update({"workload": workload, "case": case, "engine": engine, **info})


def measure(
    benchmark: Any,
    target: Callable[..., Any],
    *,
    rounds: int,
    warmup_rounds: int = 1,
    setup: Callable[[], Any] | None = None,
) -> Any:
    """Run ``target`` with ``benchmark.pedantic`` and note its median against the ideal.

    Returns:
        The result of the last call, for the caller to check.
    """
    result = benchmark.pedantic(
        target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1
    )
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:
        median = float(stats.median)
        benchmark.extra_info["median_s"] = round(median, 4)
        ideal = benchmark.extra_info.get("ideal_s")
        if ideal:
            benchmark.extra_info["ratio_to_ideal"] = round(median / ideal, 3)
        _say(benchmark, median)
    return result


def _say(benchmark: Any, median: float) -> None:
    info = benchmark.extra_info
    ideal = info.get("ratio_to_ideal")
    tail = f" ({ideal:.2f}x ideal)" if ideal else ""
    say(f"  [{benchmark.group}] {info.get('engine')}: median {median:.3f} s{tail}")


def sleep_ideal_s(inputs: int, pause_s: float, slots: int = SLOTS) -> float:
    """Workload 1's ideal: the inputs spread perfectly over the slots, no overhead."""
    return math.ceil(inputs / slots) * pause_s


@contextlib.contextmanager
def ray_actors(cls: type, *args: Any, count: int = SLOTS, **options: Any) -> Iterator[list[Any]]:
    """Start ``count`` Ray actors of ``cls``, one CPU each (so one per node); kill them after.

    Yields:
        The actor handles, each already constructed (its ``ready()`` answered).
    """
    import ray

    remote_cls = ray.remote(cls).options(num_cpus=1, max_restarts=0, **options)
    actors: list[Any] = []
    try:
        for _ in range(count):
            actors.append(remote_cls.remote(*args))
        ray.get([a.ready.remote() for a in actors], timeout=RAY_GET_TIMEOUT_S)
        yield actors
    finally:
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    """Measure a block's wall time into ``box["s"]`` (one-off costs such as setup)."""
    box: dict[str, float] = {}
    began = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - began


# --- machine facts recorded with the results ------------------------------------------------

_PACKAGES = [
    "ray",
    "pyspark",
    "dask",
    "distributed",
    "scikit-learn",
    "numpy",
    "pandas",
    "pyarrow",
    "pytest-benchmark",
    "matplotlib",
]


def _java_version() -> str:
    java = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin"))
    java = java or shutil.which("java")
    if java is None:
        return "not found"
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({type(error).__name__})"
    first = (out.stderr or out.stdout).strip().splitlines()
    return first[0] if first else "unknown"


def versions() -> dict[str, str]:
    """Versions of Python, Java and every engine and library the benchmarks use."""
    from importlib import metadata

    found = {"python": platform.python_version(), "java": _java_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine_facts(load_at_start: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """Cores, memory, load average and platform of this machine, with the versions.

    Args:
        load_at_start: ``os.getloadavg()`` taken when the run began (now if ``None``).
    """
    import psutil

    memory = psutil.virtual_memory()
    load = load_at_start or os.getloadavg()
    return {
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_total_gib": round(memory.total / 2**30, 1),
        "memory_available_gib": round(memory.available / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in load],
        "load_average_now": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "spark_executors_for_spark": int(os.environ.get("RAP_SPARK_EXECUTORS", "1")),
        "slots_per_engine": SLOTS,
        "versions": versions(),
    }


def sizes_record(sizes: Sizes) -> dict[str, Any]:
    """The sizes as a plain dict for the results file."""
    return asdict(sizes)
