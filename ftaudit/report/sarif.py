"""``--format sarif``: SARIF 2.1.0, the format GitHub code scanning and other CI
dashboards read. One rule per status that is a finding; one result per package and
status (its targets named in the message), located at the lock or requirements line."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any

from ftaudit import __version__
from ftaudit.model import Location, PackageReport, Report, Status
from ftaudit.report.locate import repo_relative
from ftaudit.report.view import ATTENTION, STATUS_MEANING, ignored_note, problems, where

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
RULES = tuple(s for s in ATTENTION if s is not Status.READY)
RULE_NAMES = {
    Status.BLOCKED: "NothingToInstall",
    Status.GIL: "ReEnablesTheGil",
    Status.BUILD: "BuildFromSource",
    Status.DOWNGRADE: "DowngradeToReady",
    Status.UPGRADE: "UpgradeToReady",
    Status.UNKNOWN: "GilStatusUnknown",
}


def render_report(
    report: Report, fail_on: Collection[Status], located: Mapping[str, Location] | None = None
) -> str:
    located = located or {}
    results = [
        result
        for pkg in sorted(report.packages, key=lambda p: p.dependency.name)
        for result in _results(report, pkg, fail_on, located.get(pkg.dependency.name))
    ]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ftaudit",
                        "version": __version__,
                        "rules": [_rule(s, fail_on) for s in RULES],
                    }
                },
                "results": results,
                "columnKind": "unicodeCodePoints",
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _rule(status: Status, fail_on: Collection[Status]) -> dict[str, Any]:
    return {
        "id": status.value,
        "name": RULE_NAMES[status],
        "shortDescription": {"text": STATUS_MEANING[status]},
        "fullDescription": {
            "text": f"ftaudit status '{status.value}' for a free-threaded target: "
            f"{STATUS_MEANING[status]}."
        },
        "defaultConfiguration": {"level": "error" if status in fail_on else "warning"},
    }


def _results(
    report: Report, pkg: PackageReport, fail_on: Collection[Status], at: Location | None
) -> list[dict[str, Any]]:
    dep = pkg.dependency
    out = []
    for status in RULES:
        verdicts = [v for v in problems(pkg) if v.status is status]
        if not verdicts:
            continue
        version = dep.version or verdicts[0].version or ""
        targets = ", ".join(dict.fromkeys(where(v, report) for v in verdicts))
        reasons = "; ".join(dict.fromkeys(v.reason + ignored_note(v) for v in verdicts))
        advice = " ".join(
            dict.fromkeys(
                a.text for a in pkg.advice if {v.target.name for v in verdicts} & set(a.targets)
            )
        )
        text = f"{dep.display_name} {version}".strip() + f": {status.value} on {targets}: {reasons}"
        if advice:
            text += f" What to do: {advice}"
        ignored = [v.ignored for v in verdicts if v.ignored is not None]
        result: dict[str, Any] = {
            "ruleId": status.value,
            "ruleIndex": RULES.index(status),
            "level": "error" if status in fail_on and len(ignored) < len(verdicts) else "warning",
            "message": {"text": text},
            "partialFingerprints": {
                "ftaudit/v1": hashlib.sha256(f"{dep.name}\0{status.value}".encode()).hexdigest()
            },
            "properties": {
                "package": dep.display_name,
                "version": version,
                "targets": sorted({v.target.name for v in verdicts}),
            },
        }
        if at is not None:
            physical: dict[str, Any] = {"artifactLocation": {"uri": repo_relative(at.path)}}
            if at.line is not None:
                physical["region"] = {"startLine": at.line}
            result["locations"] = [{"physicalLocation": physical}]
        if ignored and len(ignored) == len(verdicts):
            result["suppressions"] = [{"kind": "external", "justification": ignored[0]}]
        out.append(result)
    return out
