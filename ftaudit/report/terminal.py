"""``--format table``: rich tables for people at a terminal (plain text when not one).

Every string that comes from an input (package and member names, reasons quoting them) is
handed to rich as `Text`, never as markup: a wheel member named ``x/[/].so`` must print as
it is, not be parsed as a closing tag.
"""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ftaudit.model import ArtifactFacts, Gil, PackageReport, Report, Status, Verdict
from ftaudit.report.view import (
    cell,
    evidence_label,
    ignored_note,
    ordered,
    package_status,
    problems,
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


def _cell(verdicts: list[Verdict]) -> Text:
    status, label = cell(verdicts)
    return Text(label, style=STATUS_STYLE[status] if status else "dim")


def render_report(
    report: Report, *, width: int = 120, color: bool = False, only_problems: bool = False
) -> str:
    """A status table (one row per package, one column per target), then the reasons
    for every verdict that is not ``ready``, then a summary line per target."""
    console, buffer = _console(width, color)
    table = Table(title="Free-threading readiness", title_justify="left")
    table.add_column("Package", overflow="fold")
    table.add_column("Version", no_wrap=True)
    for target in report.targets:
        table.add_column(Text(target.name), no_wrap=True)
    table.add_column("Evidence", no_wrap=True)
    hidden = 0
    shown_packages = []
    for pkg in ordered(report.packages):
        worst_status = package_status(pkg)
        if only_problems and worst_status is Status.READY:
            hidden += 1
            continue
        shown_packages.append(pkg)
        name = Text(pkg.dependency.display_name)
        if not pkg.dependency.direct and pkg.dependency.required_by:
            parents = pkg.dependency.required_by
            more = f" +{len(parents) - 1}" if len(parents) > 1 else ""
            name.append(f" ← {parents[0]}{more}", style="dim")
        table.add_row(
            name,
            _version(pkg),
            *(_cell(target_verdicts(pkg, t)) for t in report.targets),
            Text(evidence_label(pkg)),
        )
    console.print(table)
    if hidden:
        console.print(f"[dim]{hidden} ready packages not shown.[/dim]")
    details = [(pkg, v) for pkg in shown_packages for v in problems(pkg)]
    if details:
        console.print()
        console.print(Text("Why", style="bold"))
        # A borderless grid, so that a long reason wraps under itself, not under the name.
        why = Table.grid(padding=(0, 1))
        why.add_column(no_wrap=True)
        why.add_column(no_wrap=True)
        why.add_column(overflow="fold")
        for pkg, v in details:
            name = Text(
                "  " + f"{pkg.dependency.display_name} {pkg.dependency.version or ''}".strip()
            )
            name.append(f" [{where(v, report)}]", style="dim")
            why.add_row(
                name,
                Text(v.status.value, style=STATUS_STYLE[v.status]),
                Text(v.reason + ignored_note(v)),
            )
        console.print(why)
    advised = [(pkg, a) for pkg in shown_packages for a in pkg.advice]
    if advised:
        console.print()
        console.print(Text("What to do", style="bold"))
        todo = Table.grid(padding=(0, 1))
        todo.add_column(no_wrap=True)
        todo.add_column(overflow="fold")
        for pkg, a in advised:
            todo.add_row(Text(f"  {pkg.dependency.display_name}", style="bold"), Text(a.text))
        console.print(todo)
        if any(a.snippet for _pkg, a in advised):
            console.print(
                "[dim]--format markdown or html adds a sketch of the worker-process pattern.[/dim]"
            )
    console.print()
    summary = report.summary()
    for target in report.targets:
        counts = summary[target.name]
        parts = [
            Text(f"{counts[s.value]} {s.value}", style=STATUS_STYLE[s])
            for s in Status
            if counts[s.value]
        ]
        line = Text(f"{target.name}: ", style="bold")
        for i, part in enumerate(parts):
            if i:
                line.append(", ")
            line.append(part)
        if not parts:
            line.append("no packages")
        console.print(line)
    for note in report.notes:
        if "DISAGREES" in note:
            console.print(Text(note, style="bold red"))
        else:
            console.print(Text(f"note: {note}", style="dim"))
    return buffer.getvalue()


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
    return buffer.getvalue()
