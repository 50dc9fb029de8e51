"""From what a project asks for to what each target installs: the scan plan.

Requirements and pyproject entries are evaluated per target and platform: markers decide
whether a line applies; an exact pin (``==X``) is the version, otherwise the scan picks the
newest release the target installs and says the version was not locked.
"""

from __future__ import annotations

from collections.abc import Sequence

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from ftaudit.model import Dependency, LockGraph, Requested, Target
from ftaudit.sources.install_set import installed_for
from ftaudit.sources.markers import holds, marker_environment

Plan = dict[tuple[Target, str], list[Dependency]]


def lock_plan(graph: LockGraph, targets: Sequence[Target], platforms: Sequence[str]) -> Plan:
    return {(t, p): installed_for(graph, t, p) for t in targets for p in platforms}


def uniform_plan(
    dependencies: Sequence[Dependency], targets: Sequence[Target], platforms: Sequence[str]
) -> Plan:
    """The same dependencies for every target and platform (an installed environment)."""
    return {(t, p): list(dependencies) for t in targets for p in platforms}


def requested_plan(
    requested: Sequence[Requested], targets: Sequence[Target], platforms: Sequence[str]
) -> Plan:
    parsed = [(Requirement(item.requirement), item) for item in requested]
    return {(t, p): _requested_for(parsed, t, p) for t in targets for p in platforms}


def _requested_for(
    requested: Sequence[tuple[Requirement, Requested]], target: Target, platform: str
) -> list[Dependency]:
    env = marker_environment(target, platform)
    constraints: dict[str, SpecifierSet] = {}
    wanted: dict[str, tuple[Requirement, Requested]] = {}
    specs: dict[str, SpecifierSet] = {}
    hashes: dict[str, list[tuple[str, str]]] = {}
    for req, item in requested:
        if not holds(req.marker, env):
            continue
        if item.constraint:
            constraints[item.name] = constraints.get(item.name, SpecifierSet()) & req.specifier
            continue
        wanted.setdefault(item.name, (req, item))
        specs[item.name] = specs.get(item.name, SpecifierSet()) & req.specifier
        hashes.setdefault(item.name, []).extend(item.hashes)
    out = []
    for name, (req, item) in wanted.items():
        spec = specs[name] & constraints.get(name, SpecifierSet())
        pin = _exact_pin(spec)
        via = [v for v in item.via if not v.startswith("-")]
        out.append(
            Dependency(
                name=name,
                display_name=req.name,
                version=pin,
                direct=not via,
                required_by=tuple(sorted(set(via))),
                locked=pin is not None,
                hashes=tuple(dict.fromkeys(hashes[name])),
                direct_reference=f"url: {req.url}" if req.url else None,
                specifier=str(spec),
            )
        )
    return sorted(out, key=lambda d: d.name)


def _exact_pin(spec: SpecifierSet) -> str | None:
    for s in spec:
        if s.operator in ("==", "===") and "*" not in s.version:
            return s.version
    return None
