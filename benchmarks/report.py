"""Turn pytest-benchmark JSON into the results file, the Markdown summary and the plots.

Every ratio is computed here from the medians of one run: each engine against
the fastest engine of its group (``x best``), against the group's ideal time
(``x ideal``) and against the serial baseline (``speed-up``). The ratios are also
written back into each benchmark's ``extra_info`` in ``results.json``.

Usage:
    python -m benchmarks.report [RESULTS_JSON]   # re-render from a results file
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
RESULTS_JSON = RESULTS_DIR / "results.json"
SUMMARY_MD = RESULTS_DIR / "summary.md"
PLOTS_DIR = ROOT / "tutorials" / "assets" / "benchmarks"

WORKLOADS = {
    "sleep-double": (
        "1. Sleep 1 s and double",
        "Ideal: the inputs spread evenly over 2 slots with no overhead, "
        "`ceil(inputs / 2) x 1 s`; the serial baseline needs `inputs x 1 s`.",
    ),
    "cpu-bound": (
        "2. CPU-bound pure Python",
        "Ideal: half the serial median (2 slots, no overhead).",
    ),
    "inference": (
        "3. Stateful inference: a model of S MB applied to batches",
        "Model already deployed, batches already distributed; each round scores all "
        "batches. Ideal: half the serial median. *First call* is the one-off cost: "
        "deploying the model (broadcast, scatter, put, actor start) plus the first round.",
    ),
    "online-learning": (
        "4. Online learning loop: predict, feedback, `partial_fit`",
        "The loop is sequential (each cycle needs the model the previous one "
        "learned), so the ideal is the serial median.",
    ),
    "ray-in-spark": (
        "5. Ray inside Spark",
        "Ideal: half the serial median. The line below the table gives the ratio "
        "of the Ray actor pool to the pandas UDF (above 1: Ray faster).",
    ),
}
ENGINE_ORDER = [
    "serial",
    "spark-udf",
    "spark-arrow-udf",
    "spark-pandas-udf",
    "spark-mapinpandas",
    "spark-broadcast",
    "spark-load-per-partition",
    "spark-to-ray-actor-pool",
    "spark-bridge-executor",
    "spark-bridge-driver",
    "dask-delayed",
    "dask-scatter",
    "dask-task",
    "dask-actor",
    "ray-task",
    "ray-actor",
    "ray-actor-pool",
]
FAMILY_COLOURS = {"serial": "#7f7f7f", "spark": "#e8710a", "dask": "#1a73e8", "ray": "#188038"}


# --- numbers -----------------------------------------------------------------------------------


def _median(bench: dict[str, Any]) -> float:
    return float(bench["stats"]["median"])


def _engine_key(engine: str) -> tuple[int, str]:
    return (ENGINE_ORDER.index(engine) if engine in ENGINE_ORDER else len(ENGINE_ORDER), engine)


def analyse(benchmarks: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Group engine benchmarks by workload and case; add ratios to each one's ``extra_info``.

    Returns:
        ``{workload: {case: [row, ...]}}``, rows sorted in engine order, each row
        holding ``engine``, ``median_s``, ``iqr_s``, ``rounds``, ``x_best``,
        ``x_ideal``, ``speedup_vs_serial``, ``first_call_s``.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for bench in benchmarks:
        info = bench.get("extra_info") or {}
        if info.get("workload") in WORKLOADS and bench.get("stats"):
            groups[(info["workload"], info["case"])].append(bench)

    result: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(dict)
    for (workload, case), members in groups.items():
        best = min(_median(b) for b in members)
        serial = next((_median(b) for b in members if b["extra_info"]["engine"] == "serial"), None)
        rows = []
        for bench in sorted(members, key=lambda b: _engine_key(b["extra_info"]["engine"])):
            info = bench["extra_info"]
            median = _median(bench)
            ideal = info.get("ideal_s")
            if ideal is None and serial is not None and info.get("ideal_from_serial"):
                ideal = serial / info["ideal_from_serial"]
            ratios = {
                "ratio_to_best": round(median / best, 3),
                "ratio_to_ideal": round(median / ideal, 3) if ideal else None,
                "speedup_vs_serial": round(serial / median, 3) if serial else None,
                "ideal_s_used": round(ideal, 4) if ideal else None,
            }
            info.update(ratios)
            rows.append(
                {
                    "engine": info["engine"],
                    "median_s": median,
                    "iqr_s": float(bench["stats"].get("iqr", 0.0)),
                    "min_s": float(bench["stats"]["min"]),
                    "max_s": float(bench["stats"]["max"]),
                    "rounds": int(bench["stats"]["rounds"]),
                    "x_best": ratios["ratio_to_best"],
                    "x_ideal": ratios["ratio_to_ideal"],
                    "ideal_s": ideal,
                    "speedup_vs_serial": ratios["speedup_vs_serial"],
                    "first_call_s": info.get("first_call_s"),
                    "model_mb": info.get("model_mb"),
                }
            )
        result[workload][case] = rows
    return result


def _case_order(workload: str, cases: list[str]) -> list[str]:
    def key(case: str) -> tuple[Any, ...]:
        numbers = [float(t) for t in case.replace(",", " ").split() if _is_number(t)]
        return (case.split()[0] if workload == "inference" else "", *numbers, case)

    return sorted(cases, key=key)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _fmt_s(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _fmt_x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# --- Markdown ----------------------------------------------------------------------------------


def ray_in_spark_ratio(analysis: dict[str, Any]) -> float | None:
    """Median of the pandas UDF over the median of Spark -> Ray actor pool (>1: Ray faster)."""
    for rows in analysis.get("ray-in-spark", {}).values():
        medians = {r["engine"]: r["median_s"] for r in rows}
        if "spark-pandas-udf" in medians and "spark-to-ray-actor-pool" in medians:
            return medians["spark-pandas-udf"] / medians["spark-to-ray-actor-pool"]
    return None


def launch_figures(benchmarks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The launcher benchmark's figures (``extra_info``), if it ran."""
    for bench in benchmarks:
        info = bench.get("extra_info") or {}
        if info.get("workload") == "launcher" and "ratio_ready_s" in info:
            return info
    return None


