"""``--format html``: one self-contained page (no network needed to view it).

A summary chart per target, a table that sorts by any column and filters by name and
status, and for each package its reasons, advice, import sites and dependency chains.
The page's state can be set from the URL fragment (``#sort=3.14t&dir=desc&status=gil&q=num``)
so that a link opens the view it names; the same code runs for clicks.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from importlib.resources import files

from ftaudit.model import PackageReport, Report, Status
from ftaudit.report.view import (
    ATTENTION,
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
    problems,
    project_packages,
    readiness,
    readiness_text,
    target_verdicts,
    version_label,
    where,
)

_CODE = re.compile(r"`([^`<>]+)`")
COLORS = {
    Status.READY: "#2e7d32",
    Status.GIL: "#c62828",
    Status.UPGRADE: "#f9a825",
    Status.DOWNGRADE: "#ef6c00",
    Status.BUILD: "#6a1b9a",
    Status.BLOCKED: "#8e0000",
    Status.UNKNOWN: "#757575",
}


def _asset(name: str) -> str:
    """The page's own stylesheet and script, shipped in the package and inlined."""
    return files("ftaudit.report").joinpath("assets").joinpath(name).read_text("utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(status: Status | None, label: str) -> str:
    if status is None:
        return '<span class="dash">-</span>'
    return f'<span class="st" style="background:{COLORS[status]}">{_e(label)}</span>'


def _inline(text: str) -> str:
    """Escaped text, with the `code` spans the advice uses rendered as code."""
    return _CODE.sub(r"<code>\1</code>", _e(text))


def render_report(report: Report) -> str:
    summary = replace(report, packages=tuple(project_packages(report))).summary()
    date = ""
    if report.scanned_at:
        date = f" &middot; {_e(report.scanned_at.replace('T', ' ').replace('Z', ' UTC'))}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing is fetched: styles and script are inline; the policy says so too.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        "<title>Free-threading readiness</title>",
        f"<style>{_asset('report.css')}</style></head><body>",
        "<header><h1>Free-threading readiness</h1>",
        '<div class="meta">',
        "Scanned: "
        + ", ".join(
            f"<code>{_e(display_path(s.path))}</code> ({_e(s.kind)})" for s in report.sources
        )
        + f" &middot; targets {_e(', '.join(t.name for t in report.targets))}"
        + f" &middot; platforms {_e(', '.join(report.platforms))}"
        + f" &middot; {len(report.packages)} packages &middot; ftaudit {_e(report.tool_version)}"
        + date,
        "</div></header><main>",
        "<h2>Summary</h2>",
        _decision(report),
        '<div class="charts">',
    ]
    for target in report.targets:
        parts.append(_chart(target.name, summary[target.name]))
    parts.append("</div>")
    parts.append(_constraints(report))
    parts.append(_table(report))
    tooling = [p for p in report.packages if is_tooling(p, report)]
    if tooling:
        parts.append(
            '<h2>Installer tooling</h2><p class="tooling">What the environment holds to '
            "install packages, not what the project depends on: "
            + ", ".join(
                f"{_e(p.dependency.display_name)} {_e(cell(p.verdicts)[1])}" for p in tooling
            )
            + ".</p>"
        )
    parts.append(_method(report))
    parts.append(f"</main><script>{_asset('report.js')}</script></body></html>")
    return "\n".join(parts) + "\n"


def _decision(report: Report) -> str:
    """Per target: what is ready and the changes to get there; the closest target."""
    items = []
    targets = readiness(report)
    for t in targets:
        items.append(f"<li><b>{_e(t.target)}</b>: {_e(readiness_text(t))}</li>")
    best = closest(targets)
    if best is not None:
        items.append(f"<li><b>Closest target: {_e(best.target)}</b> ({best.changes} changes)</li>")
    return f'<ul class="decision">{"".join(items)}</ul>'


def _constraints(report: Report) -> str:
    blocks = [(t, constraints(report, t)) for t in report.targets]
    if not any(lines for _t, lines in blocks):
        return ""
    body = "".join(
        f"<h3>{_e(t.name)}</h3><pre><code>{_e(chr(10).join(lines))}</code></pre>"
        for t, lines in blocks
        if lines
    )
    return (
        "<h2>Constraints to apply</h2><p>The upgrades (to the oldest release confirmed "
        "ready) and pins each target needs, ready to paste into a constraints or "
        f"requirements file.</p>{body}"
    )


def _chart(target: str, counts: dict[str, int]) -> str:
    total = sum(counts.values())
    bars = []
    legend = []
    for status in ATTENTION:
        n = counts[status.value]
        if not n:
            continue
        pct = 100.0 * n / total
        bars.append(
            f'<span title="{_e(status.value)}: {n}" '
            f'style="width:{pct:.2f}%;background:{COLORS[status]}"></span>'
        )
        legend.append(f'<span><i style="background:{COLORS[status]}"></i>{n} {status.value}</span>')
    return (
        f'<div class="chart" data-target="{_e(target)}"><h3>{_e(target)}</h3>'
        f'<div class="bar" role="img" aria-label="{_e(target)} summary">{"".join(bars)}</div>'
        f'<div class="legend">{"".join(legend) or "no packages"}</div></div>'
    )


