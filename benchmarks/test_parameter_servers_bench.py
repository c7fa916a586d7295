"""Parameter-server benchmarks: modes with a straggler, pull+push throughput, overhead, checkpoints.

1. Time to reach the accuracy target on digits with 4 workers, one a straggler at 3x the
   others' step time: sync vs async vs ssp (staleness 2), run in alternating rounds.
   The full run stores the accuracy-vs-time curves of its last round in ``extra_info``;
   ``scripts/parameter_servers_figures.py`` draws them and the other figures.
2. pull+push throughput for 1, 10 and 100 MB of parameters over 1, 2 and 4 shards, as
   MB/s and as a ratio to a local numpy copy of the same bytes (the floor).
3. Overhead: the same full-batch sgd steps in a single-process numpy loop vs
   ``train(mode="sync")`` with 1 and with 2 workers.
4. Checkpoint cost per push at ``checkpoint_every`` 1, 10 and 100 on each store.

Every figure that compares two things is a ratio of measurements taken in this run.
The full run takes about 8 minutes on 2 shared cores (cluster start included).
Nothing asserts on speed; every result is checked. With ``--benchmark-disable`` (smoke
mode, as ``make test`` runs it) every case runs once on tiny sizes and fewer actors.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import _harness
from patterns import (
    DirectoryStore,
    GradientWorker,
    ParameterServer,
    RayKVStore,
    SoftmaxRegression,
    TrainingHistory,
    train,
)
from tests._digits import Digits, digits

TIMEOUT = 600.0

# 1. time to accuracy -------------------------------------------------------------------------
STEP_DELAY_S = 0.03  # each worker's step: ~2 ms of numpy plus this sleep
STRAGGLER_FACTOR = 3
MODE_STEPS = 120  # gradient steps per worker, every mode
MODE_LEARNING_RATE = 0.5
MODE_ROUNDS = 3


def _smoke(config_or_benchmark: Any) -> bool:
    config = getattr(config_or_benchmark, "config", config_or_benchmark)
    if hasattr(config, "getoption"):
        return _harness.is_smoke(config)
    return bool(getattr(config_or_benchmark, "disabled", False))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    smoke = _harness.is_smoke(metafunc.config)
    if "megabytes" in metafunc.fixturenames:
        cases = [(0.01, 2)] if smoke else [(m, s) for m in (1, 10, 100) for s in (1, 2, 4)]
        metafunc.parametrize(
            ("megabytes", "n_shards"), cases, ids=[f"{m:g}MB-{s}-shards" for m, s in cases]
        )
    if "store_kind" in metafunc.fixturenames:
        kinds = [("directory", 1), ("ray-kv", 1)]
        if not smoke:
            kinds = [(k, n) for k in ("directory", "ray-kv") for n in (1, 10, 100)]
        metafunc.parametrize(
            ("store_kind", "every"), kinds, ids=[f"{k}-every-{n}" for k, n in kinds]
        )


def _report(benchmark: Any, title: str, **figures: float | str) -> None:
    benchmark.extra_info.update(
        {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    )
    shown = ", ".join(
        f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\n[{title}] {shown}")


@pytest.fixture(scope="module")
def data() -> Digits:
    return digits()


@pytest.fixture(scope="module")
def model(data: Digits) -> SoftmaxRegression:
    return SoftmaxRegression(data.X_train.shape[1], 10, seed=0)


# --- 1. sync vs async vs ssp with a straggler --------------------------------------------------


@pytest.fixture(scope="module")
def straggler_workers(
    request: pytest.FixtureRequest, ray_cluster: dict, data: Digits, model: SoftmaxRegression
) -> Iterator[list[GradientWorker]]:
    """4 workers (2 in smoke mode) on equal partitions; the last one 3x slower per step."""
    n = 2 if _smoke(request.config) else 4
    delays = [STEP_DELAY_S] * (n - 1) + [STEP_DELAY_S * STRAGGLER_FACTOR]
    pool = [
        GradientWorker(model, X, y, delay_s=delay)
        for (X, y), delay in zip(data.partitions(n), delays, strict=True)
    ]
    yield pool
    for worker in pool:
        worker.close()


def _one_run(
    model: SoftmaxRegression, workers: list[GradientWorker], data: Digits, mode: str, steps: int
) -> TrainingHistory:
    with ParameterServer(
        model.init_params(), n_shards=2, learning_rate=MODE_LEARNING_RATE
    ) as server:
        return train(
            server,
            workers,
            mode=mode,
            steps=steps,
            staleness=2 if mode == "ssp" else None,
            eval_data=(data.X_test, data.y_test),
            eval_every=1,
            timeout=TIMEOUT,
        )


def _curves(histories: dict[str, TrainingHistory]) -> dict[str, dict[str, list[float]]]:
    """Each mode's accuracy against wall-clock seconds (for the figure script)."""
    return {
        mode: {
            "seconds": [round(t, 3) for t in seconds],
            "accuracy": [round(a, 4) for a in accuracy],
        }
        for mode, (seconds, accuracy) in ((m, h.accuracy_curve()) for m, h in histories.items())
    }


