"""``--format github``: GitHub Actions workflow commands.

GitHub shows at most 10 annotations of each kind per step and drops the rest without a
word, so ftaudit emits one per package, the most severe first, at most 10, each at the
line of the lock or requirements entry; the complete report goes to the step summary
(written by the command line when ``$GITHUB_STEP_SUMMARY`` is set).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from ftaudit.model import Location, PackageReport, Report, Status
from ftaudit.report.locate import repo_relative
from ftaudit.report.view import ATTENTION, ignored_note, problems, where

MAX_ANNOTATIONS = 10


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def failing_package(pkg: PackageReport, fail_on: Collection[Status]) -> bool:
    return any(v.status in fail_on and v.ignored is None for v in problems(pkg))


def findings(report: Report, fail_on: Collection[Status]) -> list[PackageReport]:
    """Packages with a problem: those that fail the run first, then by severity, name."""
    found = [p for p in report.packages if problems(p)]
    return sorted(
        found,
        key=lambda p: (
            not failing_package(p, fail_on),
            min(ATTENTION.index(v.status) for v in problems(p)),
            p.dependency.name,
        ),
    )


def render_report(
    report: Report,
    fail_on: Collection[Status],
    located: Mapping[str, Location] | None = None,
    *,
    summary_written: bool = False,
) -> str:
    located = located or {}
    lines = []
    found = findings(report, fail_on)
    for pkg in found[:MAX_ANNOTATIONS]:
        lines.append(_annotation(report, pkg, fail_on, located.get(pkg.dependency.name)))
    rest = len(found) - MAX_ANNOTATIONS
    summary = report.summary()
    counts = "; ".join(
        f"{t}: " + ", ".join(f"{n} {s}" for s, n in c.items() if n) for t, c in summary.items()
    )
    if rest > 0:
        whereto = "the job summary" if summary_written else "the full report (--format markdown)"
        counts += f"; {rest} more packages with findings than GitHub annotates: see {whereto}"
    lines.append(f"::notice title=ftaudit::{_data(counts or 'no packages')}")
    return "\n".join(lines) + "\n"


def _annotation(
    report: Report, pkg: PackageReport, fail_on: Collection[Status], at: Location | None
) -> str:
    dep = pkg.dependency
    bad = problems(pkg)
    level = "error" if failing_package(pkg, fail_on) else "warning"
    statuses = sorted({v.status for v in bad}, key=ATTENTION.index)
    version = dep.version or next((v.version for v in bad if v.version), "") or ""
    spots = {
        s: ", ".join(dict.fromkeys(where(v, report) for v in bad if v.status is s))
        for s in statuses
    }
    title = (
        f"{dep.display_name} {version}".strip()
        + ": "
        + ", ".join(f"{s.value} on {spots[s]}" for s in statuses)
    )
    # One line per distinct reason, naming the targets it holds for.
    reasons: dict[str, list[str]] = {}
    for v in bad:
        reasons.setdefault(v.reason + ignored_note(v), []).append(where(v, report))
    body = [f"{', '.join(dict.fromkeys(ws))}: {r}" for r, ws in reasons.items()]
    body.extend(dict.fromkeys(a.text for a in pkg.advice))
    location = ""
    if at is not None:
        location = f"file={_prop(repo_relative(at.path))},"
        if at.line is not None:
            location += f"line={at.line},"
    return f"::{level} {location}title={_prop(title)}::{_data(chr(10).join(body))}"
