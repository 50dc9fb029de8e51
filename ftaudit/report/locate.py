"""Where each package is named in the scanned source file: the line a CI annotation or a
SARIF result points at. Read at the edge (the file is read again, bounded), so the
renderers stay pure functions of the report and these locations."""

from __future__ import annotations

import os
import re
from pathlib import Path

from packaging.utils import canonicalize_name

from ftaudit.errors import FtauditError
from ftaudit.model import Location, Report
from ftaudit.report.view import chains
from ftaudit.sources.textfile import read_text

MAX_SOURCE_BYTES = 64 * 1024 * 1024
_TOML_NAME = re.compile(r'^\s*name\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)
_JSON_KEY = re.compile(r'^\s*"([A-Za-z0-9][A-Za-z0-9._-]*)"\s*:\s*\{', re.MULTILINE)
_REQUIREMENT = re.compile(r'["\']\s*([A-Za-z0-9][A-Za-z0-9._-]*)')
# A requirements line starts with the name (options, comments and continuations do not).
_REQUIREMENT_LINE = re.compile(r"^[ \t]*([A-Za-z0-9][A-Za-z0-9._-]*)", re.MULTILINE)
_ORIGIN = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")


def locations(report: Report) -> dict[str, Location]:
    """Package name -> where the source names it (the file alone when no line is found;
    nothing for an installed environment, which has no file to point at)."""
    files = [s for s in report.sources if s.kind != "environment"]
    if not files:
        return {}
    source = files[0]
    out: dict[str, Location] = {}
    for pkg in report.packages:  # a requirements line the parser recorded
        for who, _spec in pkg.dependency.requirements:
            if m := _ORIGIN.match(who):
                out.setdefault(pkg.dependency.name, Location(path=m["path"], line=int(m["line"])))
    for file in files:
        lines = _named_lines(Path(file.path), file.kind)
        for pkg in report.packages:
            if pkg.dependency.name in lines:
                out.setdefault(
                    pkg.dependency.name, Location(path=file.path, line=lines[pkg.dependency.name])
                )
    # A package the file does not name is there because a named one requires it.
    for pkg in report.packages:
        name = pkg.dependency.name
        if name in out:
            continue
        heads = [canonicalize_name(c[0]) for c in chains(report, name, limit=5) if c]
        out[name] = next((out[h] for h in heads if h in out), Location(path=source.path, line=None))
    return out


def _named_lines(path: Path, kind: str) -> dict[str, int]:
    try:
        text = read_text(path, limit=MAX_SOURCE_BYTES, what="a source file")
    except FtauditError:
        return {}  # the scan read it a moment ago; an annotation without a line is fine
    if kind == "requirements":
        pattern = _REQUIREMENT_LINE
    elif path.name == "Pipfile.lock":
        pattern = _JSON_KEY
    elif path.name == "pyproject.toml":
        pattern = _REQUIREMENT
    else:
        pattern = _TOML_NAME
    out: dict[str, int] = {}
    line, pos = 1, 0
    for m in pattern.finditer(text):
        line += text.count("\n", pos, m.start(1))
        pos = m.start(1)
        out.setdefault(canonicalize_name(m[1]), line)
    return out


def repo_relative(path: str) -> str:
    """CI places findings by paths relative to the checkout (the job's directory)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else Path(rel).as_posix()