def test_bench_modes_time_to_accuracy(
    benchmark: Any,
    data: Digits,
    model: SoftmaxRegression,
    straggler_workers: list[GradientWorker],
) -> None:
    smoke = _smoke(benchmark)
    steps = 2 if smoke else MODE_STEPS
    target = data.bar  # within 2 points of LogisticRegression
    rounds: list[dict[str, TrainingHistory]] = []

    def one_round() -> dict[str, TrainingHistory]:
        # The modes alternate inside each round, so a busy neighbour slows all three.
        result = {
            m: _one_run(model, straggler_workers, data, m, steps) for m in ("sync", "async", "ssp")
        }
        rounds.append(result)
        return result

    benchmark.group = "parameter servers: sync vs async vs ssp, one 3x straggler"
    result = benchmark.pedantic(one_round, rounds=1 if smoke else MODE_ROUNDS, iterations=1)
    n = len(straggler_workers)
    assert result["sync"].updates == steps
    assert result["async"].updates == result["ssp"].updates == steps * n
    for histories in rounds:
        for history in histories.values():
            assert history.final_accuracy is not None and history.events == []
    if smoke:
        return

    def median_time(mode: str) -> float:
        times = [h[mode].time_to_accuracy(target) for h in rounds]
        return statistics.median(t if t is not None else float("inf") for t in times)

    def median_final(mode: str) -> float:
        return statistics.median(h[mode].final_accuracy or 0.0 for h in rounds)

    sync_t, async_t, ssp_t = median_time("sync"), median_time("async"), median_time("ssp")
    _report(
        benchmark,
        "time to accuracy",
        target_accuracy=target,
        sync_s_to_target=sync_t,
        async_s_to_target=async_t,
        ssp_s_to_target=ssp_t,
        async_speedup_x=sync_t / async_t,
        ssp_speedup_x=sync_t / ssp_t,
        sync_final_accuracy=median_final("sync"),
        async_final_accuracy=median_final("async"),
        ssp_final_accuracy=median_final("ssp"),
        async_minus_sync_points=100 * (median_final("async") - median_final("sync")),
        ssp_minus_sync_points=100 * (median_final("ssp") - median_final("sync")),
        sync_s_total=statistics.median(h["sync"].duration_s for h in rounds),
        baseline_accuracy=data.baseline,
        n_workers=float(n),
        straggler_factor=float(STRAGGLER_FACTOR),
    )
    # The last round's curves, for scripts/parameter_servers_figures.py (not in the table).
    benchmark.extra_info["curves"] = _curves(rounds[-1])


# --- 2. pull+push throughput ------------------------------------------------------------------


