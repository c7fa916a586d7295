"""Checks that keep the tutorials honest (cheap: no cluster, one quick build).

- Every ``--8<--`` include on a page names a file that exists and, when it
  names a section, a section marked in that file.
- Python shown on a page comes from an example that the examples runner
  (``tests/test_examples.py``) executes, and from a part of it that runs: not
  from the ``if __name__ == "__main__":`` block, which the runner skips. The
  one exception is a section named ``script-...``, which shows how the file
  starts a cluster of its own and must lie in that block.
- A Python code block on a page holds includes only, never inline code.
- Every name in ``patterns.__all__`` and ``launcher.__all__`` is rendered on the
  API reference pages: checked in the HTML of one build into a temporary
  directory (about two seconds), which must also produce no warning.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_examples import example_files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "tutorials"

# The include syntax of pymdownx.snippets: `--8<-- "path"` on one line, or a
# block of paths between two bare `--8<--` lines. A leading `;` escapes it.
INLINE = re.compile(r"""^\s*(?P<escape>;*)-+8<-+[ \t]+(?P<q>["'])(?P<target>.+?)(?P=q)\s*$""")
BLOCK = re.compile(r"^\s*(?P<escape>;*)-+8<-+\s*$")
# A path ends in `:section` (lower-case name) or in line ranges `:1:5,9:`.
SECTION_SUFFIX = re.compile(r"^(?P<path>.+?):(?P<section>[a-z][-_0-9a-z]*)$")
LINES_SUFFIX = re.compile(r"^(?P<path>.+?)(?P<lines>(?::-?\d*){1,2}(?:,-?\d*(?::-?\d*)?)*)$")
MARKER = re.compile(
    r"-+8<-+[ \t]+\[[ \t]*(?P<kind>start|end)[ \t]*:[ \t]*(?P<name>[^\]\s]+)[ \t]*\]"
)
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
PYTHON_LANGS = {"python", "py", "python3", "pycon"}
# Sections named `script-...` show how an example starts its own cluster when run
# as a program (`with RayOnSpark(): main()`); they are the one kind allowed in the
# `__main__` block. The shared test cluster is started through the same launcher.
SCRIPT_PREFIX = "script-"


@dataclass(frozen=True)
class Include:
    page: Path
    line: int
    path: str
    section: str | None

    def __str__(self) -> str:
        where = f"{self.page.relative_to(ROOT)}:{self.line}"
        return f"{where} includes {self.path}" + (f":{self.section}" if self.section else "")


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _split(target: str) -> tuple[str, str | None]:
    target = target.strip()
    if (m := SECTION_SUFFIX.match(target)) and not (ROOT / target).exists():
        return m["path"], m["section"]
    if (m := LINES_SUFFIX.match(target)) and not (ROOT / target).exists():
        return m["path"], None
    return target, None


def includes(page: Path) -> list[Include]:
    found = []
    in_block = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if m := INLINE.match(line):
            if not m["escape"]:
                found.append(Include(page, number, *_split(m["target"])))
        elif m := BLOCK.match(line):
            if not m["escape"]:
                in_block = not in_block
        elif in_block and line.strip():
            found.append(Include(page, number, *_split(line)))
    return found


def all_includes() -> list[Include]:
    return [inc for page in pages() for inc in includes(page)]


def sections(path: Path) -> dict[str, tuple[int, int]]:
    """Map each section name of a file to its (start, end) marker lines."""
    starts: dict[str, int] = {}
    spans: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not (m := MARKER.search(line)):
            continue
        name = m["name"]
        if m["kind"] == "start":
            assert name not in starts and name not in spans, (
                f"{path.name}:{number}: section '{name}' starts twice"
            )
            starts[name] = number
        else:
            assert name in starts, f"{path.name}:{number}: section '{name}' ends but never starts"
            spans[name] = (starts.pop(name), number)
    assert not starts, f"{path.name}: sections never closed: {sorted(starts)}"
    return spans


def main_block(path: Path) -> tuple[int, int] | None:
    """Line span of the file's `if __name__ == "__main__":` block, if any."""
    text = path.read_text(encoding="utf-8")
    body = ast.parse(text).body
    for i, node in enumerate(body):
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            # Comments (section markers) after its last statement still belong to it.
            end = body[i + 1].lineno - 1 if i + 1 < len(body) else len(text.splitlines())
            return node.lineno, end
    return None


def code_blocks(page: Path) -> list[tuple[int, str, list[str]]]:
    """Fenced blocks of a page as (first line, language, body lines)."""
    blocks = []
    open_fence: tuple[int, str, str, str] | None = None
    body: list[str] = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        m = FENCE.match(line)
        if open_fence is None:
            if m:
                info = m["info"].strip().lstrip("{").strip()
                lang = re.split(r"[\s}]", info)[0].lstrip(".").lower() if info else ""
                open_fence = (number, m["indent"], m["fence"], lang)
                body = []
        elif m and m["fence"].startswith(open_fence[2]) and not m["info"].strip():
            blocks.append((open_fence[0], open_fence[3], body))
            open_fence = None
        else:
            body.append(line)
    assert open_fence is None, f"{page.name}:{open_fence and open_fence[0]}: unclosed code fence"
    return blocks


def test_pages_exist() -> None:
    assert (DOCS / "index.md").is_file()
    assert any(all_includes()), "no page includes an example: the course shows no tested code"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_included_files_and_sections_exist(page: Path) -> None:
    for inc in includes(page):
        target = ROOT / inc.path
        assert target.is_file(), f"{inc}: no such file"
        if inc.section:
            assert inc.section in sections(target), f"{inc}: no section '{inc.section}' there"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_included_code_is_run_by_the_examples_runner(page: Path) -> None:
    run = {p.relative_to(ROOT).as_posix() for p in example_files()}
    for inc in includes(page):
        if not inc.path.endswith(".py"):
            continue  # data a page shows (e.g. benchmark results), not code
        assert Path(inc.path).as_posix() in run, (
            f"{inc}: Python on a page must come from an example that tests/test_examples.py "
            f"runs (examples/*.py, not starting with '_')"
        )
        if not inc.section:
            continue
        target = ROOT / inc.path
        start, end = sections(target)[inc.section]
        block = main_block(target)
        inside = block is not None and block[0] <= start and end <= block[1]
        outside = block is None or end < block[0] or start > block[1]
        if inc.section.startswith(SCRIPT_PREFIX):
            assert inside, f"{inc}: a '{SCRIPT_PREFIX}' section must lie in the `__main__` block"
        else:
            assert outside, (
                f"{inc}: the section reaches into the `__main__` block, which the runner does "
                f"not run; move the code into main() (or name it '{SCRIPT_PREFIX}...' if it "
                "only shows how the file starts its own cluster)"
            )


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_python_blocks_hold_includes_only(page: Path) -> None:
    for first, lang, body in code_blocks(page):
        if lang not in PYTHON_LANGS:
            continue
        inline = [
            line for line in body if line.strip() and not (INLINE.match(line) or BLOCK.match(line))
        ]
        # Lines between two bare `--8<--` markers are paths, not code.
        if any(BLOCK.match(line) for line in body):
            inline = []
        assert not inline, (
            f"{page.relative_to(ROOT)}:{first}: a Python block holds code no test runs; "
            f"put it in examples/ and include a section instead: {inline[:3]}"
        )


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_sections_are_well_formed(path: Path) -> None:
    for name in sections(path):
        assert re.fullmatch(r"[a-z][-_0-9a-z]*", name), (
            f"{path.name}: section name '{name}' must be lower case (snippets ignores others)"
        )


REFERENCE_PAGES = [("launcher", "reference/launcher.md"), ("patterns", "reference/patterns.md")]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Build the site once (about two seconds) into a temporary directory."""
    site = tmp_path_factory.mktemp("site")
    # Not --strict here, so the rendered pages exist even when a warning does;
    # test_site_builds_without_warnings turns warnings into a failure instead.
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--no-strict", "--site-dir", str(site)],
        cwd=ROOT,  # snippets' base_path "." is the repository root
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stdout}\n{result.stderr}"
    return site, result.stdout + result.stderr


def test_site_builds_without_warnings(built_site: tuple[Path, str]) -> None:
    _, log = built_site
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "mkdocs build --strict would fail:\n" + "\n".join(warnings)


@pytest.mark.parametrize(("package", "page"), REFERENCE_PAGES)
def test_api_reference_has_the_package_directive(package: str, page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    directive = re.search(rf"^:::\s+{package}\s*$(?P<options>(?:\n[ \t]+.*)*)", text, re.M)
    assert directive, f"{page} must hold the directive '::: {package}'"
    # Options that would hide names listed in __all__.
    assert "members:" not in directive["options"], f"{page}: let __all__ choose the members"


@pytest.mark.parametrize(("package", "page"), REFERENCE_PAGES)
def test_api_reference_renders_every_public_name(
    package: str, page: str, built_site: tuple[Path, str]
) -> None:
    module = importlib.import_module(package)
    public = list(getattr(module, "__all__", []))
    for name in public:
        assert hasattr(module, name), f"{package}.__all__ lists '{name}', which is not defined"
    html = (built_site[0] / page).with_suffix(".html").read_text(encoding="utf-8")
    missing = [name for name in public if f'id="{package}.{name}"' not in html]
    assert not missing, f"{page} does not render {package}.{missing} from __all__"


# --- measured figures: generated from benchmarks/results/, never typed ----------------------

sys.path.insert(0, str(ROOT / "scripts"))
import docs_figures  # noqa: E402  (the MkDocs hook: one implementation for the build and here)

# A measured figure in prose: a number with a unit of time, a ratio or a share
# (`2.28 s`, `0.88x`, `+5.6 %`, `1,980 x`, `250 ms`). Code spans, markers, includes
# and fenced blocks are not prose.
TYPED_FIGURE = re.compile(
    r"(?<![\w.\-/^])[-+\u2212]?\d[\d,]*(?:\.\d+)?\s?(?:ms|µs|s|x|\u00d7|%|seconds|minutes)(?![\w/])"
)
# Numbers with a unit that are settings, limits or sizes a reader chooses, not
# measurements (a `timeout` of 60 s, an ideal 2x on two slots, a sleep of 1 s; Ray on
# Spark's fixed waits and polls, the planner's 80 % memory budget and 30 % object store).
NOT_MEASURED = re.compile(
    r"^(?:1 s|2x|60 s|60 seconds|1 x|5 s|30 s|15 s|10 %|5 %|0\.5 s|10 minutes|3 times|5 ms"
    r"|80 %|30 %|20 s|3 s|10 s|0\.1 s|0\.2 s|120 s|300 s)$"
)
# Pages whose figures all come through markers or included results files.
FIGURES_FROM_RESULTS = [
    "index.md",
    "concepts.md",
    "fault-tolerance.md",
    "benchmarks.md",
    "ray-on-spark.md",
    "many-hosts.md",
    "ray-libraries.md",
    "glossary.md",
    "choosing.md",
    "production.md",
    "anti-patterns.md",
    "patterns/index.md",
    "patterns/counters.md",
    "patterns/actor-trees.md",
    "patterns/agents.md",
    "patterns/parameter-servers.md",
    "patterns/spark-bridge.md",
]


def prose(text: str) -> list[tuple[int, str]]:
    """The lines of a page a reader reads as text, with code spans and markers removed."""
    lines = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or INLINE.match(line) or BLOCK.match(line):
            continue
        line = docs_figures.MARKER.sub("", line)
        line = re.sub(r"`[^`]*`", "", line)
        line = re.sub(r"\]\([^)]*\)", "]", line)  # link targets
        lines.append((number, line))
    return lines


def typed_figures(text: str) -> list[tuple[int, str]]:
    """Measured-looking figures typed in a page's prose, as (line, figure)."""
    return [
        (number, m.group(0))
        for number, line in prose(text)
        for m in TYPED_FIGURE.finditer(line)
        if not NOT_MEASURED.match(m.group(0).strip())
    ]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_figure_marker_resolves_in_its_results_file(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for m in docs_figures.MARKER.finditer(text):
        try:
            docs_figures.render(m["file"], m["path"], m["spec"])
        except docs_figures.FigureError as exc:
            pytest.fail(f"{page.relative_to(ROOT)}: {m.group(0)}: {exc}")
    left = re.findall(r"\{\{\s*fig\b[^}]*\}?\}?", docs_figures.MARKER.sub("", text))
    assert not left, f"{page.relative_to(ROOT)}: malformed figure markers {left}"


@pytest.mark.parametrize("name", FIGURES_FROM_RESULTS)
def test_page_types_no_measured_figure(name: str) -> None:
    page = DOCS / name
    assert page.is_file(), f"{name} is listed but does not exist"
    typed = typed_figures(page.read_text(encoding="utf-8"))
    assert not typed, (
        f"{name} types measured figures by hand; quote them from benchmarks/results/ "
        f"with {{{{ fig FILE PATH | SPEC }}}} (scripts/docs_figures.py): {typed[:8]}"
    )


def test_the_figure_checks_fail_on_a_planted_figure() -> None:
    page = (DOCS / "patterns" / "counters.md").read_text(encoding="utf-8")
    assert not typed_figures(page)
    planted = page.replace("## Benchmark figures", "## Benchmark figures\n\nIt took 3.14 s.")
    assert typed_figures(planted) == [
        (page.splitlines().index("## Benchmark figures") + 3, "3.14 s")
    ]
    # A marker whose key the results file does not hold fails the build and the test.
    with pytest.raises(docs_figures.FigureError, match="no key"):
        docs_figures.substitute("{{ fig counters.json rap/no_such_figure }}")
    with pytest.raises(docs_figures.FigureError, match="no results file"):
        docs_figures.substitute("{{ fig not_measured.json rap/date }}")


def test_figures_on_the_built_page_equal_their_results_file(built_site: tuple[Path, str]) -> None:
    html = (built_site[0] / "patterns" / "counters.html").read_text(encoding="utf-8")
    assert "{{ fig" not in html, "a figure marker reached the reader"
    speedup = docs_figures.lookup(
        "counters.json", "benchmarks/test_bench_sharded_batched/extra_info/batching_speedup_x"
    )
    assert f"{speedup:,.0f} x" in html


# --- results files are not older than the code that measured them --------------------------

# Each results file the pages quote, and the code that writes it. A results file is
# stale when a commit changed its writer after the last commit of the file itself.
RESULTS_WRITERS = {
    "results.json": [
        "benchmarks/_engines.py",
        "benchmarks/_workloads.py",
        "benchmarks/_harness.py",
        "benchmarks/launch_timing.py",
        *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("benchmarks/test_engines_*.py")),
    ],
    "spark_bridge.json": [
        "benchmarks/test_spark_bridge_bench.py",
        "benchmarks/test_engines_ray_in_spark.py",
    ],
    "counters.json": ["benchmarks/test_counters_bench.py", "scripts/record_bench.py"],
    "spark_datasets.json": ["benchmarks/test_spark_datasets_bench.py"],
    "launch_timing.json": ["benchmarks/launch_timing.py"],
    "soak.json": ["scripts/soak.py"],
    "trees.json": ["benchmarks/test_trees_bench.py"],
    "trees_tasks.json": ["scripts/trees_task_count.py"],
    "parameter_servers.json": ["benchmarks/test_parameter_servers_bench.py"],
    "agents.json": ["benchmarks/test_agents_bench.py"],
    "agents_latency.json": ["benchmarks/test_agents_bench.py"],
    "agents_figures.json": ["benchmarks/agents_figures.py"],
    "agents_replicas.json": ["benchmarks/agents_replica_table.py"],
    "hosts.json": [
        "tests/hosts/conftest.py",
        "tests/hosts/_driver.py",
        "tests/hosts/test_launcher_hosts.py",
    ],
}
# Results whose writer changed after the run (mostly API renames in the benchmark code,
# not what it measures) and that wait for a re-run on a quiet machine. The test fails
# when one of them is fresh again, so the list cannot outlive the re-run.
# results.json: workload 5 now measures 2 rounds per engine instead of 5.
RERUN_PENDING = {
    "results.json",
    "agents.json",
    "agents_latency.json",
}


def _last_commit_time(path: str) -> int:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%ct", "--", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out, f"{path} has no commit: commit it before its figures are quoted"
    return int(out)


@pytest.mark.parametrize("name", sorted(RESULTS_WRITERS))
def test_results_file_is_not_older_than_its_benchmark_code(name: str) -> None:
    results = _last_commit_time(f"benchmarks/results/{name}")
    newer = [w for w in RESULTS_WRITERS[name] if _last_commit_time(w) > results]
    if name in RERUN_PENDING:
        assert newer, f"{name} is fresh again: remove it from RERUN_PENDING"
    else:
        assert not newer, f"benchmarks/results/{name} is older than {newer}: run it again"


def test_every_quoted_results_file_has_a_writer() -> None:
    quoted = {
        m["file"]
        for page in pages()
        for m in docs_figures.MARKER.finditer(page.read_text(encoding="utf-8"))
        if "/" not in m["file"]
    }
    assert quoted <= set(RESULTS_WRITERS), f"no writer listed for {quoted - set(RESULTS_WRITERS)}"
