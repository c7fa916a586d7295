"""What the "Ray libraries on Spark" page promises beyond what its examples assert.

The examples themselves (``examples/ray_libraries_*.py``) run in ``tests/test_examples.py``:
the Tune search once, the MLflow runs once.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("mlflow", "sqlalchemy", "alembic")  # the `mlflow` extra


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_patterns_never_import_the_mlflow_extra() -> None:
    """Logging lives in the user's actors: no module of `patterns` imports MLflow, even lazily."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & set(OPTIONAL))
        for path in sorted((ROOT / "patterns").rglob("*.py"))
    }
    assert len(offenders) > 10, "patterns/ holds fewer modules than expected: wrong folder?"
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_import_check_sees_lazy_imports() -> None:
    """A known positive: the MLflow example imports MLflow only inside its functions."""
    example = ROOT / "examples" / "ray_libraries_mlflow.py"
    assert "mlflow" in _imported_roots(example)
