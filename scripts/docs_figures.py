"""Measured figures on the tutorial pages, read from the results files at build time.

A page never types a measured figure. It writes a marker instead::

    {{ fig results.json benchmarks/test_online_learning[ray-actor]/stats/median | .3f }}

and this MkDocs hook (``hooks:`` in ``mkdocs.yml``) replaces the marker with the value
at that path of ``benchmarks/results/results.json`` (a name with a ``/`` is a
path from the repository root), formatted with the Python format
spec after ``|``. The path is split on ``/``: a dict is indexed by key, a list by
position, or, for a list of records, by the record whose ``name`` is the segment (the
shape of a pytest-benchmark report). A spec may start with ``*N`` to scale first
(``*1000 .1f`` shows seconds as milliseconds); ``ratio(A, B)`` instead of a path gives
``A / B`` for two paths of the same file.

``tests/test_docs.py`` resolves every marker of every page (a missing file or key
fails the test) and looks for measured figures typed in a page's prose; the same
functions are used here and there.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

MARKER = re.compile(
    r"\{\{\s*fig\s+(?P<file>[^\s|}]+)\s+(?P<path>[^|}]+?)\s*"
    r"(?:\|\s*(?P<spec>[^}]*?))?\s*\}\}"
)
RATIO = re.compile(r"^ratio\((?P<inner>.+)\)$")


class FigureError(LookupError):
    """A marker names a results file, a path or a format that does not exist."""


@cache
def _load(name: str) -> Any:
    # A bare name is a file of benchmarks/results/; a path, one from the repository root.
    path = ROOT / name if "/" in name else RESULTS / name
    if not path.is_file():
        msg = f"no results file {path.relative_to(ROOT)}"
        raise FigureError(msg)
    return json.loads(path.read_text(encoding="utf-8"))


def lookup(name: str, path: str) -> Any:
    """The value at ``path`` (segments split on ``/``) of results file ``name``."""
    node = _load(name)
    for segment in (part.strip() for part in path.strip().split("/")):
        if isinstance(node, dict):
            if segment not in node:
                msg = f"{name}: no key {segment!r} on the path {path!r}"
                raise FigureError(msg)
            node = node[segment]
        elif isinstance(node, list):
            if segment.lstrip("-").isdigit():
                node = node[int(segment)]
                continue
            named = [
                item for item in node if isinstance(item, dict) and item.get("name") == segment
            ]
            if len(named) != 1:
                msg = f"{name}: no single record named {segment!r} on the path {path!r}"
                raise FigureError(msg)
            node = named[0]
        else:
            msg = f"{name}: {path!r} goes past a value at {segment!r}"
            raise FigureError(msg)
    return node


def value(name: str, path: str) -> Any:
    """A path's value, or ``A / B`` for ``ratio(A, B)``."""
    if m := RATIO.match(path.strip()):
        inner = m["inner"]
        # Keys may hold commas: split at the comma that leaves two paths that resolve.
        for cut in [i for i, char in enumerate(inner) if char == ","]:
            try:
                top, bottom = lookup(name, inner[:cut]), lookup(name, inner[cut + 1 :])
            except FigureError:
                continue
            return float(top) / float(bottom)
        msg = f"{name}: {path!r} is not the ratio of two paths of the file"
        raise FigureError(msg)
    return lookup(name, path)


def render(name: str, path: str, spec: str | None) -> str:
    """The figure a marker stands for, as text."""
    found = value(name, path)
    spec = (spec or "").strip()
    if m := re.match(r"^\*(?P<scale>[-0-9.e]+)\s*", spec):
        found = float(found) * float(m["scale"])
        spec = spec[m.end() :]
    try:
        text = format(found, spec)
    except (TypeError, ValueError) as exc:
        msg = f"{name}: cannot format {path!r} ({found!r}) with {spec!r}: {exc}"
        raise FigureError(msg) from exc
    return text.replace("-", "\u2212") if text.startswith("-") else text


def substitute(markdown: str) -> str:
    """The page with every marker replaced by its figure."""
    return MARKER.sub(lambda m: render(m["file"], m["path"], m["spec"]), markdown)


def on_config(config: Any, **_: Any) -> Any:
    """MkDocs hook: read the results files afresh at every build (``mkdocs serve``)."""
    _load.cache_clear()
    return config


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: figures in, markers out."""
    return substitute(markdown)
