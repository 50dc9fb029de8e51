"""``--format github``: GitHub Actions workflow commands, one annotation per finding.

Findings at or above --fail-on are errors, other problems warnings; each points at the
scanned source file (the lockfile or requirements file) so the annotation lands on it.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from ftaudit.model import Report, Status
from ftaudit.report.view import ignored_note, ordered, problems


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def _repo_relative(path: str) -> str:
    """GitHub places annotations by paths relative to the checkout (the job's directory)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def render_report(report: Report, fail_on: Collection[Status]) -> str:
    lines = []
    source = next((s.path for s in report.sources if s.kind != "environment"), None)
    location = f"file={_prop(_repo_relative(source))}," if source else ""
    for pkg in ordered(report.packages):
        dep = pkg.dependency
        for v in problems(pkg):
            level = "error" if v.status in fail_on and v.ignored is None else "warning"
            version = dep.version or v.version or ""
            title = f"{dep.display_name} {version}: {v.status.value} on {v.target.name}".strip()
            if len(report.platforms) > 1:
                title += f" ({v.platform})"
            message = v.reason + ignored_note(v)
            advice = [a.text for a in pkg.advice if v.target.name in a.targets]
            if advice:
                message += "\n" + "\n".join(advice)
            lines.append(f"::{level} {location}title={_prop(title)}::{_data(message)}")
    summary = report.summary()
    counts = "; ".join(
        f"{t}: " + ", ".join(f"{n} {s}" for s, n in c.items() if n) for t, c in summary.items()
    )
    lines.append(f"::notice title=ftaudit::{_data(counts or 'no packages')}")
    return "\n".join(lines) + "\n"
