"""Draw the figures of the parameter-servers page (tutorials/assets/parameter-servers/).

    python scripts/parameter_servers_figures.py [benchmarks/results/parameter_servers.json]

Everything comes from the JSON report of a full (timed) run of
``benchmarks/test_parameter_servers_bench.py``, from each benchmark's ``extra_info``:

- ``accuracy-vs-time.png``: test accuracy against wall-clock seconds for sync, async and
  ssp with one straggler (the curves of the run's last round).
- ``pull-push.png``: pull+push throughput by parameter size and shard count, beside a
  local numpy copy of the same bytes.
- ``overhead.png``: milliseconds per sgd step, numpy loop vs ``train(mode="sync")``.
- ``checkpoint.png``: what a checkpoint store adds to each push, by store and
  ``checkpoint_every``.
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
OUT = ROOT / "tutorials" / "assets" / "parameter-servers"
DEFAULT_REPORT = ROOT / "benchmarks" / "results" / "parameter_servers.json"
MODE_STYLES = {"sync": ("#3949ab", "-"), "async": ("#e65100", "-"), "ssp": ("#2e7d32", "--")}
SHARD_COLORS = {1: "#3949ab", 2: "#e65100", 4: "#2e7d32"}


def _infos(report: dict[str, Any], test: str) -> list[dict[str, Any]]:
    """The ``extra_info`` of every case of one benchmark function, in the report's order."""
    found = [
        b["extra_info"]
        for b in report["benchmarks"]
        if b["name"].split("[")[0] == test and b.get("extra_info")
    ]
    if not found:
        raise SystemExit(f"{test}: no figures in the report (was it a full, timed run?)")
    return found


def _save(fig: Any, name: str) -> Path:
    path = OUT / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_vs_time(report: dict[str, Any]) -> Path:
    (info,) = _infos(report, "test_bench_modes_time_to_accuracy")
    target, baseline = info["target_accuracy"], info["baseline_accuracy"]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for mode, curve in info["curves"].items():
        color, line = MODE_STYLES[mode]
        seconds, accuracy = curve["seconds"], curve["accuracy"]
        reached = next((s for s, a in zip(seconds, accuracy, strict=True) if a >= target), None)
        label = f"{mode}: target at {reached:.1f} s" if reached is not None else f"{mode}: never"
        ax.plot(seconds, accuracy, line, color=color, linewidth=1.8, label=label)
        if reached is not None:
            ax.plot([reached], [target], "o", color=color, markersize=7, zorder=5)
    # Labels at the right end (x in axes coordinates), clear of the steep early curves.
    ax.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    ax.text(
        0.99,
        target - 0.002,
        f"target {target:.3f} (2 points under the baseline)",
        transform=ax.get_yaxis_transform(),
        ha="right",
        va="top",
        color="grey",
        fontsize=8,
    )
    ax.axhline(baseline, color="black", linewidth=0.8, linestyle="-.")
    ax.text(
        0.99,
        baseline + 0.006,
        f"LogisticRegression {baseline:.3f}",
        transform=ax.get_yaxis_transform(),
        ha="right",
        va="bottom",
        fontsize=8,
    )
    ax.set_ylim(0.80, 1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("wall-clock seconds")
    ax.set_ylabel("test accuracy (digits)")
    workers, factor = int(_count(info, "workers")), info["straggler_factor"]
    ax.set_title(
        f"{workers} workers, one a straggler at {factor:g}x the step time; 2 server shards "
        "(last of 3 rounds)",
        fontsize=10,
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, "accuracy-vs-time.png")


def _count(info: dict[str, Any], things: str) -> float:
    """``n_<things>``, or ``<things>`` in a report written before counts were named n_*."""
    return float(info[f"n_{things}"] if f"n_{things}" in info else info[things])


def pull_push(report: dict[str, Any]) -> Path:
    infos = _infos(report, "test_bench_pull_push_throughput")
    sizes = sorted({round(i["megabytes"]) for i in infos})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for shards in sorted({int(_count(i, "shards")) for i in infos}):
        rows = sorted(
            (round(i["megabytes"]), i) for i in infos if int(_count(i, "shards")) == shards
        )
        for ax, metric in ((left, "mb_per_s"), (right, "times_local_copy")):
            ax.plot(
                [m for m, _ in rows],
                [i[metric] for _, i in rows],
                "o-",
                color=SHARD_COLORS.get(shards),
                label=f"{shards} shard{'s' if shards > 1 else ''}",
            )
    floor = {round(i["megabytes"]): i["local_copy_mb_per_s"] for i in infos}
    left.plot(sizes, [floor[m] for m in sizes], "k--", label="local numpy copy")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{m} MB" for m in sizes])
        ax.minorticks_off()
        ax.set_xlabel("parameters")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=9)
    ticks = [10, 30, 100, 300, 1000, 3000, 10000, 30000]
    left.set_yticks(ticks, [f"{t:,}" for t in ticks])
    left.set_ylim(30, 30000)
    ticks = [10, 20, 50, 100, 200, 500]
    right.set_yticks(ticks, [f"{t}x" for t in ticks])
    right.set_ylim(10, 600)
    left.set_ylabel("MB/s moved (pull + push: twice the parameters)")
    left.set_title("pull+push throughput", fontsize=10)
    right.set_ylabel("pull+push time / local copy time")
    right.set_title("slower than a local copy of the same bytes, by", fontsize=10)
    fig.tight_layout()
    return _save(fig, "pull-push.png")


