"""Run one benchmark file and record its results for the tutorial pages.

    python scripts/record_bench.py benchmarks/test_counters_bench.py counters

runs ``pytest`` on the file (or several files, one run) with pytest-benchmark and writes
``benchmarks/results/<name>.json``: the pytest-benchmark report (every case's
statistics and ``extra_info``) plus a ``rap`` block with the date, the command, the
machine's cores and memory, and the load average before and after the run. The pages
quote its figures through ``{{ fig <name>.json ... }}`` markers (see
``scripts/docs_figures.py``). Pass ``--local`` to run on a plain local Ray
(``RAP_TEST_RAY=local``) when the file needs no Spark.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _memory_gib() -> float:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return round(pages / 1024**3, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "files", nargs="+", help="benchmark file(s), e.g. benchmarks/test_counters_bench.py"
    )
    parser.add_argument("name", help="results file name, without .json")
    parser.add_argument("--local", action="store_true", help="plain local Ray, no Spark")
    args = parser.parse_args(argv)
    env = {**os.environ, **({"RAP_TEST_RAY": "local"} if args.local else {})}
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "raw.json"
        command = [sys.executable, "-m", "pytest", *args.files, "-p", "no:cacheprovider"]
        command += ["-s", f"--benchmark-json={raw}"]
        done = subprocess.run(command, cwd=ROOT, env=env, check=False)
        if done.returncode != 0:
            return done.returncode
        report = json.loads(raw.read_text(encoding="utf-8"))
    report["rap"] = {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", "-m", "pytest", *args.files]),
        "ray": "plain local Ray (RAP_TEST_RAY=local)" if args.local else "Ray-on-Spark",
        "settings": {k: env[k] for k in ("RAP_SPARK_EXECUTORS", "RAP_TEST_RAY") if k in env},
        "machine": {
            "logical_cores": os.cpu_count(),
            "memory_total_gib": _memory_gib(),
            "load_average_at_start": [round(x, 2) for x in load_before],
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
    }
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