def markdown(data: dict[str, Any], analysis: dict[str, Any]) -> str:
    """The summary page fragment: one table per workload and case, launcher, machine."""
    rap = data.get("rap", {})
    machine = rap.get("machine", {})
    lines = [
        "<!-- Generated by `make bench` (benchmarks/report.py); do not edit by hand. -->",
        "",
        f"Run of {data.get('datetime', '?')[:19].replace('T', ' ')} UTC, "
        f"{machine.get('logical_cores', '?')} cores, "
        f"{machine.get('memory_total_gib', '?')} GiB, load average at start "
        f"{_load(machine.get('load_average_at_start'))} and at the end "
        f"{_load(rap.get('load_average_end'))}. Medians in seconds; `x best` is the "
        "median over the fastest engine's in the same table, `x ideal` over the ideal "
        "time, `speed-up` the serial median over the engine's.",
        "",
        *_reruns_markdown(data),
    ]
    for workload, (title, method) in WORKLOADS.items():
        cases = analysis.get(workload)
        if not cases:
            continue
        lines += [f"### {title}", "", method, ""]
        show_first = any(r["first_call_s"] for rows in cases.values() for r in rows)
        for case in _case_order(workload, list(cases)):
            rows = cases[case]
            ideal = next((r["ideal_s"] for r in rows if r["ideal_s"]), None)
            lines += [f"**{case}** (ideal {_fmt_s(ideal)} s)", ""]
            header = "| Engine | Median (s) | IQR (s) | Rounds | x best | x ideal | speed-up |"
            rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
            if show_first:
                header += " First call (s) |"
                rule += " ---: |"
            lines += [header, rule]
            best = min(r["median_s"] for r in rows)
            for r in rows:
                name = f"**{r['engine']}**" if r["median_s"] == best else r["engine"]
                row = (
                    f"| {name} | {_fmt_s(r['median_s'])} | {_fmt_s(r['iqr_s'])} | "
                    f"{r['rounds']} | {_fmt_x(r['x_best'])} | {_fmt_x(r['x_ideal'])} | "
                    f"{_fmt_x(r['speedup_vs_serial'])} |"
                )
                if show_first:
                    row += f" {_fmt_s(r['first_call_s'])} |"
                lines.append(row)
            lines.append("")
        if workload == "ray-in-spark" and (ratio := ray_in_spark_ratio(analysis)) is not None:
            verdict = "faster" if ratio > 1 else "slower"
            lines += [
                f"Ray inside Spark against the pandas UDF: **{ratio:.2f}x** (Ray {verdict}).",
                "",
            ]
    lines += _launch_markdown(launch_figures(data.get("benchmarks", [])))
    lines += _other_markdown(data.get("benchmarks", []))
    lines += _machine_markdown(rap)
    return "\n".join(lines).rstrip() + "\n"


