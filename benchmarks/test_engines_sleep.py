"""Workload 1: the seeds' example, a function that sleeps and doubles its input.

Over 4 and 16 inputs (smoke mode: 4 inputs, 0.05 s sleeps). The sleep stands in
for waiting on I/O, so the ideal time is known exactly: the inputs spread evenly
over the 2 slots with no overhead, ``ceil(inputs / 2) x pause``. The serial
baseline takes ``inputs x pause``. Each result must be the doubled inputs, in
order.
"""

from __future__ import annotations

import functools

import pytest

from benchmarks import _engines, _harness
from benchmarks._workloads import double_slowly

pytestmark = [
    pytest.mark.slow,
    # PySpark 4 warns on every pandas conversion that it predates pandas 3; nothing to act on.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]


@pytest.mark.parametrize("engine", _engines.params(*_engines.STATELESS))
def test_sleep_double(
    benchmark: object,
    request: pytest.FixtureRequest,
    sizes: _harness.Sizes,
    engine: str,
    inputs: int,
) -> None:
    values = list(range(inputs))
    fn = functools.partial(double_slowly, pause_s=sizes.pause_s)
    _harness.label(
        benchmark,
        "sleep-double",
        f"{inputs} inputs",
        engine,
        ideal_s=_harness.sleep_ideal_s(inputs, sizes.pause_s),
        pause_s=sizes.pause_s,
    )
    serial = engine == "serial"
    with _engines.map_runner(engine, request, fn, values) as run:
        result = _harness.measure(
            benchmark,
            run,
            # A sleep has no variance to sample: the serial baseline runs once.
            rounds=1 if serial else min(sizes.rounds, 3),
            warmup_rounds=0 if serial or inputs > 4 else 1,
        )
    assert result == [2 * v for v in values]
