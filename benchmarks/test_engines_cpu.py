"""Workload 2: a CPU-bound pure-Python function (Collatz walks) over N inputs.

Pure Python holds the GIL, so only processes run it in parallel. With 2 slots
the ideal is half the serial time (a 2x speed-up); the report takes the serial
median of the same run as the reference. Each result must equal the serial one.
"""

from __future__ import annotations

import functools

import pytest

from benchmarks import _engines, _harness
from benchmarks._workloads import collatz_steps

pytestmark = [
    pytest.mark.slow,
    # PySpark 4 warns on every pandas conversion that it predates pandas 3; nothing to act on.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]


@pytest.fixture(scope="module")
def work(sizes: _harness.Sizes) -> tuple[list[int], list[int], functools.partial]:
    """Inputs (first numbers of each walk), the expected totals, the function."""
    firsts = [1 + i * sizes.cpu_numbers for i in range(sizes.cpu_inputs)]
    fn = functools.partial(collatz_steps, count=sizes.cpu_numbers)
    return firsts, [fn(f) for f in firsts], fn


@pytest.mark.parametrize("engine", _engines.params(*_engines.STATELESS))
def test_cpu_bound(
    benchmark: object,
    request: pytest.FixtureRequest,
    sizes: _harness.Sizes,
    work: tuple[list[int], list[int], functools.partial],
    engine: str,
) -> None:
    firsts, expected, fn = work
    _harness.label(
        benchmark,
        "cpu-bound",
        f"{len(firsts)} inputs x {sizes.cpu_numbers:,} numbers",
        engine,
        ideal_from_serial=_harness.SLOTS,
    )
    with _engines.map_runner(engine, request, fn, firsts) as run:
        result = _harness.measure(benchmark, run, rounds=min(sizes.rounds, 3), warmup_rounds=1)
    assert result == expected
