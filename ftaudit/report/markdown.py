"""``--format markdown``: a pre-migration assessment people read and pass on.

Summary per target first, then the packages that block the move, then those that need a
version change or a build, each with why, what to do and where the project imports it;
the ready packages in one table; and how the verdicts were reached.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ftaudit.model import Advice, PackageReport, Report, Status
from ftaudit.report.view import (
    EVIDENCE_MEANING,
    STATUS_MEANING,
    cell,
    chains,
    closest,
    constraints,
    display_path,
    evidence_label,
    ignored_note,
    is_tooling,
    ordered,
    package_status,
    problems,
    project_packages,
    readiness,
    readiness_text,
    target_verdicts,
    version_label,
    where,
)

BLOCKING = (Status.BLOCKED, Status.GIL)
CHANGES = (Status.BUILD, Status.DOWNGRADE, Status.UPGRADE, Status.UNKNOWN)


def _esc(text: str) -> str:
    """Text safe inside a Markdown table cell or a line."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_report(report: Report) -> str:
    out: list[str] = []
    add = out.append
    add("# Free-threading readiness assessment")
    add("")
    sources = ", ".join(f"`{display_path(s.path)}` ({s.kind})" for s in report.sources) or "-"
    add(f"- **Scanned**: {sources}")
    if report.scanned_at:
        add(f"- **Date**: {report.scanned_at.replace('T', ' ').replace('Z', ' UTC')}")
    add(f"- **Targets**: {', '.join(t.name for t in report.targets)}")
    add(f"- **Platforms**: {', '.join(report.platforms)}")
    add(f"- **Packages**: {len(report.packages)}")
    add(f"- **Tool**: ftaudit {report.tool_version}")
    add("")
    add("## Summary")
    add("")
    targets = readiness(report)
    for t in targets:
        add(f"- **{t.target}**: {readiness_text(t)}")
    best = closest(targets)
    if best is not None:
        add(f"- **Closest target: {best.target}** ({best.changes} changes)")
    add("")
    tooling = [p for p in report.packages if is_tooling(p, report)]
    summary = replace(report, packages=tuple(project_packages(report))).summary()
    statuses = list(Status)
    add("| Target | " + " | ".join(s.value for s in statuses) + " |")
    add("|---" * (len(statuses) + 1) + "|")
    for target in report.targets:
        counts = summary[target.name]
        add(f"| {target.name} | " + " | ".join(str(counts[s.value]) for s in statuses) + " |")
    add("")
    for target in report.targets:
        add(f"- {_verdict_line(target.name, summary[target.name])}")
    add("")

    out.extend(_constraints(report))
    pkgs = ordered(project_packages(report))
    blocking = [p for p in pkgs if package_status(p) in BLOCKING]
    changes = [p for p in pkgs if package_status(p) in CHANGES]
    ready = [p for p in pkgs if package_status(p) is Status.READY]
    if blocking:
        add("## Blockers")
        add("")
        add(
            "Each of these keeps a free-threaded process from running without the GIL, "
            "or from installing at all."
        )
        add("")
        for pkg in blocking:
            out.extend(_package_section(pkg, report))
    if changes:
        add("## Needs a version change, a build or a closer look")
        add("")
        for pkg in changes:
            out.extend(_package_section(pkg, report))
    if ready:
        add("## Ready")
        add("")
        add("| Package | Version | Evidence |")
        add("|---|---|---|")
        for pkg in ready:
            version, mark = version_label(pkg)
            add(
                f"| {_esc(pkg.dependency.display_name)} | {_esc(version)}"
                f"{' ' + mark if mark else ''} | {evidence_label(pkg)} |"
            )
        add("")
    if tooling:
        add("## Installer tooling")
        add("")
        add(
            "What the environment holds to install packages, not what the project depends "
            "on: "
            + ", ".join(f"{_esc(p.dependency.display_name)} {cell(p.verdicts)[1]}" for p in tooling)
            + "."
        )
        add("")
    out.extend(_method(report))
    return "\n".join(out).rstrip() + "\n"


