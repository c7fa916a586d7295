"""The public surface of ``patterns``: ``__all__``, docstrings, and what importing it pulls in."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import patterns

ROOT = Path(__file__).resolve().parents[1]


def _family_modules() -> list[str]:
    """The public modules whose names ``patterns`` re-exports (private ones start with ``_``;
    ``patterns.testing``, the facade contract for users' own patterns, stays a module of
    its own, as scikit-learn's ``check_estimator`` does)."""
    return sorted(
        f"patterns.{m.name}"
        for m in pkgutil.iter_modules(patterns.__path__)
        if not m.name.startswith("_") and m.name != "testing"
    )


def test_all_lists_exactly_the_families_public_names() -> None:
    exported = list(patterns.__all__)
    assert len(exported) == len(set(exported)), "duplicates in patterns.__all__"
    expected = set()
    for name in _family_modules():
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} must declare __all__"
        expected |= set(module.__all__)
    assert set(exported) == expected
    # The lazy loader knows where each name lives, and nothing else.
    for module, names in patterns._MODULES.items():
        assert set(names) == set(importlib.import_module(module).__all__), module
    for name in exported:
        assert getattr(patterns, name) is not None
        assert not name.startswith("_")


def test_counters_and_checkpointing_names_are_exported() -> None:
    for name in (
        "Counter",
        "ShardedCounter",
        "CheckpointStore",
        "Checkpoint",
        "DirectoryStore",
        "RayKVStore",
    ):
        assert name in patterns.__all__


def test_public_objects_are_documented_with_examples() -> None:
    for name in patterns.__all__:
        obj = getattr(patterns, name)
        doc = inspect.getdoc(obj) or ""
        assert doc, f"patterns.{name} has no docstring"
        if inspect.isclass(obj):
            assert "Examples:" in doc, f"patterns.{name} has no Examples: section"
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                assert inspect.getdoc(member), f"patterns.{name}.{attr} has no docstring"


def test_import_never_pulls_in_pyspark_or_launcher() -> None:
    """A clean interpreter imports every patterns module and checks sys.modules."""
    code = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        sys.path.insert(0, sys.argv[1])
        import patterns
        for m in pkgutil.walk_packages(patterns.__path__, "patterns."):
            importlib.import_module(m.name)
        banned = sorted(
            name for name in sys.modules if name.split(".")[0] in ("pyspark", "launcher")
        )
        print(json.dumps({"banned": banned, "patterns": patterns.__file__}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["patterns"]).resolve().is_relative_to(ROOT)
    assert report["banned"] == []


def test_launcher_imports_no_pattern_family() -> None:
    """Every launcher module imports in a clean interpreter without any pattern family.

    The launcher shares only the argument checks (``patterns._checks``); the demo's
    pattern steps (``patterns._tour``) are imported when the demo runs, not before.
    """
    code = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        sys.path.insert(0, sys.argv[1])
        import launcher
        for m in pkgutil.walk_packages(launcher.__path__, "launcher."):
            importlib.import_module(m.name)
        families = sorted(
            name for name in sys.modules
            if name.startswith("patterns.") and not name.split(".")[1].startswith("_")
        )
        print(json.dumps({"families": families, "tour": "patterns._tour" in sys.modules}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"families": [], "tour": False}
