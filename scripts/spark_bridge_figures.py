"""Draw the benchmark figure of the Spark bridge page (tutorials/assets/spark-bridge/).

    python scripts/spark_bridge_figures.py [benchmarks/results/spark_bridge.json]

``benchmarks.png``: median seconds per engine from the JSON report of
``benchmarks/test_spark_bridge_bench.py`` and ``benchmarks/test_engines_ray_in_spark.py``:
the per-group model on uniform and skewed groups, the batches with a 10 MB model,
and 10,000 small groups.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tutorials" / "assets" / "spark-bridge"
DEFAULT = ROOT / "benchmarks" / "results" / "spark_bridge.json"
BRIDGE, SPARK, OTHER = "#fb8c00", "#3f51b5", "#90a4ae"


def _color(engine: str) -> str:
    if "bridge" in engine:
        return BRIDGE
    return OTHER if engine in ("serial", "spark-to-ray-actor-pool") else SPARK


def _bars(ax: Any, title: str, medians: dict[str, float], unit: str = "s") -> None:
    names = list(medians)
    values = [medians[n] for n in names]
    bars = ax.barh(names, values, color=[_color(n) for n in names])
    ax.invert_yaxis()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f"median {unit} (lower is better)")
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.3g}", va="center")
    ax.set_xlim(0, max(values) * 1.25)


def _per_engine(info: dict[str, Any], suffix: str = "_s") -> dict[str, float]:
    return {
        key.removesuffix(suffix): float(value)
        for key, value in info.items()
        if key.endswith(suffix) and "_over_" not in key
    }


def draw(report: dict[str, Any]) -> Path:
    by_name = {b["name"]: b for b in report["benchmarks"]}
    panels: list[tuple[str, dict[str, float], str]] = []
    for shape in ("uniform", "skewed"):
        info = by_name[f"test_bench_per_group_model[{shape}]"]["extra_info"]
        panels.append((f"Per-group model, 96 {shape} groups", _per_engine(info), "s"))
    batches = {
        b["extra_info"]["engine"]: b["stats"]["median"]
        for b in report["benchmarks"]
        if b["name"].startswith("test_ray_in_spark[")
    }
    panels.append(("Batches, 10 MB model, 8 x 25,000 rows", batches, "s"))
    small = by_name["test_bench_many_small_groups"]["extra_info"]
    panels.append(("10,000 small groups", _per_engine(small, "_ms_per_group"), "ms per group"))

    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    for ax, (title, medians, unit) in zip(axes.flat, panels, strict=True):
        _bars(ax, title, medians, unit)
    when = report.get("datetime", "")[:10]
    runs = "per-group panels from a later run" if report.get("reruns") else "one run"
    fig.suptitle(f"Spark bridge benchmarks, {when}, 2 shared cores ({runs})", fontsize=12)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "benchmarks.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> None:
    source = Path(argv[0]) if argv else DEFAULT
    print(draw(json.loads(source.read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main(sys.argv[1:])