def _load(load: list[float] | None) -> str:
    return " / ".join(f"{x:.2f}" for x in load) if load else "?"


def _launch_markdown(figures: dict[str, Any] | None) -> list[str]:
    if not figures:
        return []
    figures = dict(figures)  # ratios of the steps are added for display only
    out = [
        "### Launcher: `RayOnSpark` against a bare `setup_ray_cluster`",
        "",
        f"Same embedded Spark ({figures['layout']['master']}), same kwargs, token auth in "
        "both; each launch in its own process, bare and wrapper alternating. Medians of "
        f"{len(figures['bare_ready_s_samples'])} launches each.",
        "",
        "| Seconds | bare `setup_ray_cluster` | `RayOnSpark` | RayOnSpark / bare |",
        "| --- | ---: | ---: | ---: |",
    ]
    labels = {
        "ready_s": "launch to ready (Spark start, Ray up, connected)",
        "spark_start_s": "of which: starting the embedded Spark",
        "setup_ray_cluster_s": "of which: `setup_ray_cluster`",
        "shutdown_s": "shutdown calls",
        "clean_s": "shutdown until every started process exited",
    }
    shown = {
        key: text
        for key, text in labels.items()
        if all(isinstance(figures.get(f"{m}_{key}"), int | float) for m in ("bare", "wrapper"))
    }
    for key in shown:
        figures[f"ratio_{key}"] = figures[f"wrapper_{key}"] / figures[f"bare_{key}"]
    for key, text in shown.items():
        out.append(
            f"| {text} | {_fmt_s(figures[f'bare_{key}'])} | {_fmt_s(figures[f'wrapper_{key}'])} "
            f"| {_fmt_x(figures[f'ratio_{key}'])} |"
        )
    return [*out, ""]


def _other_markdown(benchmarks: list[dict[str, Any]]) -> list[str]:
    others = [
        b
        for b in benchmarks
        if (b.get("extra_info") or {}).get("workload") not in (*WORKLOADS, "launcher")
        and b.get("stats")
    ]
    if not others:
        return []
    out = [
        "### Other benchmarks in the suite",
        "",
        "| Group | Benchmark | Median (s) | Figures |",
        "| --- | --- | ---: | --- |",
    ]
    for b in sorted(others, key=lambda b: (b.get("group") or "", b["name"])):
        figures = ", ".join(
            f"{k}={v:,.2f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in (b.get("extra_info") or {}).items()
            if not isinstance(v, dict | list)  # data for a plot (curves), not a figure
        )
        out.append(f"| {b.get('group') or ''} | `{b['name']}` | {_fmt_s(_median(b))} | {figures} |")
    return [*out, ""]