def _table(report: Report) -> str:
    options = "".join(f'<option value="{s.value}">{s.value}</option>' for s in Status)
    head = (
        '<th data-key="package">Package</th><th data-key="version">Version</th>'
        + "".join(f'<th data-key="{_e(t.name)}">{_e(t.name)}</th>' for t in report.targets)
        + '<th data-key="evidence">Evidence</th>'
    )
    rows = [_rows(pkg, report) for pkg in ordered(project_packages(report))]
    return (
        "<h2>Packages</h2>"
        '<div class="controls"><input type="search" id="q" placeholder="Filter by name" '
        'aria-label="Filter by name">'
        '<select id="status" aria-label="Filter by status"><option value="">every status</option>'
        f'<option value="problems">not ready</option>{options}</select>'
        '<span class="count" id="count"></span></div>'
        f'<table id="packages"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _rows(pkg: PackageReport, report: Report) -> str:
    dep = pkg.dependency
    version, mark = version_label(pkg)
    statuses = sorted({v.status.value for v in pkg.verdicts})
    cells = []
    for target in report.targets:
        status, label = cell(target_verdicts(pkg, target))
        rank = ATTENTION.index(status) if status is not None else len(ATTENTION)
        cells.append(f'<td data-sort="{rank}">{_badge(status, label)}</td>')
    parents = ""
    if dep.required_by:
        parents = f' <span class="dash">&larr; {_e(", ".join(dep.required_by))}</span>'
    name = _e(dep.display_name)
    row = (
        f'<tr class="pkg" data-name="{_e(dep.name)}" data-statuses="{" ".join(statuses)}">'
        f'<td data-sort="{_e(dep.name)}"><button class="more" aria-expanded="false" '
        f'title="details">&#9656;</button>{name}{parents}</td>'
        f"<td>{_e(version)}{' <span class=dash>' + _e(mark) + '</span>' if mark else ''}</td>"
        + "".join(cells)
        + f"<td>{_e(evidence_label(pkg))}</td></tr>"
    )
    width = 3 + len(report.targets)
    return row + f'<tr class="detail hidden"><td colspan="{width}">{_detail(pkg, report)}</td></tr>'


def _detail(pkg: PackageReport, report: Report) -> str:
    out = []
    why = [
        f"<li>{_e(where(v, report))}: <b>{_e(v.status.value)}</b> &mdash; "
        f"{_inline(v.reason + ignored_note(v))}</li>"
        for v in (problems(pkg) or pkg.verdicts)
    ]
    out.append(f"<ul>{''.join(why)}</ul>")
    for advice in pkg.advice:
        sites = "".join(
            f"<li><code>{_e(site.path)}:{site.line}</code> imports <code>{_e(site.module)}</code>"
            + (f" (via {_e(' → '.join(chain))})" if len(chain) > 1 else "")
            + "</li>"
            for site, chain in advice.import_sites
        )
        snippet = f"<pre><code>{_e(advice.snippet)}</code></pre>" if advice.snippet else ""
        out.append(
            f'<div class="advice"><b>{_e(advice.kind)}</b> {_inline(advice.text)}'
            f"{f'<ul>{sites}</ul>' if sites else ''}{snippet}</div>"
        )
    found = chains(report, pkg.dependency.name)
    if any(len(c) > 1 for c in found):
        items = "".join(f"<li>project → {_e(' → '.join(c))}</li>" for c in found)
        out.append(f"<div>Pulled in by:<ul>{items}</ul></div>")
    if pkg.extensions:
        exts = "".join(
            f"<li><code>{_e(e.module)}</code>: {_e(e.gil.value)} ({_e(e.detail)})</li>"
            for e in pkg.extensions[:50]
        )
        more = len(pkg.extensions) - 50
        out.append(
            f"<details><summary>{len(pkg.extensions)} extension modules</summary>"
            f"<ul>{exts}</ul>{f'<p>and {more} more</p>' if more > 0 else ''}</details>"
        )
    return "".join(out)


def _method(report: Report) -> str:
    statuses = "".join(f"<li><b>{s.value}</b>: {_e(STATUS_MEANING[s])}</li>" for s in Status)
    evidence = "".join(f"<li><b>{e.value}</b>: {_e(m)}</li>" for e, m in EVIDENCE_MEANING.items())
    notes = "".join(
        f'<li class="{"disagree" if "DISAGREES" in n else ""}">{_e(n)}</li>' for n in report.notes
    )
    return (
        "<h2>Method</h2><p>Each compiled extension module of the artifact a target would "
        "install is read without being imported; a module that does not declare "
        "<code>Py_MOD_GIL_NOT_USED</code> makes a free-threaded interpreter turn the GIL back "
        f"on when it is imported.</p><ul>{statuses}</ul><p>Evidence, strongest first:</p>"
        f"<ul>{evidence}</ul>" + (f'<h2>Notes</h2><ul class="notes">{notes}</ul>' if notes else "")
    )
