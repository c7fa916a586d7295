"""Actor-tree benchmarks: tree aggregation, recovery after a SIGKILL or a hang, nested tasks.

- ``tree_reduce`` against ``ray.get`` of every leaf then a local sum, for leaves of
  1 MiB produced by tasks on the worker nodes, with the floor: one memcpy of the same
  bytes in the driver (from a 64 MiB ring, larger than the caches).
- From SIGKILL to the child answering again with its state restored: a supervisor
  (detection by health check, restart, ``restore``) against Ray's own restart
  (``max_restarts=-1``: a `Counter` with a store, restoring in ``__init__``).
- From a hang to the replaced child answering (Ray alone never notices a hang).
- Nested recursion: processes and time of a naive recursion (one task per half, all
  the way down, blocking ``ray.get`` in each) against ``divide_and_conquer``.

Ratios go to ``benchmark.extra_info`` and are printed. Nothing asserts on speed; every
round checks its result. With ``--benchmark-disable`` (smoke mode) every case runs once
on tiny sizes.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from benchmarks import _harness
from patterns import ChildSpec, Counter, DirectoryStore, Supervisor, divide_and_conquer, tree_reduce

TIMEOUT = 600.0
LEAF_MB = 1
FULL_LEAVES = [64, 128, 256, 512, 1024]
SMOKE_LEAVES = [8]
FULL_DEPTHS = [2, 3, 4]
SMOKE_DEPTHS = [1]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    smoke = _harness.is_smoke(metafunc.config)
    if "leaves" in metafunc.fixturenames:
        values = SMOKE_LEAVES if smoke else FULL_LEAVES
        metafunc.parametrize("leaves", values, ids=lambda n: f"{n}-leaves")
    if "depth" in metafunc.fixturenames:
        metafunc.parametrize("depth", SMOKE_DEPTHS if smoke else FULL_DEPTHS, ids="depth-{}".format)


def _smoke(benchmark: Any) -> bool:
    return bool(getattr(benchmark, "disabled", False))


def _report(benchmark: Any, title: str, **figures: float) -> None:
    benchmark.extra_info.update({k: round(v, 4) for k, v in figures.items()})
    shown = ", ".join(f"{k}={v:,.3f}" for k, v in figures.items())
    print(f"\n[{title}] {shown}")


# --- tree_reduce vs flat ------------------------------------------------------------------


@ray.remote
def _leaf(i: int, floats: int) -> np.ndarray:
    return np.full(floats, float(i % 97))


def _add(arrays: list[np.ndarray]) -> np.ndarray:
    total = arrays[0].copy()
    for a in arrays[1:]:
        total += a
    return total


def _flat(refs: list[Any]) -> np.ndarray:
    arrays = ray.get(refs, timeout=TIMEOUT)  # every leaf comes to the driver
    return _add(arrays)


class _Floor:
    """memcpy of ``leaves`` MiB into one 1 MiB buffer, from a ring larger than the caches."""

    def __init__(self, floats: int) -> None:
        ring_leaves = max(1, 64 // LEAF_MB)
        self.ring = [np.random.default_rng(i).random(floats) for i in range(ring_leaves)]
        self.dst = np.empty(floats)

    def __call__(self, leaves: int) -> int:
        for i in range(leaves):
            np.copyto(self.dst, self.ring[i % len(self.ring)])
        return leaves


def test_bench_tree_reduce_vs_flat(benchmark: Any, ray_cluster: dict, leaves: int) -> None:
    smoke = _smoke(benchmark)
    floats = 128 if smoke else LEAF_MB * 1024 * 1024 // 8
    expected = np.full(floats, float(sum(i % 97 for i in range(leaves))))

    def fresh() -> list[Any]:
        """New leaves, on the worker nodes: none has been fetched to the driver yet."""
        refs = [_leaf.remote(i, floats) for i in range(leaves)]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=TIMEOUT, fetch_local=False)
        assert len(ready) == leaves, "the leaves were not produced in time"
        return refs

    floor = _Floor(floats)
    cases: dict[str, Callable[[list[Any]], Any]] = {
        "flat": _flat,
        "tree_fan_in_4": lambda refs: tree_reduce(refs, _add, fan_in=4, budget_s=TIMEOUT),
        "tree_fan_in_16": lambda refs: tree_reduce(refs, _add, fan_in=16, budget_s=TIMEOUT),
    }
    benchmark.group = "trees: tree_reduce vs ray.get + sum, 1 MiB leaves"
    result = benchmark.pedantic(
        cases["tree_fan_in_16"],
        setup=lambda: ((fresh(),), {}),
        rounds=1 if smoke else 3,
        warmup_rounds=0,
    )
    np.testing.assert_array_equal(result, expected)

    # Interleaved blocks (A, B, C, A, B, C, ...): a busy neighbour slows all alike. Each
    # case gets leaves of its own, so none finds them already copied to the driver.
    samples: dict[str, list[float]] = {name: [] for name in [*cases, "memcpy_floor"]}
    for _ in range(1 if smoke else 3):
        for name, run in cases.items():
            refs = fresh()
            start = time.perf_counter()
            np.testing.assert_array_equal(run(refs), expected)
            samples[name].append(time.perf_counter() - start)
            del refs  # frees the leaves (and the driver's copies) before the next case
        start = time.perf_counter()
        assert floor(leaves) == leaves
        samples["memcpy_floor"].append(time.perf_counter() - start)
    ms = {name: statistics.median(values) * 1e3 for name, values in samples.items()}
    best_tree = min(ms["tree_fan_in_4"], ms["tree_fan_in_16"])
    _report(
        benchmark,
        f"tree_reduce, {leaves} leaves of {floats * 8 / 2**20:g} MiB",
        flat_ms=ms["flat"],
        tree_fan_in_4_ms=ms["tree_fan_in_4"],
        tree_fan_in_16_ms=ms["tree_fan_in_16"],
        memcpy_floor_ms=ms["memcpy_floor"],
        tree_speedup_x=ms["flat"] / best_tree,
        flat_over_floor_x=ms["flat"] / ms["memcpy_floor"],
        tree_over_floor_x=best_tree / ms["memcpy_floor"],
    )


# --- recovery: supervisor vs Ray's restart ----------------------------------------------


class Ledger:
    """A child with state: restored by its supervisor from the newest snapshot."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, n: int) -> int:
        self.total += n
        return self.total

    def snapshot(self) -> int:
        return self.total

    def restore(self, state: int) -> None:
        self.total = state

    def pid(self) -> int:
        return os.getpid()

    def hang(self) -> None:
        time.sleep(3600)


