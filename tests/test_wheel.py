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


def _install(wheel: Path, tmp_path: Path, constraints: str, extras: str = "") -> Path:
    """A fresh virtual environment outside the checkout with ``wheel`` installed; its python."""
    venv = tmp_path / "venv"
    subprocess.run(
        [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        timeout=TIMEOUT,
    )
    python = venv / "bin" / "python"
    pins = tmp_path / "constraints.txt"
    pins.write_text(constraints)
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(python),
         "--constraint", str(pins), f"{wheel}{extras}"],
        check=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    return python


def _run_outside(python: Path, script: str, tmp_path: Path) -> str:
    """Run ``script`` from the temporary folder, no PYTHONPATH: only the wheel is found."""
    # No RAY_* either: the session's cluster exports RAY_ADDRESS (ray.init would join it).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("RAY_")
    }
    result = subprocess.run(
        [str(python), "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


def _plan_from_the_cli(python: Path, tmp_path: Path) -> str:
    # No RAY_* either: the session's cluster exports RAY_ADDRESS (ray.init would join it).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("RAY_")
    }
    return subprocess.run(
        [str(python.with_name("actor-patterns")), "plan", "--workers", "2",
         "--cores-per-worker", "4", "--memory-per-worker-gb", "16"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=TIMEOUT,
    ).stdout  # fmt: skip


@pytest.mark.slow
def test_wheel_installs_and_imports_every_public_name(wheel: Path, tmp_path: Path) -> None:
    # Installed with the versions this environment runs (the lock's), from uv's cache.
    pins = subprocess.run(
        [str(UV), "pip", "freeze", "--python", sys.executable],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    python = _install(
        wheel,
        tmp_path,
        "\n".join(
            line
            for line in pins.splitlines()
            if "ray-actor-patterns" not in line and not line.startswith("-e ")
        ),
    )
    out = _run_outside(
        python,
        """
        import json, sys
        import launcher, patterns
        names = {}
        for module in (patterns, launcher):
            for name in module.__all__:
                getattr(module, name)
            names[module.__name__] = module.__file__
        print(json.dumps(names))
        """,
        tmp_path,
    )
    venv = python.parent.parent
    for module, path in json.loads(out).items():
        assert str(venv) in path, f"{module} imported from {path}, not from the wheel"
    assert "max_worker_nodes" in _plan_from_the_cli(python, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_wheel_with_the_lowest_supported_versions_runs_a_pattern(
    wheel: Path, tmp_path: Path
) -> None:
    """The lowest Ray and PySpark pyproject.toml declares (requirements/compat.txt's pins):
    the wheel installs, a Counter counts on a plain local Ray, and the planner's CLI runs."""
    pins = (ROOT / "requirements" / "compat.txt").read_text()
    python = _install(wheel, tmp_path, pins, extras="[spark]")
    out = _run_outside(
        python,
        """
        import os
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import pyspark, ray
        from patterns import Counter
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        try:
            with Counter(start=5) as counter:
                for _ in range(3):
                    counter.increment()
                print(ray.__version__, pyspark.__version__, counter.value(), Counter.__module__)
        finally:
            ray.shutdown()
        """,
        tmp_path,
    )
    ray_version, spark_version, value, module = out.split()[-4:]
    expected = {
        line.split("==")[0].split("[")[0]: line.split("==")[1].strip()
        for line in pins.splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    assert (ray_version, spark_version) == (expected["ray"], expected["pyspark"])
    assert value == "8"
    assert module.startswith("patterns.")
    assert "max_worker_nodes" in _plan_from_the_cli(python, tmp_path)
