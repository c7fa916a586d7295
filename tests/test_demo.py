"""The tour `make demo` runs, on the shared cluster (launching is tested elsewhere)."""

from __future__ import annotations

import pytest

from launcher._demo import tour

pytestmark = pytest.mark.spark


def test_demo_tour_runs_every_step(ray_cluster: dict, capsys: pytest.CaptureFixture) -> None:
    if ray_cluster["launcher"] is None:
        pytest.fail("the demo needs the Ray-on-Spark cluster; unset RAP_TEST_RAY")
    shown = tour(ray_cluster["launcher"], quick=True)
    out = capsys.readouterr().out
    for step in range(1, shown + 1):
        assert f"== {step}. " in out
    assert "after two crashes the counter reads" in out
    assert "Spark summed 0..999,999 = 499,999,500,000" in out
    assert "the supervisor restarted left (restarts 1) and restored its count: 42" in out
    assert "Parameter server test accuracy" in out
    assert "feedbacks applied of 100 acknowledged" in out
    assert "came back as 42 forecast rows in a Spark DataFrame" in out
