"""``--format table``: rich tables for people at a terminal (plain text when not one)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ftaudit.model import (
    ArtifactFacts,
    Evidence,
    Gil,
    PackageReport,
    Report,
    Status,
    Verdict,
    worst,
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
    if pkg.dependency.version:
        return Text(pkg.dependency.version)
    chosen = sorted({v.version for v in pkg.verdicts if v.version})
    if not chosen:
        return Text("-")
    # Not locked: the newest release each target installs, marked so nobody mistakes it
    # for a pin.
    return Text(", ".join(chosen)).append(" (newest)", style="dim")


def _cell(verdicts: list[Verdict]) -> Text:
    if not verdicts:
        return Text("-", style="dim")
    status = worst(v.status for v in verdicts)
    v = next(x for x in verdicts if x.status is status)
    label = status.value
    if v.use_version and status in (Status.UPGRADE, Status.DOWNGRADE, Status.BUILD, Status.GIL):
        label += f" → {v.use_version}"
    return Text(label, style=STATUS_STYLE[status])


def _sort_key(pkg: PackageReport) -> tuple[int, str]:
    status = worst(v.status for v in pkg.verdicts)
    return (ATTENTION.index(status), pkg.dependency.name)


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
        table.add_column(target.name, no_wrap=True)
    table.add_column("Evidence", no_wrap=True)
    hidden = 0
    shown_packages = []
    for pkg in sorted(report.packages, key=_sort_key):
        worst_status = worst(v.status for v in pkg.verdicts)
        if only_problems and worst_status is Status.READY:
            hidden += 1
            continue
        shown_packages.append(pkg)
        name = Text(pkg.dependency.display_name)
        if not pkg.dependency.direct and pkg.dependency.required_by:
            parents = pkg.dependency.required_by
            more = f" +{len(parents) - 1}" if len(parents) > 1 else ""
            name.append(f" ← {parents[0]}{more}", style="dim")
        evidence = sorted(
            {v.evidence.value for v in pkg.verdicts if v.evidence is not None},
            key=[e.value for e in Evidence].index,
        )
        table.add_row(
            name,
            _version(pkg),
            *(_cell([v for v in pkg.verdicts if v.target == t]) for t in report.targets),
            ", ".join(evidence) or "-",
        )
    console.print(table)
    if hidden:
        console.print(f"[dim]{hidden} ready packages not shown.[/dim]")
    details = [
        (pkg, v) for pkg in shown_packages for v in pkg.verdicts if v.status is not Status.READY
    ]
    if details:
        console.print()
        console.print(Text("Why", style="bold"))
        multi_platform = len(report.platforms) > 1
        # A borderless grid, so that a long reason wraps under itself, not under the name.
        why = Table.grid(padding=(0, 1))
        why.add_column(no_wrap=True)
        why.add_column(no_wrap=True)
        why.add_column(overflow="fold")
        for pkg, v in details:
            where = v.target.name + (f" {v.platform}" if multi_platform else "")
            name = Text(
                "  " + f"{pkg.dependency.display_name} {pkg.dependency.version or ''}".strip()
            )
            name.append(f" [{where}]", style="dim")
            why.add_row(name, Text(v.status.value, style=STATUS_STYLE[v.status]), v.reason)
        console.print(why)
    advised = [(pkg, a) for pkg in shown_packages for a in pkg.advice]
    if advised:
        console.print()
        console.print(Text("What to do", style="bold"))
        todo = Table.grid(padding=(0, 1))
        todo.add_column(no_wrap=True)
        todo.add_column(overflow="fold")
        for pkg, a in advised:
            todo.add_row(Text(f"  {pkg.dependency.display_name}", style="bold"), a.text)
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
        console.print(f"[dim]note: {note}[/dim]")
    return buffer.getvalue()


def render_inspect(facts: ArtifactFacts, *, width: int = 120, color: bool = False) -> str:
    console, buffer = _console(width, color)
    title = facts.artifact + (
        f"  [{', '.join(facts.tags[:3])}{' ...' if len(facts.tags) > 3 else ''}]"
        if facts.tags
        else ""
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
            e.module, Text(e.gil.value, style=GIL_STYLE[e.gil]), e.init.value, ft, e.detail
        )
    if facts.extensions:
        console.print(table)
    else:
        console.print(f"{facts.artifact}: no extension modules")
    for lib in facts.libraries:
        console.print(f"[dim]library (not judged):[/dim] {lib.path} [dim]— {lib.why}[/dim]")
    for path, why in facts.unreadable:
        console.print(f"[red]unreadable:[/red] {path} — {why}")
    return buffer.getvalue()
