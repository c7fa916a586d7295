"""The replicas table of the agents page: ``python -m benchmarks.agents_replica_table``.

No cluster: it runs the tests' simulation of `AgentReplicas` on the plain LinUCB state
class (``tests.test_agents._SimulatedReplicas``, which
``tests/test_agents_cluster.py`` checks the actors reproduce action for action) with
the tests' stated configuration: 5 actions, 10 features, noise 1.0, 3,000 rounds,
one feedback per round, cumulative regret summed over seeds 0 to 5.

It writes ``benchmarks/results/agents_replicas.json`` (the figures) and
``agents_replicas.md`` (the table the page includes). The acceptance tests in
``tests/test_agents.py`` recompute the rows they assert on and check them against
the JSON, so the page cannot drift from the tests. It takes about 30 s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TABLE_JSON = RESULTS / "agents_replicas.json"  # tests.test_agents reads it too

NEVER = 10**9
# (replicas, sync_every, goal against one agent as a fraction, or None)
SETUPS: list[tuple[int, int, float | None]] = [
    (4, 20, 0.10),
    (8, 4, 0.05),
    (8, 5, 0.05),
    (8, 6, 0.05),
    (8, 8, 0.05),
    (8, 20, 0.05),
    (4, NEVER, None),
]
ROUNDS = 3_000


def row_name(replicas: int, sync_every: int) -> str:
    """The key of a setup in the JSON (the tests look rows up by it)."""
    if sync_every >= NEVER:
        return f"{replicas} replicas that never merge"
    return f"{replicas} replicas, merge every {sync_every}"


def compute() -> dict[str, Any]:
    from patterns.agents._state import LinUCBState
    from tests.test_agents import REPLICA_SEEDS, _replica_regrets, _SimulatedReplicas

    one = sum(_replica_regrets(lambda: LinUCBState(5, 10)))
    rows: dict[str, Any] = {
        "one LinUCB agent": {"replicas": 1, "sync_every": None, "regret": one, "merges": 0}
    }
    for replicas, sync_every, goal in SETUPS:
        regret = sum(_replica_regrets(lambda r=replicas, s=sync_every: _SimulatedReplicas(r, s)))
        rows[row_name(replicas, sync_every)] = {
            "replicas": replicas,
            "sync_every": None if sync_every >= NEVER else sync_every,
            "regret": regret,
            "against_one": regret / one - 1.0,
            "goal": goal,
            "merges": 0 if sync_every >= NEVER else ROUNDS // sync_every,
        }
        print(f"{row_name(replicas, sync_every):32} {regret:8.1f} {regret / one - 1:+.1%}")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "configuration": (
            "LinUCB (alpha 1), 5 actions, 10 features, noise 1.0, "
            f"{ROUNDS:,} rounds, seeds {REPLICA_SEEDS.start} to {REPLICA_SEEDS.stop - 1} summed"
        ),
        "rounds": ROUNDS,
        "rows": rows,
    }


def markdown(table: dict[str, Any]) -> str:
    lines = [
        "| Setup | Cumulative regret, 6 seeds | Against one agent | Merges in 3,000 feedbacks |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in table["rows"].items():
        if row["replicas"] == 1:
            lines.append(f"| {name[0].upper()}{name[1:]} | {row['regret']:,.0f} | | |")
            continue
        against = f"{100 * row['against_one']:+.1f} %"
        goal = row["goal"]
        if goal is not None:
            met = "met" if row["against_one"] <= goal else "missed"
            against = f"{against} (target: within {100 * goal:.0f} %, {met})"
        lines.append(
            f"| {name[0].upper()}{name[1:]} | {row['regret']:,.0f} | {against} "
            f"| {row['merges']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    table = compute()
    TABLE_JSON.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "agents_replicas.md").write_text(markdown(table), encoding="utf-8")
    print(markdown(table))


if __name__ == "__main__":
    main()
