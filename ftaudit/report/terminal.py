"""``--format table``: rich tables for people at a terminal (plain text when not one).

Every string that comes from an input (package and member names, reasons quoting them) is
handed to rich as `Text`, never as markup: a wheel member named ``x/[/].so`` must print as
it is, not be parsed as a closing tag.
"""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ftaudit.model import ArtifactFacts, Gil, PackageReport, Report, Status, Verdict
from ftaudit.report.view import (
    cell,
    closest,
    evidence_label,
    ignored_note,
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

STATUS_STYLE = {
    Status.READY: "green",
    Status.GIL: "bold red",
    Status.UPGRADE: "yellow",
    Status.DOWNGRADE: "yellow",
    Status.BUILD: "magenta",
    Status.BLOCKED: "bold red",
    Status.UNKNOWN: "dim",
}
# Spaces rich pads a line with, before any closing colour codes.
_TRAILING = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$")
GIL_STYLE = {
    Gil.NOT_USED: "green",
    Gil.USED: "bold red",
    Gil.UNDECLARED: "red",
    Gil.UNKNOWN: "dim",
}


def _console(width: int, color: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        soft_wrap=False,
    )
    return console, buffer


def _version(pkg: PackageReport) -> Text:
    version, mark = version_label(pkg)
    return Text(version).append(f" {mark}" if mark else "", style="dim")


def _cell(verdicts: list[Verdict], versions: bool = True) -> Text:
    status, label = cell(verdicts)
    if not versions:
        label = label.split(" → ")[0]
    return Text(label, style=STATUS_STYLE[status] if status else "dim")


def render_report(
    report: Report, *, width: int = 120, color: bool = False, only_problems: bool = False
) -> str:
    """The decision first (per target: what is ready, the changes to get there, which
    target is closest), then the status table (not with --quiet), then one block per
    package that is not ready, its targets merged where they say the same."""
    console, buffer = _console(width, color)
    _summary(console, report)
    shown = [p for p in ordered(report.packages) if package_status(p) is not Status.READY]
    if not only_problems and report.packages:
        console.print()
        console.print(_table(console, report, width))
    if shown:
        console.print()
        console.print(Text("Not ready", style="bold"))
        for pkg in shown:
            _block(console, report, pkg)
    for note in report.notes:
        if "DISAGREES" in note:
            console.print(Text(note, style="bold red"))
        else:
            console.print(Text(f"note: {note}", style="dim"))
    if any(a.snippet for p in shown for a in p.advice):
        console.print(
            Text("--format markdown or html adds a sketch of the worker-process pattern.", "dim")
        )
    return _without_trailing_spaces(buffer.getvalue())


def _summary(console: Console, report: Report) -> None:
    sources = ", ".join(s.path for s in report.sources) or "-"
    project = project_packages(report)
    direct = sum(1 for p in project if p.dependency.direct)
    tooling = len(report.packages) - len(project)
    head = Text("Free-threading readiness", style="bold")
    head.append(
        f": {len(project)} package{'s' if len(project) != 1 else ''} ({direct} direct, "
        f"{len(project) - direct} transitive"
        f"{f'; and {tooling} of installer tooling' if tooling else ''}) from {sources}"
    )
    console.print(head)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    targets = readiness(report)
    for t in targets:
        line = Text(readiness_text(t), style="green" if t.ready else "")
        grid.add_row(Text(f"  {t.target}", style="bold"), line)
    console.print(grid)
    best = closest(targets)
    if best is not None:
        fewest = "no changes" if best.changes == 0 else f"{best.changes} changes"
        console.print(Text(f"  Closest target: {best.target} ({fewest})", style="bold"))


def _table(console: Console, report: Report, width: int) -> Table:
    # Narrow terminals lose the parent hint, then the evidence column, then the versions
    # in the cells (the blocks below still name them), then the borders; a name longer
    # than the terminal itself is folded onto two lines, never cut.
    levels = (
        (True, True, True, True),
        (False, True, True, True),
        (False, False, True, True),
        (False, False, False, True),
        (False, False, False, False),
    )
    wide = console.options.update_width(10_000)
    for parents, evidence, versions, boxed in levels:
        table = _status_table(
            report, parents=parents, evidence=evidence, versions=versions, boxed=boxed
        )
        if Measurement.get(console, wide, table).maximum <= width:
            break
    return table


def _status_table(
    report: Report, *, parents: bool, evidence: bool, versions: bool, boxed: bool
) -> Table:
    table = Table(title="Status per target", title_justify="left")
    if not boxed:
        table = Table(title="Status per target", title_justify="left", box=None, pad_edge=False)
    table.add_column("Package", no_wrap=boxed, overflow="fold")
    table.add_column("Version", no_wrap=True)
    for target in report.targets:
        table.add_column(Text(target.name), no_wrap=True)
    if evidence:
        table.add_column("Evidence", no_wrap=True)
    for pkg in ordered(report.packages):
        name = Text(pkg.dependency.display_name)
        if parents and not pkg.dependency.direct and pkg.dependency.required_by:
            parent = pkg.dependency.required_by
            more = f" +{len(parent) - 1}" if len(parent) > 1 else ""
            name.append(f" ← {parent[0]}{more}", style="dim")
        cells = [_cell(target_verdicts(pkg, t), versions) for t in report.targets]
        row = [name, _version(pkg), *cells]
        if evidence:
            row.append(Text(evidence_label(pkg)))
        table.add_row(*row)
    return table


def _block(console: Console, report: Report, pkg: PackageReport) -> None:
    dep = pkg.dependency
    title = Text(f"  {dep.display_name} {dep.version or ''}".rstrip(), style="bold")
    if not dep.direct and dep.required_by:
        title.append(
            f"  (required by {', '.join(dep.required_by[:3])}"
            f"{' and more' if len(dep.required_by) > 3 else ''})",
            style="dim",
        )
    console.print(title)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column()
    for spots, v, reason in _merged(report, pkg):
        _status, label = cell([v])
        grid.add_row(
            Text(f"    {', '.join(spots)}"), Text(label, style=STATUS_STYLE[v.status]), Text(reason)
        )
    for text in dict.fromkeys(a.text for a in pkg.advice):
        grid.add_row(Text("    what to do"), Text("→"), Text(text))
    console.print(grid)


def _merged(report: Report, pkg: PackageReport) -> list[tuple[list[str], Verdict, str]]:
    """The problem verdicts, one row per distinct (status, label, reason) once the target
    and platform names in the reason are set aside."""
    rows: dict[tuple[str, str, str], tuple[list[str], Verdict, str]] = {}
    for v in problems(pkg):
        generic = v.reason.replace(v.target.name, "\0t").replace(v.platform, "\0p")
        key = (v.status.value, cell([v])[1], generic + ignored_note(v))
        if key in rows:
            rows[key][0].append(where(v, report))
        else:
            rows[key] = ([where(v, report)], v, v.reason + ignored_note(v))
    out = []
    for spots, v, reason in rows.values():
        if len(spots) > 1:  # the reason names one target; the row holds for several
            targets = ", ".join(dict.fromkeys(s.split(" ")[0] for s in spots))
            reason = reason.replace(v.target.name, targets)
        out.append((spots, v, reason))
    return out


def _without_trailing_spaces(text: str) -> str:
    return "\n".join(_TRAILING.sub(r"\1", line) for line in text.split("\n"))


def render_inspect(facts: ArtifactFacts, *, width: int = 120, color: bool = False) -> str:
    console, buffer = _console(width, color)
    title = Text(
        facts.artifact
        + (
            f"  [{', '.join(facts.tags[:3])}{' ...' if len(facts.tags) > 3 else ''}]"
            if facts.tags
            else ""
        )
    )
    table = Table(title=title, title_justify="left")
    table.add_column("Module", no_wrap=True)
    table.add_column("GIL", no_wrap=True)
    table.add_column("Init", no_wrap=True)
    table.add_column("FT build", no_wrap=True)
    table.add_column("Evidence", overflow="fold")
    for e in facts.extensions:
        ft = {True: "yes", False: "no", None: "?"}[e.free_threaded_build]
        table.add_row(
            Text(e.module),
            Text(e.gil.value, style=GIL_STYLE[e.gil]),
            e.init.value,
            ft,
            Text(e.detail),
        )
    if facts.extensions:
        console.print(table)
    else:
        console.print(Text(f"{facts.artifact}: no extension modules"))
    for lib in facts.libraries:
        console.print(
            Text.assemble(("library (not judged): ", "dim"), lib.path, (f" — {lib.why}", "dim"))
        )
    for path, why in facts.unreadable:
        console.print(Text.assemble(("unreadable:", "red"), f" {path} — {why}"))
    return _without_trailing_spaces(buffer.getvalue())
