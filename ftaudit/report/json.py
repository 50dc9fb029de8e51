"""``--format json``: the ``ftaudit-report/1`` and ``ftaudit-inspect/1`` documents.

Fields may be added to these documents, never renamed or removed: CI pipelines read them.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from ftaudit.codec import extension_to_dict, library_to_dict
from ftaudit.model import (
    Advice,
    ArtifactFacts,
    PackageReport,
    Policy,
    Report,
    ScanStats,
    Source,
    Verdict,
    worst,
)

REPORT_SCHEMA = "ftaudit-report/1"
INSPECT_SCHEMA = "ftaudit-inspect/1"


def _verdict(v: Verdict) -> dict[str, Any]:
    return {
        "status": v.status.value,
        "evidence": v.evidence.value if v.evidence else None,
        "reason": v.reason,
        "artifact": v.artifact,
        "use_version": v.use_version,
        "platform": v.platform,
        "version": v.version,
        "ignored": v.ignored,
        "first_ready": v.first_ready,
        "gil_wheel": v.gil_wheel,
        "incomplete": v.incomplete.value if v.incomplete else None,
        "extensions": [extension_to_dict(e) for e in v.extensions],
        "artifact_read": v.artifact_read,
    }


def _advice(a: Advice) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "text": a.text,
        "targets": list(a.targets),
        "version": a.version,
        "import_sites": [
            {"path": site.path, "line": site.line, "module": site.module, "via": list(chain)}
            for site, chain in a.import_sites
        ],
        "snippet": a.snippet,
    }


def _package(pkg: PackageReport, report: Report) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    for target in report.targets:
        verdicts = [v for v in pkg.verdicts if v.target == target]
        if not verdicts:
            continue
        status = worst(v.status for v in verdicts)
        entry = _verdict(next(v for v in verdicts if v.status is status))
        if len(report.platforms) > 1:
            entry["by_platform"] = {v.platform: _verdict(v) for v in verdicts}
        targets[target.name] = entry
    dep = pkg.dependency
    return {
        "name": dep.name,
        "display_name": dep.display_name,
        "version": dep.version,
        "direct": dep.direct,
        "required_by": list(dep.required_by),
        "through_extras": [
            {"package": parent, "extra": extra, "alternatives": list(alternatives)}
            for parent, extra, alternatives in dep.through_extras
        ],
        "locked": dep.locked,
        "targets": targets,
        "extensions": [extension_to_dict(e) for e in pkg.extensions],
        "libraries": [library_to_dict(lib) for lib in pkg.libraries],
        "advice": [_advice(a) for a in pkg.advice],
        "import_names": list(pkg.import_names),
    }


def _stats(stats: ScanStats | None) -> dict[str, Any]:
    if stats is None:
        return {}
    return {
        "requests": stats.requests,
        "bytes_fetched": stats.bytes_fetched,
        "wheel_bytes": stats.wheel_bytes,
        "wheels_by_ranges": stats.wheels_by_ranges,
        "wheels_whole": stats.wheels_whole,
        "facts_cached": stats.facts_cached,
        "pages_cached": stats.pages_cached,
        "seconds": {stage: round(s, 3) for stage, s in stats.seconds},
    }


def report_document(report: Report) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "tool": {"name": "ftaudit", "version": report.tool_version},
        "targets": [t.name for t in report.targets],
        "platforms": list(report.platforms),
        "sources": [_source(s) for s in report.sources],
        "summary": report.summary(),
        "packages": [_package(p, report) for p in report.packages],
        "notes": list(report.notes),
        "scanned_at": report.scanned_at,
        "stats": _stats(report.stats),
        "policy": _policy(report.policy),
        "incomplete": [
            {
                "package": p.dependency.name,
                "version": v.version or p.dependency.version,
                "target": v.target.name,
                "platform": v.platform,
                "kind": v.incomplete.value,
                "reason": v.reason,
                "ignored": v.ignored,
            }
            for p in report.packages
            for v in p.verdicts
            if v.incomplete is not None
        ],
    }


def _source(source: Source) -> dict[str, Any]:
    return {
        "kind": source.kind,
        "path": source.path,
        "selected": list(source.selected),
        "left_out": [
            {
                "kind": item.kind,
                "name": item.name,
                "owner": item.owner,
                "packages": list(item.packages),
                "include": item.include,
            }
            for item in source.left_out
        ],
        "requires_python": source.requires_python,
        "not_covered": list(source.not_covered),
        "project": source.project,
    }


def _policy(policy: Policy | None) -> dict[str, Any]:
    if policy is None:
        return {"fail_on": [], "config": None, "ignored": []}
    today = date.today()
    return {
        "fail_on": sorted(s.value for s in policy.fail_on or ()),
        "config": policy.path,
        "ignored": [
            {
                "package": rule.package,
                "reason": rule.reason,
                "expires": rule.expires.isoformat() if rule.expires else None,
                "expired": rule.expired(today),
                "targets": list(rule.targets),
            }
            for rule in policy.ignore
        ],
    }


def report_schema() -> str:
    """The JSON Schema (draft 2020-12) of ``ftaudit-report/1``, as shipped in the package."""
    from importlib.resources import files

    return files("ftaudit").joinpath("schemas/ftaudit-report-1.schema.json").read_text("utf-8")


def render_report(report: Report) -> str:
    return json.dumps(report_document(report), indent=2) + "\n"


def inspect_document(facts: ArtifactFacts) -> dict[str, Any]:
    return {
        "schema": INSPECT_SCHEMA,
        "artifact": facts.artifact,
        "tags": list(facts.tags),
        "extensions": [extension_to_dict(e) for e in facts.extensions],
        "libraries": [library_to_dict(lib) for lib in facts.libraries],
        "unreadable": [{"path": p, "why": w} for p, w in facts.unreadable],
    }


def render_inspect(facts: ArtifactFacts) -> str:
    return json.dumps(inspect_document(facts), indent=2) + "\n"
