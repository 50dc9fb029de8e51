"""From what a project asks for to what each target installs: the scan plan.

A lock says per target what is installed; requirements and pyproject entries are resolved
per target and platform (`resolve.py`): markers decide whether a line applies, an exact
pin (``==X``) is the version, otherwise the newest release the target installs, and each
release's own dependencies are followed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from packaging.requirements import Requirement

from ftaudit.model import Dependency, LockGraph, Requested, Source, Target
from ftaudit.sources.install_set import installed_for
from ftaudit.sources.resolve import Provider, resolve
from ftaudit.targets import python_allows

Plan = dict[tuple[Target, str], list[Dependency]]


def lock_plan(graph: LockGraph, targets: Sequence[Target], platforms: Sequence[str]) -> Plan:
    plan: Plan = {}
    for t in targets:
        covered = python_allows(graph.requires_python, t)
        for p in platforms:
            deps = installed_for(graph, t, p)
            if not covered:
                # A lock made for other Pythons pins no file for this one (uv drops them):
                # the index decides which file the locked version installs here.
                deps = [replace(d, files=()) for d in deps]
            plan[(t, p)] = deps
    return plan


def lock_source(lock: LockGraph, targets: Sequence[Target]) -> Source:
    return Source(
        kind=lock.kind,
        path=lock.path,
        selected=lock.selected,
        left_out=lock.left_out,
        requires_python=lock.requires_python,
        not_covered=tuple(t.name for t in targets if not python_allows(lock.requires_python, t)),
    )


def lock_notes(lock: LockGraph, source: Source) -> list[str]:
    """What the lock does not say: targets outside its Python range, and the parts of it
    its tool does not install by default (so not audited)."""
    notes = []
    if source.not_covered:
        names = ", ".join(source.not_covered)
        notes.append(
            f"{lock.kind} is locked for Python {lock.requires_python}, which does not include "
            f"{names}: the lock does not cover {names}, and the verdicts there are for what "
            "the index gives for the locked versions, not for files the lock pins"
        )
    if lock.left_out:
        parts = []
        for item in lock.left_out:
            what = f"{item.kind} {item.name}" + (f" of {item.owner}" if item.owner else "")
            if item.kind == "category" and item.name != "develop":
                what += (
                    f" (a custom category: pipenv installs it only with --categories {item.name})"
                )
            extra = ", ".join(item.packages)
            detail = "; ".join(x for x in (extra and f"adds {extra}", item.include) if x)
            parts.append(f"{what} ({detail})" if detail else what)
        notes.append(
            f"{lock.kind}: not audited, as its tool does not install them by default: "
            + "; ".join(parts)
        )
    return notes


def uniform_plan(
    dependencies: Sequence[Dependency], targets: Sequence[Target], platforms: Sequence[str]
) -> Plan:
    """The same dependencies for every target and platform (an installed environment)."""
    return {(t, p): list(dependencies) for t in targets for p in platforms}


def requested_plan(
    requested: Sequence[Requested],
    targets: Sequence[Target],
    platforms: Sequence[str],
    provider: Provider,
    *,
    jobs: int = 8,
) -> tuple[Plan, list[str]]:
    """What each target installs for the project's own requirements, and notes on what
    the resolution could not follow."""
    parsed = [(Requirement(item.requirement), item) for item in requested]
    plan: Plan = {}
    notes: list[str] = []
    for t in targets:
        for p in platforms:
            resolution = resolve(parsed, t, p, provider, jobs=jobs)
            plan[(t, p)] = resolution.dependencies
            notes.extend(n for n in resolution.notes if n not in notes)
    return plan, notes
