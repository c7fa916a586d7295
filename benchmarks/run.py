"""``make bench``: run the benchmark suite with pytest-benchmark, then write the report.

1. The launcher benchmark (``test_launch_timing.py``, with ``RAP_BENCH_LAUNCH=1``)
   in a pytest run of its own, before the shared cluster exists, so its launches
   do not compete with an idle cluster for the 2 cores.
2. Everything else under ``benchmarks/`` with ``RAP_SPARK_EXECUTORS=2``: Spark gets 2
   single-core executors, Ray 2 single-core worker nodes, Dask 2 worker processes.
3. The two JSON files merged, with machine facts and versions, into
   ``benchmarks/results/results.json``; the Markdown summary into
   ``benchmarks/results/summary.md``; the plots into ``tutorials/assets/benchmarks/``.

Progress (which workload and engine, how many left) is printed by the suite's
pytest hooks. Options: ``--skip-launch``, ``-k EXPR`` (passed to pytest),
``--report-only`` (re-render from the existing results file), ``--update`` (keep the
existing results and replace only the tables this run measures, each table whole,
so that its ratios still come from one run; the summary names the re-run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import _harness, report

ROOT = Path(__file__).resolve().parents[1]
SPARK_EXECUTORS = "2"  # executors kept for Spark jobs: as many slots as Ray and Dask get
PYTEST_OPTIONS = [
    "-m",
    "",
    "-p",
    "no:cacheprovider",
    "--benchmark-group-by=group",
    "--benchmark-sort=name",
    "--benchmark-columns=median,iqr,min,max,rounds",
]


def _pytest(
    targets: list[str], json_path: Path, env: dict[str, str], extra: list[str]
) -> dict[str, Any]:
    """Run pytest on ``targets``; return the exit code, wall time and command."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        *PYTEST_OPTIONS,
        f"--benchmark-json={json_path}",
        *extra,
    ]
    print(f"\n$ {' '.join(command)}", flush=True)
    began = time.monotonic()
    code = subprocess.call(command, cwd=ROOT, env=env)
    return {"command": command[1:], "exit_code": code, "wall_s": round(time.monotonic() - began, 1)}


def _load(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or only re-render), write results, summary and plots."""
    parser = argparse.ArgumentParser(description="Run the engine benchmarks and write the report.")
    parser.add_argument("--skip-launch", action="store_true", help="skip the launcher benchmark")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression for the engine run")
    parser.add_argument("--report-only", action="store_true", help="re-render results.json")
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the tables this run measures in the existing results.json",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        return report.main([])
    previous = _load(report.RESULTS_JSON) if args.update else None
    if args.update and previous is None:
        parser.error(f"--update needs an existing {report.RESULTS_JSON.relative_to(ROOT)}")

    load_at_start = os.getloadavg()
    machine = _harness.machine_facts(load_at_start)  # memory and load before anything starts
    machine["spark_executors_for_spark"] = int(SPARK_EXECUTORS)
    print(f"load average at start: {load_at_start}", flush=True)
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    base_env.pop("RAP_TEST_RAY", None)  # the real engines, never the local shortcut
    base_env.pop("RAP_BENCH_SMOKE", None)
    runs = []
    merged: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="rap-bench-") as scratch:
        launch_json, engines_json = Path(scratch) / "launch.json", Path(scratch) / "engines.json"
        if not args.skip_launch:
            runs.append(
                _pytest(
                    ["benchmarks/test_launch_timing.py"],
                    launch_json,
                    {**base_env, "RAP_BENCH_LAUNCH": "1"},
                    [],
                )
            )
        runs.append(
            _pytest(
                ["benchmarks", "--deselect", "benchmarks/test_launch_timing.py"],
                engines_json,
                {**base_env, "RAP_SPARK_EXECUTORS": SPARK_EXECUTORS, "RAP_BENCH_LAUNCH": "0"},
                ["-k", args.keyword] if args.keyword else [],
            )
        )
        for path in (engines_json, launch_json):
            part = _load(path)
            if part is None:
                continue
            if not merged:
                merged = part
            else:
                merged["benchmarks"] += part["benchmarks"]
    if not merged:
        print("no benchmark results were written; see the pytest output above", file=sys.stderr)
        return 1
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    if previous is not None:
        rerun = {
            "runs": runs,
            "load_average_at_start": list(load_at_start),
            "load_average_end": load_at_end,
        }
        merged = report.merge_rerun(previous, merged, rerun)
    else:
        merged["rap"] = {
            "machine": machine,
            "load_average_end": load_at_end,
            "sizes": _harness.sizes_record(_harness.Sizes.for_mode(False)),
            "runs": runs,
        }
    report.render(merged)
    print(
        f"\nwrote {report.RESULTS_JSON.relative_to(ROOT)}, {report.SUMMARY_MD.relative_to(ROOT)} "
        f"and plots in {report.PLOTS_DIR.relative_to(ROOT)}/",
        flush=True,
    )
    failed = [r for r in runs if r["exit_code"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