def test_bench_pull_push_throughput(
    benchmark: Any, ray_cluster: dict, megabytes: float, n_shards: int
) -> None:
    smoke = _smoke(benchmark)
    columns = 128
    rows = max(n_shards, round(megabytes * 2**20 / (8 * columns)))
    params = {"W": np.random.default_rng(0).normal(size=(rows, columns))}
    gradients = {"W": np.full((rows, columns), 2.0**-10)}
    nbytes = params["W"].nbytes
    with ParameterServer(params, n_shards=n_shards, learning_rate=1.0) as server:
        server.pull(timeout=TIMEOUT)  # every shard is up

        def pull_push() -> int:
            weights = server.pull(timeout=TIMEOUT)
            assert server.push(gradients, timeout=TIMEOUT)
            return int(weights["W"].nbytes)

        rounds = 1 if smoke else (10 if megabytes < 10 else 5 if megabytes < 100 else 3)
        benchmark.group = f"parameter servers: pull+push, {megabytes:g} MB"
        moved = benchmark.pedantic(pull_push, rounds=rounds, warmup_rounds=0 if smoke else 1)
        assert moved == nbytes
        # Each push subtracted 2**-10 from every weight: replay the same subtractions (one
        # subtraction of version * 2**-10 rounds differently where a weight grows past a
        # power of two).
        expected = params["W"].copy()
        for _ in range(server.version(timeout=TIMEOUT)):
            expected -= gradients["W"]
        assert np.array_equal(server.pull(timeout=TIMEOUT)["W"], expected)
        if smoke:
            return
        stats = benchmark.stats.stats
        ps_s = stats.median
        floor = _local_copy_s(params["W"], rounds=max(rounds, 5))
        _report(
            benchmark,
            f"pull+push {megabytes:g} MB, {n_shards} shards",
            megabytes=float(nbytes / 2**20),
            n_shards=float(n_shards),
            pull_push_s=ps_s,
            mb_per_s=2 * nbytes / 2**20 / ps_s,  # a pull and a push each move the parameters
            local_copy_s=floor,
            local_copy_mb_per_s=2 * nbytes / 2**20 / floor,
            times_local_copy=ps_s / floor,
        )


def _local_copy_s(array: np.ndarray, rounds: int) -> float:
    """Median seconds to copy ``array`` twice in this process (a pull and a push's bytes)."""
    target = np.empty_like(array)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        np.copyto(target, array)
        np.copyto(target, array)
        times.append(time.perf_counter() - start)
    assert np.array_equal(target, array)
    return statistics.median(times)


# --- 3. overhead against a single-process numpy loop --------------------------------------------


def _numpy_sgd(
    model: SoftmaxRegression, parts: list[tuple[np.ndarray, np.ndarray]], steps: int
) -> dict[str, np.ndarray]:
    """The reference: sync sgd in one process, the same arithmetic as server and workers.

    Each step averages the partitions' gradients, as ``train(mode="sync")`` does; with
    one partition that is plain full-batch sgd (with two, the halves differ by a row,
    so their mean is not the full-batch gradient).
    """
    params = model.init_params()
    for _ in range(steps):
        grads = [model.loss_and_gradients(params, X, y)[1] for X, y in parts]
        for name in params:
            params[name] -= MODE_LEARNING_RATE * (sum(g[name] for g in grads) / len(grads))
    return params


@pytest.fixture(scope="module")
def plain_workers(
    ray_cluster: dict, data: Digits, model: SoftmaxRegression
) -> Iterator[dict[int, list[GradientWorker]]]:
    """One worker with every training row, and two with half each; no delay."""
    pools = {n: [GradientWorker(model, X, y) for X, y in data.partitions(n)] for n in (1, 2)}
    yield pools
    for pool in pools.values():
        for worker in pool:
            worker.close()