def _machine_markdown(rap: dict[str, Any]) -> list[str]:
    machine = rap.get("machine", {})
    versions = machine.get("versions", {})
    if not machine:
        return []
    out = [
        "### Machine and versions",
        "",
        f"- {machine.get('logical_cores')} logical cores ({machine.get('physical_cores')} "
        f"physical), {machine.get('memory_total_gib')} GiB memory "
        f"({machine.get('memory_available_gib')} GiB available), "
        f"{machine.get('platform')}.",
        f"- Load average (1/5/15 min) at start {_load(machine.get('load_average_at_start'))}, "
        f"at the end {_load(rap.get('load_average_end'))}; the machine was shared.",
        f"- Slots: {machine.get('slots_per_engine')} per engine "
        f"({machine.get('spark_executors_for_spark')} Spark executors, 2 Dask worker "
        "processes, 2 Ray worker nodes, one core each), over the same 2 cores.",
        "- " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
    ]
    runs = rap.get("runs", [])
    if runs:
        wall = sum(r.get("wall_s", 0) for r in runs if not r.get("groups"))  # not re-runs
        out.append(f"- Wall time of `make bench`: {wall / 60:.1f} min.")
    return [*out, ""]


# --- plots -------------------------------------------------------------------------------------


def _colour(engine: str) -> str:
    return FAMILY_COLOURS.get(engine.split("-")[0], "#9334e6")


