"""Applying the project's policy to a report: pure functions, the date passed in.

An ignore entry marks the verdicts it covers (they stay in every report, with the reason)
and keeps them from failing the run; an expired one covers nothing and fails the run by
itself, so that nobody forgets it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import replace

from ftaudit.model import Ignore, Policy, Report, Status, Verdict


def apply_policy(report: Report, policy: Policy, today: dt.date) -> Report:
    packages = []
    for pkg in report.packages:
        verdicts = tuple(
            replace(v, ignored=_reason(policy.ignore, pkg.dependency.name, v.target.name, today))
            for v in pkg.verdicts
        )
        packages.append(replace(pkg, verdicts=verdicts))
    names = {p.dependency.name for p in report.packages}
    notes = [
        f"[tool.ftaudit] ignore entry for {rule.package} matches no scanned package"
        for rule in policy.ignore
        if rule.package not in names
    ]
    return replace(report, packages=tuple(packages), notes=(*report.notes, *notes), policy=policy)


def expired(policy: Policy, today: dt.date) -> list[Ignore]:
    return [rule for rule in policy.ignore if rule.expired(today)]


def failing(report: Report, fail_on: Collection[Status]) -> bool:
    """Whether a finding at or above --fail-on is left once the ignores are applied."""
    return any(
        v.status in fail_on and v.ignored is None for p in report.packages for v in p.verdicts
    )


def incomplete(report: Report) -> list[tuple[str, Verdict]]:
    """(package, verdict) for every verdict the run could not check, that no ignore entry
    covers (an ignored package's status does not count, whatever it is)."""
    return [
        (p.dependency.display_name, v)
        for p in report.packages
        for v in p.verdicts
        if v.incomplete is not None and v.ignored is None
    ]


def _reason(rules: tuple[Ignore, ...], name: str, target: str, today: dt.date) -> str | None:
    for rule in rules:
        if rule.covers(name, target, today):
            until = f" (until {rule.expires.isoformat()})" if rule.expires else ""
            return rule.reason + until
    return None
