"""The multi-host lab (scripts/lab.py), one per session, for the tests in this folder.

They need root and network namespaces. Elsewhere they skip saying what is missing;
under ``CI=true`` that skip fails the run instead: CI runs as root, so it can never
go green without them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

LAB_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lab.py"


def load_lab_module() -> ModuleType:
    """scripts/lab.py as a module (scripts/ is not a package)."""
    if "rap_lab" not in sys.modules:
        spec = importlib.util.spec_from_file_location("rap_lab", LAB_SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["rap_lab"] = module
        spec.loader.exec_module(module)
    return sys.modules["rap_lab"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hosts)
            item.add_marker(pytest.mark.spark)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """A running lab: namespaces, Spark master and three workers; all removed at the end."""
    module = load_lab_module()
    missing = module.missing_requirements()
    if missing:
        reason = "the multi-host lab needs " + "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: a skip here would hide the multi-host tests)")
        pytest.skip(reason)
    # SIGTERM (a CI timeout) ends the session like Ctrl-C: the lab comes down.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    try:
        # 3-core workers: a 2-CPU Ray worker node (the hybrid plan in _driver.py) leaves
        # one Spark task slot on every worker host, and no room for a second Ray node there.
        lab = module.start_lab(tmp_path_factory.mktemp("lab"), worker_cores=3)
    except BaseException:
        # The rest of the session must not turn a SIGTERM into Ctrl-C (it ended a whole
        # run once, tests later, after the lab failed to start).
        signal.signal(signal.SIGTERM, previous)
        raise
    FIGURES["lab_up_s"] = round(time.monotonic() - began, 1)
    try:
        yield lab
    finally:
        stopping = time.monotonic()
        problems = lab.down()
        FIGURES["lab_down_s"] = round(time.monotonic() - stopping, 1)
        FIGURES["lab_session_s"] = round(time.monotonic() - began, 1)  # up, every test, down
        _write_figures()
        signal.signal(signal.SIGTERM, previous)
        assert not problems, problems


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# Figures measured in the lab, written to $RAP_HOSTS_RESULTS (a JSON file) when set:
# benchmarks/results/hosts.json and the many-hosts page come from such a run.
FIGURES: dict[str, object] = {}


def _write_figures() -> None:
    target = os.environ.get("RAP_HOSTS_RESULTS")
    if target:
        figures = {
            "machine": {"cores": os.cpu_count()},
            # None: the JVMs' defaults, as users run them (`make test` runs them light).
            "jvm_options": os.environ.get("JDK_JAVA_OPTIONS"),
            "source": "RAP_HOSTS_RESULTS=<this file> pytest tests/hosts (one lab, one launch)",
            "seconds": FIGURES,
        }
        Path(target).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
