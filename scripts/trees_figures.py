"""Draw the figures of the actor-trees page (tutorials/assets/trees/).

    python scripts/trees_figures.py [benchmark.json]

- ``strategies.png``: which children each restart strategy restarts when one crashes.
- ``tree-reduce.png``: tree_reduce against ray.get + sum and the memcpy floor, from the
  JSON report of ``benchmarks/test_trees_bench.py`` (only when a report is given).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

OUT = Path(__file__).resolve().parents[1] / "tutorials" / "assets" / "trees"
CRASHED, RESTARTED, UNTOUCHED, SUPERVISOR = "#e53935", "#fb8c00", "#cfd8dc", "#3f51b5"


def strategies() -> Path:
    panels = [
        ("one_for_one", {"B"}, "restart B"),
        ("one_for_all", {"A", "B", "C", "D"}, "stop D, C, A\nthen start A, B, C, D"),
        ("rest_for_one", {"B", "C", "D"}, "stop D, C\nthen start B, C, D"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, (title, restarted, steps) in zip(axes, panels, strict=True):
        ax.set_xlim(0, 4)
        ax.set_ylim(0, 3.2)
        ax.axis("off")
        ax.set_title(title, family="monospace", fontsize=13, fontweight="bold")

        def box(x: float, y: float, text: str, color: str, ax: plt.Axes = ax) -> None:
            ax.add_patch(
                FancyBboxPatch(
                    (x - 0.3, y - 0.22), 0.6, 0.44, boxstyle="round,pad=0.03", color=color
                )
            )
            light = color in (UNTOUCHED,)
            ax.text(x, y, text, ha="center", va="center", color="black" if light else "white")

        box(2, 2.6, "sup", SUPERVISOR)
        for i, name in enumerate("ABCD"):
            x = 0.5 + i
            ax.plot([2, x], [2.38, 1.72], color="#9e9e9e", lw=1)
            color = CRASHED if name == "B" else RESTARTED if name in restarted else UNTOUCHED
            box(x, 1.5, name, color)
        ax.text(1.5, 1.05, "crashed", ha="center", color=CRASHED, fontsize=9)
        ax.text(2, 0.45, steps, ha="center", va="center", fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (CRASHED, RESTARTED, UNTOUCHED)]
    labels = ["the child that crashed", "stopped and restarted with it", "untouched: same process"]
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path = OUT / "strategies.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tree_reduce_plot(report: Path) -> Path:
    data = json.loads(report.read_text())
    rows = []
    for bench in data["benchmarks"]:
        if bench["name"].startswith("test_bench_tree_reduce_vs_flat"):
            leaves = int(bench["params"]["leaves"])
            rows.append((leaves, bench["extra_info"]))
    rows.sort()
    leaves = [n for n, _ in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label, style in [
        ("flat_ms", "ray.get of every leaf, then sum", "o-"),
        ("tree_fan_in_4_ms", "tree_reduce, fan_in=4", "s-"),
        ("tree_fan_in_16_ms", "tree_reduce, fan_in=16", "^-"),
        ("memcpy_floor_ms", "floor: memcpy of the same bytes", "k--"),
    ]:
        ax.plot(leaves, [info[key] for _, info in rows], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(leaves, [str(n) for n in leaves])
    ax.set_xlabel("leaves of 1 MiB (MiB summed)")
    ax.set_ylabel("time to the summed array (ms, median)")
    ax.set_title("Summing 1 MiB arrays held by two Ray worker nodes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    path = OUT / "tree-reduce.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    print(strategies())
    if len(sys.argv) > 1:
        print(tree_reduce_plot(Path(sys.argv[1])))