def _constraints(report: Report) -> list[str]:
    blocks = [(t, constraints(report, t)) for t in report.targets]
    if not any(lines for _t, lines in blocks):
        return []
    out = ["## Constraints to apply", ""]
    out.append(
        "The upgrades (to the oldest release confirmed ready) and pins each target needs, "
        "ready to paste into a constraints or requirements file:"
    )
    out.append("")
    for target, lines in blocks:
        if lines:
            out.extend([f"**{target.name}**", "", "```text", *lines, "```", ""])
    return out


def _verdict_line(target: str, counts: dict[str, int]) -> str:
    blocking = counts["blocked"] + counts["gil"]
    changes = counts["upgrade"] + counts["downgrade"] + counts["build"]
    total = sum(counts.values())
    if not total:
        return f"**{target}**: no packages"
    if blocking:
        head = f"**{target}**: not ready: {blocking} package(s) block the move"
    elif changes or counts["unknown"]:
        head = f"**{target}**: ready once the changes below are made"
    else:
        head = f"**{target}**: ready"
    rest = []
    if changes:
        rest.append(f"{changes} need a version change or a build")
    if counts["unknown"]:
        rest.append(f"{counts['unknown']} could not be determined")
    rest.append(f"{counts['ready']} of {total} ready")
    return head + "; " + "; ".join(rest) + "."


def _package_section(pkg: PackageReport, report: Report) -> list[str]:
    dep = pkg.dependency
    version, mark = version_label(pkg)
    lines = [f"### {dep.display_name} {version}{' ' + mark if mark else ''}", ""]
    cells = []
    for target in report.targets:
        _status, label = cell(target_verdicts(pkg, target))
        cells.append(f"{target.name}: **{label}**")
    lines.append(" · ".join(cells))
    lines.append("")
    lines.append("**Why**")
    lines.append("")
    for v in problems(pkg):
        evidence = f" _(evidence: {v.evidence.value})_" if v.evidence else ""
        lines.append(f"- {where(v, report)}: {_esc(v.reason + ignored_note(v))}{evidence}")
        if v.extensions and v.artifact:
            mods = ", ".join(f"`{e.module}` {e.gil.value}" for e in v.extensions[:10])
            more = f" and {len(v.extensions) - 10} more" if len(v.extensions) > 10 else ""
            lines.append(f"  - judged `{v.artifact}`: {mods}{more}")
    lines.append("")
    if pkg.advice:
        lines.append("**What to do**")
        lines.append("")
        for advice in pkg.advice:
            lines.extend(_advice(advice))
        lines.append("")
    found = chains(report, dep.name)
    if any(len(chain) > 1 for chain in found):
        lines.append("**Pulled in by**")
        lines.append("")
        lines.extend(f"- project → {' → '.join(chain)}" for chain in found)
        lines.append("")
    return lines


def _advice(advice: Advice) -> Iterable[str]:
    yield f"- *{advice.kind}*: {_esc(advice.text)}"
    for site, chain in advice.import_sites:
        via = f" (via {' → '.join(chain)})" if len(chain) > 1 else ""
        yield f"  - `{site.path}:{site.line}` imports `{site.module}`{via}"
    if advice.snippet:
        yield ""
        yield "  ```python"
        yield from (f"  {line}" if line else "" for line in advice.snippet.splitlines())
        yield "  ```"


def _method(report: Report) -> list[str]:
    lines = ["## Method", ""]
    lines.append(
        "For every package and target, ftaudit finds the artifact that target would install "
        "(the installed files, the file a lock pins, or the best wheel on the index for the "
        "target's tags) and reads each compiled extension module in it without importing "
        "or executing it: a module that does not declare `Py_mod_gil = Py_MOD_GIL_NOT_USED` "
        "(multi-phase slot, `PyUnstable_Module_SetGIL`, or PEP 793 `PyModExport`) makes the "
        "interpreter turn the GIL back on when it is imported."
    )
    lines.append("")
    lines.append("| Status | Meaning |")
    lines.append("|---|---|")
    lines.extend(f"| {s.value} | {STATUS_MEANING[s]} |" for s in Status)
    lines.append("")
    lines.append("| Evidence (strongest first) | Meaning |")
    lines.append("|---|---|")
    lines.extend(f"| {e.value} | {m} |" for e, m in EVIDENCE_MEANING.items())
    lines.append("")
    if report.notes:
        lines.append("**Notes**")
        lines.append("")
        lines.extend(f"- {_esc(n)}" for n in report.notes)
        lines.append("")
    return lines