@pytest.fixture(scope="module")
def supervised(ray_cluster: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisor]:
    # Ledger travels by value: benchmarks/conftest.py registers this package for it.
    with Supervisor(
        [ChildSpec("ledger", Ledger)],
        health_check_interval_s=0.5,
        max_restarts=100,
        within_s=1.0,
        store=DirectoryStore(tmp_path_factory.mktemp("bench-trees-store")),
        timeout=TIMEOUT,
    ) as sup:
        yield sup


def _answering(sup: Supervisor, old_pid: int) -> tuple[Any, int]:
    """Poll until the child answers from a new process; its handle and the total it restored.

    Through the child's handle, not `Supervisor.call`: a call that sees the child die
    tells the supervisor at once, and this measures the supervisor's own detection.
    """
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            handle = sup.child("ledger", timeout=TIMEOUT)
            if ray.get(handle.pid.remote(), timeout=TIMEOUT) != old_pid:
                return handle, ray.get(handle.add.remote(0), timeout=TIMEOUT)
        except (RuntimeError, ray.exceptions.RayActorError):
            pass  # restarting, or a handle of the process that just died
        time.sleep(0.01)
    raise TimeoutError("the supervised child did not come back")


def _supervised_round(sup: Supervisor, phases: dict[str, list[float]]) -> int:
    handle = sup.child("ledger", timeout=TIMEOUT)
    total = ray.get(handle.add.remote(1), timeout=TIMEOUT)
    time.sleep(1.2)  # two health checks: the total is in the store
    pid = ray.get(handle.pid.remote(), timeout=TIMEOUT)
    start = time.time()
    os.kill(pid, signal.SIGKILL)
    _, restored = _answering(sup, pid)
    back = time.time()
    exited_at = next(c for c in sup.which_children() if c["name"] == "ledger")["exited_at"]
    phases["detect_s"].append(exited_at - start)
    phases["restart_restore_s"].append(back - exited_at)
    phases["total_s"].append(back - start)
    assert restored == total, (restored, total)
    return int(restored)


def _ray_round(counter: Counter, phases: dict[str, list[float]]) -> int:
    total = counter.increment(timeout=TIMEOUT)  # checkpointed before it returns
    (pid,) = counter.pids(timeout=TIMEOUT)
    start = time.time()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + TIMEOUT
    while counter.pids(timeout=TIMEOUT) == [pid]:  # calls are retried until the actor is back
        assert time.monotonic() < deadline
        time.sleep(0.01)
    restored = counter.value(timeout=TIMEOUT)
    phases["total_s"].append(time.time() - start)
    assert restored == total
    return restored


