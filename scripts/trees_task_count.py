"""Count the combining tasks `tree_reduce` really runs, for the actor-trees page.

    RAP_TEST_RAY=local python scripts/trees_task_count.py

Runs `tree_reduce` over 64 to 1,024 leaves with ``fan_in`` 4 and 16 on a local Ray,
counts the combining tasks that ran (each one increments a `Counter` actor as it
runs ``fn``: what Ray ran, not a formula), and writes
``benchmarks/results/trees_tasks.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import ray

from patterns import Counter, tree_reduce

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "trees_tasks.json"
LEAVES = [64, 128, 256, 512, 1024]
FAN_INS = [4, 16]


def _counting_sum(counter: Counter) -> Any:
    def combine(values: list[int]) -> int:
        counter.increment()  # one per combining task: fn runs once in each
        return sum(values)

    return combine


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        counts: dict[str, dict[str, float]] = {}
        for leaves in LEAVES:
            row: dict[str, float] = {}
            for fan_in in FAN_INS:
                with Counter() as counter:
                    total = tree_reduce(range(leaves), _counting_sum(counter), fan_in=fan_in)
                    assert total == sum(range(leaves))
                    row[f"fan_in_{fan_in}"] = counter.value()
            row["ratio_4_over_16"] = round(row["fan_in_4"] / row["fan_in_16"], 3)
            counts[str(leaves)] = row
            print(leaves, row, flush=True)
    finally:
        ray.shutdown()
    OUT.write_text(
        json.dumps(
            {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "command": "python scripts/trees_task_count.py",
                "ray": "plain local Ray, 2 CPUs",
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "combining_tasks": counts,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
