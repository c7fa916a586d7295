"""``make soak``: launch and shut down the embedded cluster many times; nothing may pile up.

Cycles alternate between launches inside this process (one driver process launching
again and again, as a notebook or a test session does) and launches in a fresh
process each time (as ``actor-patterns launch`` or a script does). After every cycle
it records:

- the processes the launch started that are still alive (must be 0);
- ``/dev/shm`` usage, where Ray's object stores live (must not grow; it is the whole
  machine's figure, so other programs' use shows too);
- the entries in the temporary directory that were not there before the soak (must
  stay 0). Ray's Unix socket paths leave no room to nest launches in a private temp
  dir, so this counts the shared one: run the soak on an otherwise quiet machine.

The figures go to ``benchmarks/results/soak.json`` and a Markdown table to
``benchmarks/results/soak.md`` (included by the Ray on Spark page). Exit code 1 if a
cycle left a process or anything grew.

Usage: ``python scripts/soak.py [--cycles 20]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHM_TOLERANCE_MIB = 16.0

# A launch in a fresh process: report the started processes, then shut down by exit.
CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from launcher import RayOnSpark
with RayOnSpark(progress=False) as cluster:
    started = sorted(cluster.started_processes())
    print(json.dumps({"started": started, "start_s": cluster.timings["start_s"]}), flush=True)
"""


def _shm_used_mib() -> float:
    try:
        return round(shutil.disk_usage("/dev/shm").used / 1024**2, 1)
    except OSError:  # no /dev/shm (macOS): nothing to measure
        return 0.0


def _temp_entries(temp_dir: Path) -> set[str]:
    """The names in the temporary directory (those that vanish mid-listing are skipped)."""
    return {entry.name for entry in temp_dir.iterdir()}


def _in_process_cycle() -> dict[str, Any]:
    from launcher import RayOnSpark

    with RayOnSpark(progress=False) as cluster:
        started = cluster.started_processes()
        start_s = cluster.timings["start_s"]
    return {"started": started, "start_s": start_s, "shutdown_s": cluster.timings["shutdown_s"]}


def _fresh_process_cycle() -> dict[str, Any]:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"launch in a fresh process failed:\n{result.stderr[-3000:]}")
    # Ray's head writes its own lines to the same stdout: find the child's report.
    line = next(x for x in result.stdout.splitlines() if x.startswith('{"started"'))
    report = json.loads(line)
    started = {(int(pid), float(created)) for pid, created in report["started"]}
    total = time.monotonic() - began
    return {"started": started, "start_s": report["start_s"], "process_s": total}


def main(argv: list[str] | None = None) -> int:
    """Run the cycles, print a line per cycle, write the results; 0 if nothing piled up."""
    from launcher import _processes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args(argv)

    temp_dir = Path(tempfile.gettempdir())
    before = _temp_entries(temp_dir)
    baseline = {"shm_mib": _shm_used_mib(), "temp_entries": len(before)}
    print(f"/dev/shm {baseline['shm_mib']} MiB in use and {len(before)} entries in {temp_dir}")
    cycles = []
    for number in range(1, args.cycles + 1):
        where = "in-process" if number % 2 else "fresh-process"
        began = time.monotonic()
        run = _in_process_cycle() if where == "in-process" else _fresh_process_cycle()
        left = _processes.wait_gone(run["started"], timeout_s=30)
        row = {
            "cycle": number,
            "where": where,
            "start_s": round(run["start_s"], 1),
            "cycle_s": round(time.monotonic() - began, 1),
            "processes_started": len(run["started"]),
            "processes_left": len(left),
            "shm_mib": _shm_used_mib(),
            "temp_entries": len(_temp_entries(temp_dir) - before),
            "load_1m": round(os.getloadavg()[0], 2),
        }
        cycles.append(row)
        print(
            f"cycle {number:2d} {where:13s} start {row['start_s']:5.1f}s, cycle "
            f"{row['cycle_s']:5.1f}s, processes left {len(left)} of {len(run['started'])}, "
            f"/dev/shm {row['shm_mib']} MiB, temp entries {row['temp_entries']}",
            flush=True,
        )
        if left:
            _processes.stop({(p.pid, p.create_time()) for p in left})

    left_in_temp = sorted(_temp_entries(temp_dir) - before)
    leaked = sum(c["processes_left"] for c in cycles)
    shm_growth = round(max(c["shm_mib"] for c in cycles) - baseline["shm_mib"], 1)
    temp_growth = len(left_in_temp)
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cycles": len(cycles),
        "processes_left_total": leaked,
        "shm_growth_mib": shm_growth,
        "temp_entries_growth": temp_growth,
        "baseline": baseline,
        "left_in_temp_dir": left_in_temp,
        "rows": cycles,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "soak.md").write_text(_markdown(summary), encoding="utf-8")
    print(
        f"\n{len(cycles)} cycles: processes left {leaked}, /dev/shm growth {shm_growth} MiB, "
        f"temp entries growth {temp_growth}; wrote {RESULTS.relative_to(ROOT)}/soak.md"
    )
    # A leaked object store would hold hundreds of MiB; small drift is other programs.
    return 0 if leaked == 0 and shm_growth <= SHM_TOLERANCE_MIB and temp_growth <= 0 else 1


def _markdown(summary: dict[str, Any]) -> str:
    starts = sorted(c["start_s"] for c in summary["rows"])
    median = starts[len(starts) // 2] if starts else 0.0
    lines = [
        "<!-- Generated by `make soak` (scripts/soak.py); do not edit by hand. -->",
        "",
        f"{summary['cycles']} launch/shutdown cycles of the embedded cluster on "
        f"{summary['date']}, alternately in the soak's own process and in a fresh process. "
        f"Processes left alive after all cycles: **{summary['processes_left_total']}**; "
        f"`/dev/shm` growth: **{summary['shm_growth_mib']} MiB** (the whole machine's "
        f"figure); new entries left in the temporary directory: "
        f"**{summary['temp_entries_growth']}**. "
        f"Median launch-to-ready: {median:.1f} s.",
        "",
        "| Cycle | Where | Launch to ready (s) | Whole cycle (s) | Processes started | "
        "Left alive | /dev/shm used (MiB) | Temp entries | Load (1 min) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in summary["rows"]:
        lines.append(
            f"| {c['cycle']} | {c['where']} | {c['start_s']} | {c['cycle_s']} | "
            f"{c['processes_started']} | {c['processes_left']} | {c['shm_mib']} | "
            f"{c['temp_entries']} | {c['load_1m']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