def plot(analysis: dict[str, Any], launch: dict[str, Any] | None, out_dir: Path) -> list[Path]:
    """One PNG per workload (and one for the launcher); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for workload, cases in analysis.items():
        order = _case_order(workload, list(cases))
        columns = min(3, len(order))
        rows_n = math.ceil(len(order) / columns)
        fig, axes = plt.subplots(
            rows_n, columns, figsize=(4.6 * columns, 0.5 + 2.6 * rows_n), squeeze=False
        )
        for ax, case in zip(axes.flat, order, strict=False):
            rows = cases[case]
            names = [r["engine"] for r in rows]
            medians = [r["median_s"] for r in rows]
            spread = [
                [r["median_s"] - r["min_s"] for r in rows],
                [r["max_s"] - r["median_s"] for r in rows],
            ]
            ax.barh(names, medians, xerr=spread, color=[_colour(n) for n in names], capsize=2)
            ideal = next((r["ideal_s"] for r in rows if r["ideal_s"]), None)
            if ideal:
                ax.axvline(ideal, color="black", linestyle="--", linewidth=1, label="ideal")
                ax.legend(loc="lower right", fontsize=7, frameon=False)
            # Engines can differ by 100x: a log axis keeps the fast ones readable.
            log = max(r["max_s"] for r in rows) / min(medians) > 30
            if log:
                ax.set_xscale("log")
            for y, r in enumerate(rows):
                ax.annotate(
                    f" {_fmt_s(r['median_s'])} s",
                    (r["median_s"], y),
                    xytext=(3, -3) if r["max_s"] == r["median_s"] else (3, 5),
                    textcoords="offset points",
                    fontsize=7,
                )
            ax.margins(x=0.25)
            ax.invert_yaxis()
            ax.set_title(case, fontsize=9)
            scale = ", log scale" if log else ""
            ax.set_xlabel(f"median seconds (whiskers: min-max{scale})", fontsize=8)
            ax.tick_params(labelsize=8)
        for ax in list(axes.flat)[len(order) :]:
            ax.set_visible(False)
        fig.suptitle(WORKLOADS[workload][0].replace("`", ""), fontsize=11)
        fig.tight_layout()
        path = out_dir / f"{workload}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if launch:
        fig, ax = plt.subplots(figsize=(6, 2.6))
        keys = ["ready_s", "shutdown_s", "clean_s"]
        labels = ["launch to ready", "shutdown calls", "until processes exited"]
        ys = range(len(keys))
        bare = [launch[f"bare_{k}"] for k in keys]
        wrapper = [launch[f"wrapper_{k}"] for k in keys]
        ax.barh([y - 0.2 for y in ys], bare, height=0.4, label="bare setup_ray_cluster")
        ax.barh([y + 0.2 for y in ys], wrapper, height=0.4, label="RayOnSpark")
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("median seconds", fontsize=8)
        ax.legend(fontsize=8, frameon=False)
        ax.set_title("Launcher: RayOnSpark against a bare setup_ray_cluster", fontsize=10)
        fig.tight_layout()
        path = out_dir / "launcher.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# --- re-running part of the suite --------------------------------------------------------------


def _run_of(data: dict[str, Any]) -> str:
    return str(data.get("datetime", "?"))


def merge_rerun(old: dict[str, Any], new: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """``old`` results with every group that ``new`` measured replaced by ``new``'s.

    A whole group (one table) is replaced, never single engines in it, so each
    table's ratios still come from one run. Every benchmark keeps the date of the
    run that measured it in ``extra_info["run"]``; ``run`` (command, wall time,
    loads) is added to ``rap.runs`` with the groups it replaced.

    >>> old = {"datetime": "d1", "benchmarks": [
    ...     {"group": "a", "name": "x", "extra_info": {}},
    ...     {"group": "b", "name": "y", "extra_info": {}},
    ...     {"group": "b", "name": "z", "extra_info": {}}], "rap": {"runs": []}}
    >>> new = {"datetime": "d2", "benchmarks": [{"group": "b", "name": "y2", "extra_info": {}}]}
    >>> merged = merge_rerun(old, new, {"wall_s": 1.0})
    >>> [(b["group"], b["name"], b["extra_info"]["run"]) for b in merged["benchmarks"]]
    [('a', 'x', 'd1'), ('b', 'y2', 'd2')]
    >>> merged["rap"]["runs"][-1]["groups"]
    ['b']
    """
    rerun_groups = sorted({b.get("group") or "" for b in new.get("benchmarks", [])})
    for bench in old.get("benchmarks", []):
        bench.setdefault("extra_info", {}).setdefault("run", _run_of(old))
    for bench in new.get("benchmarks", []):
        bench.setdefault("extra_info", {})["run"] = _run_of(new)
    kept = [b for b in old.get("benchmarks", []) if (b.get("group") or "") not in rerun_groups]
    merged = {**old, "benchmarks": kept + list(new.get("benchmarks", []))}
    rap = merged.setdefault("rap", {})
    rap["runs"] = [*rap.get("runs", []), {**run, "datetime": _run_of(new), "groups": rerun_groups}]
    return merged


def _reruns_markdown(data: dict[str, Any]) -> list[str]:
    """A line naming the tables that a later, partial run replaced (none after a full run)."""
    main_run = _run_of(data)
    later = [r for r in data.get("rap", {}).get("runs", []) if r.get("groups")]
    lines = []
    for run in later:
        if run.get("datetime") == main_run:
            continue
        groups = ", ".join(f"*{g}*" for g in run["groups"])
        lines.append(
            f"Re-run on {str(run['datetime'])[:19].replace('T', ' ')} UTC (load average at "
            f"start {_load(run.get('load_average_at_start'))}, at the end "
            f"{_load(run.get('load_average_end'))}), replacing these tables as a whole: "
            f"{groups}. Ratios are only ever taken within one table, so within one run."
        )
    return [*lines, ""] if lines else []


# --- entry points ------------------------------------------------------------------------------


def render(data: dict[str, Any]) -> dict[str, Any]:
    """Analyse ``data`` (merged pytest-benchmark JSON), write results, summary and plots."""
    benchmarks = data.get("benchmarks", [])
    analysis = analyse(benchmarks)
    data.setdefault("rap", {})["analysis"] = analysis
    if (ratio := ray_in_spark_ratio(analysis)) is not None:
        data["rap"]["ray_in_spark_over_pandas_udf"] = round(ratio, 3)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    SUMMARY_MD.write_text(markdown(data, analysis), encoding="utf-8")
    plot(analysis, launch_figures(benchmarks), PLOTS_DIR)
    return data


def main(argv: list[str] | None = None) -> int:
    """Re-render the summary and plots from an existing results file."""
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else RESULTS_JSON
    render(json.loads(source.read_text(encoding="utf-8")))
    print(f"wrote {SUMMARY_MD.relative_to(ROOT)}, {RESULTS_JSON.relative_to(ROOT)} and plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