def overhead(report: dict[str, Any]) -> Path:
    (info,) = _infos(report, "test_bench_overhead_vs_numpy_loop")
    labels = ["numpy loop,\none process", "train(sync),\n1 worker", "train(sync),\n2 workers"]
    values = [
        info["numpy_ms_per_step"],
        info["ps_1_worker_ms_per_step"],
        info["ps_2_workers_ms_per_step"],
    ]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bars = ax.bar(labels, values, color=["#9e9e9e", "#3949ab", "#5c6bc0"])
    ratios = ["1x", f"{info['ps_1_worker_x_numpy']:.0f}x", f"{info['ps_2_workers_x_numpy']:.0f}x"]
    for bar, value, ratio in zip(bars, values, ratios, strict=True):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            value,
            f"{value:.2f} ms\n({ratio})",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_ylim(0, max(values) * 1.3)
    ax.set_ylabel("milliseconds per full-batch sgd step")
    ax.set_title(f"The same {int(info['steps'])} sgd steps on digits", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, "overhead.png")


def checkpoint(report: dict[str, Any]) -> Path:
    found = [
        (b["params"]["store_kind"], int(b["params"]["every"]), b["extra_info"])
        for b in report["benchmarks"]
        if b["name"].startswith("test_bench_checkpoint_cost") and b.get("extra_info")
    ]
    if not found:
        raise SystemExit("test_bench_checkpoint_cost: no figures in the report")
    stores = ["directory", "ray-kv"]
    everies = sorted({every for _, every, _ in found})
    cost = {(store, every): info for store, every, info in found}
    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(stores)
    colors = {"directory": "#6d4c41", "ray-kv": "#00838f"}
    names = {"directory": "DirectoryStore", "ray-kv": "RayKVStore"}
    for k, store in enumerate(stores):
        xs = [j + (k - (len(stores) - 1) / 2) * width for j in range(len(everies))]
        values = [cost[store, every]["checkpoint_cost_us_per_push"] / 1e3 for every in everies]
        bars = ax.bar(xs, values, width, color=colors[store], label=names[store])
        for bar, every in zip(bars, everies, strict=True):
            pct = cost[store, every]["checkpoint_cost_pct"]
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                max(bar.get_height(), 0),
                f"{pct:+.0f}%",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    plain = sorted(info["no_store_us_per_push"] / 1e3 for _, _, info in found)
    ax.set_xticks(range(len(everies)), [f"checkpoint_every={e}" for e in everies])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("ms added to each push")
    ax.set_title(
        "Checkpoint cost per push (labels: % of a push without a store, "
        f"{plain[len(plain) // 2]:.1f} ms)",
        fontsize=10,
    )
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, "checkpoint.png")


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REPORT
    data = json.loads(source.read_text(encoding="utf-8"))
    OUT.mkdir(parents=True, exist_ok=True)
    for draw in (accuracy_vs_time, pull_push, overhead, checkpoint):
        print(draw(data))
