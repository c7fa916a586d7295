"""The report: ratios within one table, and a partial re-run that replaces tables whole."""

from __future__ import annotations

import doctest
from typing import Any

from benchmarks import report


def _bench(engine: str, median: float, case: str = "4 inputs") -> dict[str, Any]:
    return {
        "group": f"sleep-double | {case}",
        "name": f"test_{engine}",
        "extra_info": {"workload": "sleep-double", "case": case, "engine": engine},
        "stats": {"median": median, "iqr": 0.0, "min": median, "max": median, "rounds": 3},
    }


def test_docstring_examples_run() -> None:
    result = doctest.testmod(report)
    assert result.attempted > 0
    assert result.failed == 0


def test_a_rerun_replaces_whole_tables_and_is_named_in_the_summary() -> None:
    old = {
        "datetime": "2026-11-22T07:01:04+00:00",
        "benchmarks": [
            _bench("serial", 4.0),
            _bench("ray-task", 2.0),
            _bench("serial", 16.0, "16 inputs"),
        ],
        "rap": {"machine": {"logical_cores": 2}, "runs": [{"wall_s": 60.0}]},
    }
    new = {"datetime": "2026-11-23T23:00:00+00:00", "benchmarks": [_bench("serial", 5.0)]}
    merged = report.merge_rerun(old, new, {"wall_s": 9.0, "load_average_at_start": [1.0, 2.0]})
    analysis = report.analyse(merged["benchmarks"])

    # The re-run measured only the serial engine of "4 inputs": the old ray-task row of
    # that table is gone (no ratio across two runs); the untouched table stays.
    assert [r["engine"] for r in analysis["sleep-double"]["4 inputs"]] == ["serial"]
    assert [r["median_s"] for r in analysis["sleep-double"]["16 inputs"]] == [16.0]
    summary = report.markdown(merged, analysis)
    assert "Re-run on 2026-11-23 23:00:00 UTC" in summary
    assert "*sleep-double | 4 inputs*" in summary
    assert "Wall time of `make bench`: 1.0 min." in summary  # the full run's, not the re-run's


def test_a_full_run_names_no_rerun() -> None:
    data = {"datetime": "2026-11-22T07:01:04+00:00", "benchmarks": [_bench("serial", 4.0)]}
    assert "Re-run" not in report.markdown(data, report.analyse(data["benchmarks"]))