def test_bench_overhead_vs_numpy_loop(
    benchmark: Any,
    data: Digits,
    model: SoftmaxRegression,
    plain_workers: dict[int, list[GradientWorker]],
) -> None:
    smoke = _smoke(benchmark)
    steps = 3 if smoke else 100

    def local() -> dict[str, np.ndarray]:
        return _numpy_sgd(model, data.partitions(1), steps)

    benchmark.group = "parameter servers: overhead of the same sgd steps"
    references = {1: benchmark.pedantic(local, rounds=1 if smoke else 5, iterations=1)}
    references[2] = _numpy_sgd(model, data.partitions(2), steps)
    samples: dict[str, list[float]] = {"numpy": [], "ps_1_worker": [], "ps_2_workers": []}
    for _ in range(1 if smoke else 3):
        start = time.perf_counter()
        local()
        samples["numpy"].append(time.perf_counter() - start)
        for n, name in ((1, "ps_1_worker"), (2, "ps_2_workers")):
            with ParameterServer(model.init_params(), learning_rate=MODE_LEARNING_RATE) as server:
                history = train(server, plain_workers[n], mode="sync", steps=steps, timeout=TIMEOUT)
                samples[name].append(history.duration_s)
                weights = server.pull(timeout=TIMEOUT)
            for key, expected in references[n].items():
                # Equal up to rounding (BLAS may sum in another order in a worker).
                assert np.allclose(weights[key], expected, rtol=0, atol=1e-9), (n, key)
    if smoke:
        return
    numpy_s = statistics.median(samples["numpy"])
    one, two = statistics.median(samples["ps_1_worker"]), statistics.median(samples["ps_2_workers"])
    _report(
        benchmark,
        "overhead",
        steps=float(steps),
        numpy_ms_per_step=1e3 * numpy_s / steps,
        ps_1_worker_ms_per_step=1e3 * one / steps,
        ps_2_workers_ms_per_step=1e3 * two / steps,
        ps_1_worker_x_numpy=one / numpy_s,
        ps_2_workers_x_numpy=two / numpy_s,
    )


# --- 4. checkpoint cost per push -----------------------------------------------------------------


def _pushes(server: ParameterServer, gradients: dict[str, np.ndarray]) -> Callable[[int], int]:
    def run(calls: int) -> int:
        return sum(server.push(gradients, timeout=TIMEOUT) for _ in range(calls))

    return run


def test_bench_checkpoint_cost(
    benchmark: Any,
    ray_cluster: dict,
    tmp_path: Path,
    model: SoftmaxRegression,
    store_kind: str,
    every: int,
) -> None:
    smoke = _smoke(benchmark)
    calls = 4 if smoke else 200
    store: DirectoryStore | RayKVStore = (
        DirectoryStore(tmp_path)
        if store_kind == "directory"
        else RayKVStore(namespace=f"bench-ps-{uuid.uuid4().hex}")
    )
    params = model.init_params()  # digits' softmax regression: 650 float64, about 5 KB
    gradients = {k: np.full_like(v, 1e-3) for k, v in params.items()}
    server = ParameterServer(params, store=store, checkpoint_every=every, learning_rate=0.1)
    plain = ParameterServer(params, learning_rate=0.1)
    try:
        run = _pushes(server, gradients)
        benchmark.group = "parameter servers: checkpoint every N pushes"
        assert (
            benchmark.pedantic(run, args=(calls,), rounds=1 if smoke else 5, warmup_rounds=0)
            == calls
        )
        blocks: dict[str, list[float]] = {"plain": [], "store": []}
        for _ in range(1 if smoke else 7):  # interleaved: a neighbour's load slows both alike
            for name, fn in (("plain", _pushes(plain, gradients)), ("store", run)):
                start = time.perf_counter()
                assert fn(calls) == calls
                blocks[name].append((time.perf_counter() - start) / calls)
        if every == 1:  # every acknowledged push is in the store
            assert server.key is not None
            saved = store.load(f"{server.key}/shard-0-of-1")
            assert saved is not None and saved.state["version"] == server.version(timeout=TIMEOUT)
        if smoke:
            return
        plain_us = 1e6 * statistics.median(blocks["plain"])
        store_us = 1e6 * statistics.median(blocks["store"])
        _report(
            benchmark,
            f"checkpoint {store_kind} every {every}",
            no_store_us_per_push=plain_us,
            store_us_per_push=store_us,
            checkpoint_cost_us_per_push=store_us - plain_us,
            checkpoint_cost_pct=(store_us / plain_us - 1) * 100,
        )
    finally:
        server.close()
        plain.close()
        if isinstance(store, RayKVStore) and server.key is not None:
            store.delete(f"{server.key}/shard-0-of-1")
