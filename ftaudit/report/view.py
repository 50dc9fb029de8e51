"""What every report format shows the same way: order, cell labels, versions, evidence.

Pure functions over the Report, so the table, Markdown, HTML and CI annotations cannot
disagree about a package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ftaudit.model import (
    Evidence,
    PackageReport,
    Report,
    Status,
    Target,
    TargetReadiness,
    Verdict,
    worst,
)

# What needs a person's attention first.
ATTENTION = (
    Status.BLOCKED,
    Status.GIL,
    Status.BUILD,
    Status.DOWNGRADE,
    Status.UPGRADE,
    Status.UNKNOWN,
    Status.READY,
)

STATUS_MEANING = {
    Status.READY: "an artifact for the target exists and nothing in it needs the GIL",
    Status.GIL: "installs, but importing it re-enables the GIL for the whole process",
    Status.UPGRADE: "this version is not ready; a newer one is",
    Status.DOWNGRADE: "this version has nothing for the target; an older one is ready",
    Status.BUILD: "no wheel for the target, only an sdist: must be built from source",
    Status.BLOCKED: "nothing installable for the target",
    Status.UNKNOWN: "could not be determined (the reason says why)",
}

EVIDENCE_MEANING = {
    Evidence.VERIFIED: "imported in a real free-threaded interpreter",
    Evidence.INSPECTED: "the compiled extension modules were read (not executed)",
    Evidence.TAGS: "wheel tags only",
    Evidence.CLASSIFIER: "the author's trove classifier",
    Evidence.PURE: "no compiled code",
}


def package_status(pkg: PackageReport) -> Status:
    return worst(v.status for v in pkg.verdicts)


def ordered(packages: Sequence[PackageReport]) -> list[PackageReport]:
    """Packages that need attention first, then by name."""
    return sorted(packages, key=lambda p: (ATTENTION.index(package_status(p)), p.dependency.name))


def target_verdicts(pkg: PackageReport, target: Target) -> list[Verdict]:
    return [v for v in pkg.verdicts if v.target == target]


def cell(verdicts: Sequence[Verdict]) -> tuple[Status | None, str]:
    """The status shown for one package and target (worst across platforms), and its label:
    'upgrade → 2.0'. None when the target does not install the package."""
    if not verdicts:
        return None, "-"
    status = worst(v.status for v in verdicts)
    v = next(x for x in verdicts if x.status is status)
    label = status.value
    if v.use_version and status in (Status.UPGRADE, Status.DOWNGRADE, Status.BUILD, Status.GIL):
        label += f" → {v.use_version}"
    if v.ignored is not None:
        label += " (ignored)"
    return status, label


def version_label(pkg: PackageReport) -> tuple[str, str]:
    """The version, and '(not locked)' when ftaudit chose it rather than a lock or a pin."""
    dep = pkg.dependency
    if dep.version:
        return dep.version, "" if dep.locked else "(not locked)"
    chosen = sorted({v.version for v in pkg.verdicts if v.version})
    return (", ".join(chosen), "(not locked)") if chosen else ("-", "")


def evidence_label(pkg: PackageReport) -> str:
    kinds = sorted(
        {v.evidence.value for v in pkg.verdicts if v.evidence is not None},
        key=[e.value for e in Evidence].index,
    )
    return ", ".join(kinds) or "-"


def ignored_note(v: Verdict) -> str:
    return f" [ignored by policy: {v.ignored}]" if v.ignored is not None else ""


def where(v: Verdict, report: Report) -> str:
    return v.target.name + (f" {v.platform}" if len(report.platforms) > 1 else "")


def problems(pkg: PackageReport) -> list[Verdict]:
    return [v for v in pkg.verdicts if v.status is not Status.READY]


def chains(report: Report, name: str, limit: int = 20) -> list[list[str]]:
    """Every chain of display names from a direct requirement down to `name`."""
    deps = {p.dependency.name: p.dependency for p in report.packages}
    out: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        dep = deps.get(node)
        if dep is None or len(out) >= limit:
            return
        if dep.direct or not dep.required_by:
            out.append([node, *path])
        for parent in dep.required_by:
            if parent not in path and parent != node:
                walk(parent, [node, *path])

    walk(name, [])
    return [[deps[n].display_name if n in deps else n for n in chain] for chain in out]


def readiness(report: Report) -> list[TargetReadiness]:
    """Per target: how many direct and transitive dependencies are ready, and the changes
    the rest need (the worst verdict across platforms decides a package's change)."""
    out = []
    for target in report.targets:
        counts = dict.fromkeys(("direct", "dr", "transitive", "tr"), 0)
        changes = dict.fromkeys(Status, 0)
        for pkg in project_packages(report):
            verdicts = target_verdicts(pkg, target)
            if not verdicts:
                continue
            status = worst(v.status for v in verdicts)
            kind = "direct" if pkg.dependency.direct else "transitive"
            counts[kind] += 1
            if status is Status.READY or all(v.ignored is not None for v in verdicts):
                counts["dr" if kind == "direct" else "tr"] += 1
            else:
                changes[status] += 1
        out.append(
            TargetReadiness(
                target=target.name,
                direct=counts["direct"],
                direct_ready=counts["dr"],
                transitive=counts["transitive"],
                transitive_ready=counts["tr"],
                upgrades=changes[Status.UPGRADE],
                pins=changes[Status.DOWNGRADE],
                builds=changes[Status.BUILD],
                isolate=changes[Status.GIL],
                blocked=changes[Status.BLOCKED],
                unknown=changes[Status.UNKNOWN],
            )
        )
    return out


def closest(targets: Sequence[TargetReadiness]) -> TargetReadiness | None:
    """The target that needs the least work: nothing blocked first, then the fewest
    source builds and packages to isolate (the changes whose outcome is uncertain or
    that change the program), then the fewest changes and unknowns; the earliest."""
    if len(targets) < 2:
        return None
    return min(targets, key=lambda t: (t.blocked > 0, t.builds + t.isolate, t.changes, t.unknown))


def readiness_text(t: TargetReadiness) -> str:
    """One target's line, as every report format shows it: 'ready: all 9 packages', or
    '2 of 9 ready (direct 1/8, transitive 1/1); to get there: 2 upgrades, ...'."""
    total = t.direct + t.transitive
    if t.ready:
        return f"ready: all {total} package{'s' if total != 1 else ''}"
    ready = t.direct_ready + t.transitive_ready
    text = (
        f"{ready} of {total} ready (direct {t.direct_ready}/{t.direct}, "
        f"transitive {t.transitive_ready}/{t.transitive})"
    )
    todo = changes_text(t)
    return text + (f"; to get there: {todo}" if todo else "")


def changes_text(t: TargetReadiness) -> str:
    """'1 upgrade, 2 pins, 1 source build (GIL status then unknown), 1 to isolate'."""

    def n(count: int, one: str, many: str | None = None) -> str | None:
        if not count:
            return None
        return f"{count} {one if count == 1 else (many or one + 's')}"

    parts = [
        n(t.upgrades, "upgrade"),
        n(t.pins, "pin to an older release", "pins to older releases"),
        n(t.builds, "source build", "source builds"),
        n(
            t.isolate,
            "package to isolate in worker processes",
            "packages to isolate in worker processes",
        ),
        n(t.blocked, "package with nothing to install", "packages with nothing to install"),
        n(t.unknown, "unknown to check", "unknowns to check"),
    ]
    text = ", ".join(p for p in parts if p)
    if t.builds:
        text += " (a source build's GIL status is unknown until it is built)"
    return text


# What an environment holds to install packages, not what the project depends on.
INSTALLER_TOOLING = frozenset({"pip", "setuptools", "wheel", "distribute", "uv"})


def is_tooling(pkg: PackageReport, report: Report) -> bool:
    """pip, setuptools, wheel in a scanned environment that nothing else requires."""
    dep = pkg.dependency
    return (
        dep.name in INSTALLER_TOOLING
        and all(s.kind == "environment" for s in report.sources)
        and not (set(dep.required_by) - INSTALLER_TOOLING)
    )


def project_packages(report: Report) -> list[PackageReport]:
    return [p for p in report.packages if not is_tooling(p, report)]


def display_path(path: str, cwd: str | None = None) -> str:
    """A source path as a report shows it: relative to the working directory when it lies
    inside it, else only its name (a report passed on names no one's home directory)."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    p = Path(path)
    try:
        return p.resolve().relative_to(base.resolve()).as_posix() or "."
    except (ValueError, OSError):
        return p.name or path


def constraints(report: Report, target: Target) -> list[str]:
    """Requirement lines that make the changes this target needs: the upgrades (to the
    oldest release confirmed ready) and the pins (downgrades), ready to paste."""
    lines = []
    for pkg in sorted(report.packages, key=lambda p: p.dependency.name):
        verdicts = [v for v in target_verdicts(pkg, target) if v.ignored is None]
        if not verdicts or not any(v.use_version for v in verdicts):
            continue
        status = worst(v.status for v in verdicts)
        v = next(x for x in verdicts if x.status is status)
        if status is Status.UPGRADE and v.use_version:
            lines.append(f"{pkg.dependency.display_name}>={v.first_ready or v.use_version}")
        elif status is Status.DOWNGRADE and v.use_version:
            lines.append(f"{pkg.dependency.display_name}=={v.use_version}")
    return lines
