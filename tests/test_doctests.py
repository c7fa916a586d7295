"""Run the docstring examples of every module in ``patterns`` and ``launcher``.

The examples in docstrings are what mkdocstrings shows on the API reference
pages, so they must run. They may use Ray: the shared ``ray_cluster`` fixture
is connected before any of them runs. A module without examples passes; a
failing example fails the test named after its module.
"""

from __future__ import annotations

import doctest
import importlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("patterns", "launcher")
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Ray's driver prints messages the raylet pushes to it ("(raylet) WARNING: ...", retry
# notices after a fault test killed an actor) to sys.stdout from a background thread.
# doctest captures sys.stdout, so such a line lands in whichever example runs at that
# moment; it is not that example's output.
RAY_BACKGROUND_LINE = re.compile(
    r"^(?:\x1b\[\d+m)?\((?:raylet|autoscaler|pid=\d+)[^)]*\).*\n?", re.M
)


class IgnoringRayBackgroundLines(doctest.OutputChecker):
    """Compare outputs with Ray's background lines removed from what was printed."""

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return super().check_output(want, RAY_BACKGROUND_LINE.sub("", got), optionflags)


def module_names() -> list[str]:
    """Every module of the packages, found from the files (nothing imported yet)."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


def find_doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    # The finder keeps only objects defined in this module, so a class that a
    # package's __init__ re-exports is tested once, in the module defining it.
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    return [t for t in tests if t.examples]


@pytest.mark.parametrize("module_name", module_names())
def test_docstring_examples(module_name: str, ray_cluster: dict) -> None:
    runner = doctest.DocTestRunner(checker=IgnoringRayBackgroundLines(), optionflags=OPTIONS)
    report = io.StringIO()
    for test in find_doctests(module_name):
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed:\n{report.getvalue()}"


def test_patterns_have_docstring_examples() -> None:
    attempted = sum(
        len(t.examples)
        for name in module_names()
        if name.split(".")[0] == "patterns"
        for t in find_doctests(name)
    )
    assert attempted > 0, "no module of patterns has a docstring example"