def test_bench_sigkill_to_answering(benchmark: Any, supervised: Supervisor, tmp_path: Path) -> None:
    smoke = _smoke(benchmark)
    rounds = 1 if smoke else 5
    sup_phases: dict[str, list[float]] = {"detect_s": [], "restart_restore_s": [], "total_s": []}
    ray_phases: dict[str, list[float]] = {"total_s": []}
    counter = Counter(store=DirectoryStore(tmp_path))  # Ray restarts it, __init__ restores
    try:
        benchmark.group = "trees: SIGKILL to answering again"
        benchmark.pedantic(
            _supervised_round, args=(supervised, sup_phases), rounds=rounds, warmup_rounds=0
        )
        for _ in range(rounds):
            _ray_round(counter, ray_phases)
    finally:
        counter.close()
    med = {k: statistics.median(v) for k, v in sup_phases.items()}
    ray_s = statistics.median(ray_phases["total_s"])
    _report(
        benchmark,
        "SIGKILL to answering, supervisor (interval 0.5 s) vs Ray max_restarts",
        supervisor_total_s=med["total_s"],
        supervisor_detect_s=med["detect_s"],
        supervisor_restart_restore_s=med["restart_restore_s"],
        supervisor_worst_total_s=max(sup_phases["total_s"]),
        ray_restart_total_s=ray_s,
        ray_restart_worst_s=max(ray_phases["total_s"]),
        supervisor_over_ray_x=med["total_s"] / ray_s,
    )


def _hang_round(sup: Supervisor, phases: dict[str, list[float]]) -> None:
    handle = sup.child("ledger", timeout=TIMEOUT)
    pid = ray.get(handle.pid.remote(), timeout=TIMEOUT)
    start = time.time()
    handle.hang.remote()
    _answering(sup, pid)
    back = time.time()
    exited_at = next(c for c in sup.which_children() if c["name"] == "ledger")["exited_at"]
    phases["detect_s"].append(exited_at - start)
    phases["total_s"].append(back - start)


def test_bench_hang_to_answering(benchmark: Any, supervised: Supervisor) -> None:
    smoke = _smoke(benchmark)
    phases: dict[str, list[float]] = {"detect_s": [], "total_s": []}
    benchmark.group = "trees: hang to answering again"
    benchmark.pedantic(_hang_round, args=(supervised, phases), rounds=1 if smoke else 5)
    entry = next(c for c in supervised.which_children() if c["name"] == "ledger")
    assert entry["last_exit"].startswith("hung")
    _report(
        benchmark,
        "hang to answering (interval 0.5 s, timeout 0.5 s)",
        detect_s=statistics.median(phases["detect_s"]),
        detect_worst_s=max(phases["detect_s"]),
        total_s=statistics.median(phases["total_s"]),
        total_worst_s=max(phases["total_s"]),
    )


# --- nested recursion ---------------------------------------------------------------------

_LEAF = 16


@ray.remote
def _naive(xs: list[int]) -> tuple[int, frozenset[int]]:
    if len(xs) <= _LEAF:
        return sum(xs), frozenset([os.getpid()])
    mid = len(xs) // 2
    (a, pa), (b, pb) = ray.get([_naive.remote(xs[:mid]), _naive.remote(xs[mid:])], timeout=TIMEOUT)
    return a + b, pa | pb | {os.getpid()}


def _halves(xs: list[int]) -> list[list[int]]:
    return [xs[: len(xs) // 2], xs[len(xs) // 2 :]] if len(xs) > _LEAF else []


def _solve(xs: list[int]) -> tuple[int, frozenset[int]]:
    return sum(xs), frozenset([os.getpid()])


def _combine(parts: list[tuple[int, frozenset[int]]]) -> tuple[int, frozenset[int]]:
    return sum(t for t, _ in parts), frozenset([os.getpid()]).union(*(p for _, p in parts))


def test_bench_nested_recursion(benchmark: Any, ray_cluster: dict, depth: int) -> None:
    xs = list(range(_LEAF * 2**depth))

    def naive() -> tuple[int, frozenset[int]]:
        result: tuple[int, frozenset[int]] = ray.get(_naive.remote(xs), timeout=TIMEOUT)
        return result

    def bounded() -> tuple[int, frozenset[int]]:
        return divide_and_conquer(
            xs, split=_halves, solve=_solve, combine=_combine, max_depth=1, budget_s=TIMEOUT
        )

    smoke = _smoke(benchmark)
    benchmark.group = "trees: nested recursion, naive vs bounded depth"
    total, _ = benchmark.pedantic(naive, rounds=1 if smoke else 3, warmup_rounds=0)
    assert total == sum(xs)
    samples: dict[str, list[float]] = {"naive": [], "bounded": []}
    processes: dict[str, int] = {}
    for _ in range(1 if smoke else 3):
        for name, run in (("naive", naive), ("bounded", bounded)):
            start = time.perf_counter()
            total, pids = run()
            samples[name].append(time.perf_counter() - start)
            assert total == sum(xs)
            processes[name] = max(processes.get(name, 0), len(pids))
    _report(
        benchmark,
        f"recursion over {2**depth} leaves ({2 ** (depth + 1) - 1} naive tasks)",
        naive_ms=statistics.median(samples["naive"]) * 1e3,
        bounded_ms=statistics.median(samples["bounded"]) * 1e3,
        naive_processes=processes["naive"],
        bounded_processes=processes["bounded"],
        naive_over_bounded_x=statistics.median(samples["naive"])
        / statistics.median(samples["bounded"]),
    )
