"""The built wheel is the project: every module is in it, and every public name imports.

``make`` installs the project editable, so a package missing from the wheel never shows
there. These tests build the wheel as a user's ``pip install .`` would, check its files
against the source tree, install it into a fresh virtual environment outside the
checkout and import every public name from it (no repository files on the path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).with_name("uv")
TIMEOUT = 600


def _source_modules() -> set[str]:
    found = set()
    for package in ("patterns", "launcher"):
        for path in (ROOT / package).rglob("*.py"):
            found.add(path.relative_to(ROOT).as_posix())
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info/ next to the sources.
    source = tmp_path_factory.mktemp("source")
    for package in ("patterns", "launcher"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [str(UV), "build", "--wheel", "--out-dir", str(out), "--quiet", str(source)],
        check=True,
        timeout=TIMEOUT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    (built,) = out.glob("ray_actor_patterns-*.whl")
    return built


def test_wheel_holds_every_module_and_the_typing_markers(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = sorted(_source_modules() - names)
    assert not missing, f"modules left out of the wheel: {missing}"
    assert {"patterns/py.typed", "launcher/py.typed"} <= names
    assert not any(name.startswith(("tests/", "examples/", "benchmarks/")) for name in names)


@pytest.mark.slow
def test_wheel_installs_and_imports_every_public_name(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run(
        [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        timeout=TIMEOUT,
    )
    python = venv / "bin" / "python"
    # Installed with the versions this environment runs (the lock's), from uv's cache.
    pins = subprocess.run(
        [str(UV), "pip", "freeze", "--python", sys.executable],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "\n".join(
            line
            for line in pins.splitlines()
            if "ray-actor-patterns" not in line and not line.startswith("-e ")
        )
    )
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(python),
         "--constraint", str(constraints), str(wheel)],
        check=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    script = textwrap.dedent(
        """
        import json, sys
        import launcher, patterns
        names = {}
        for module in (patterns, launcher):
            for name in module.__all__:
                getattr(module, name)
            names[module.__name__] = module.__file__
        print(json.dumps(names))
        """
    )
    # Run from the temporary folder, with no PYTHONPATH: only the installed wheel is found.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(python), "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=TIMEOUT,
    )
    files = json.loads(result.stdout)
    for module, path in files.items():
        assert str(venv) in path, f"{module} imported from {path}, not from the wheel"
    cli = subprocess.run(
        [str(venv / "bin" / "actor-patterns"), "plan", "--workers", "2",
         "--cores-per-worker", "4", "--memory-per-worker-gb", "16"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=TIMEOUT,
    )  # fmt: skip
    assert "max_worker_nodes" in cli.stdout
