"""Which locked packages a target installs: pure functions over a LockGraph.

Markers and Requires-Python are evaluated for the target interpreter and platform (see
markers.py), so a package only needed on Windows is absent from a Linux report, and one
excluded on 3.14 is absent from the 3.14t column. The lock's markers are evaluated for
the extras and groups its reader chose (the lock's own tool's default install, unless
asked otherwise), as one selection: a resolution uv forked holds one version of each
package, never a mix of its forks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ftaudit.model import Dependency, Edge, LockedPackage, LockGraph, Target
from ftaudit.sources.markers import extras_named, holds, lock_holds, marker_environment
from ftaudit.targets import python_allows


def installed_for(graph: LockGraph, target: Target, platform: str) -> list[Dependency]:
    """The packages `graph` installs on `target`/`platform`, with who requires each."""
    env = marker_environment(target, platform)

    def pkg_holds(pkg: LockedPackage) -> bool:
        return lock_holds(pkg.marker, env, graph.extras, graph.groups)

    by_name: dict[str, list[LockedPackage]] = {}
    for pkg in graph.packages:
        by_name.setdefault(pkg.name, []).append(pkg)
    for name, versions in by_name.items():
        if len(versions) > 1:
            # uv's resolution-markers say which fork each version belongs to: only the
            # versions of this selection's fork can be installed with it.
            here = [p for p in versions if not p.fork_markers or _in_fork(p, env, graph)]
            by_name[name] = here or versions

    chosen: dict[str, LockedPackage] = {}
    parents: dict[str, set[str]] = {}
    asks: dict[str, set[tuple[str, str]]] = {}  # name -> {(who, specifier)}
    if graph.roots is None:
        for pkg in graph.packages:
            if (
                pkg.name not in chosen
                and not pkg.is_project
                and pkg_holds(pkg)
                and python_allows(pkg.requires_python, target)
            ):
                chosen[pkg.name] = pkg
                parents[pkg.name] = set()
        for pkg in chosen.values():
            # An extra's edges count too: the lock installed its target for some extra.
            optional = [e for _extra, edges in pkg.optional for e in edges]
            for edge in (*pkg.dependencies, *optional):
                asked = _all_extras(pkg) | set(extras_named(edge.marker))
                if edge.name in chosen and holds(edge.marker, env, asked):
                    parents[edge.name].add(pkg.name)
                    if edge.specifier:
                        asks.setdefault(edge.name, set()).add((pkg.name, edge.specifier))
        direct = set(graph.direct)
    else:
        extras: dict[str, set[str]] = {}
        projects = {p.name for p in graph.packages if p.is_project}
        queue: deque[tuple[str | None, Edge]] = deque((None, r) for r in graph.roots)
        direct = set()
        while queue:
            parent, edge = queue.popleft()
            parent_extras = extras.get(parent, set()) if parent else set()
            if not lock_holds(edge.marker, env, parent_extras | graph.extras, graph.groups):
                continue
            picked = _pick(by_name.get(edge.name, []), edge, target, pkg_holds)
            if picked is None:
                continue
            pkg = picked
            if pkg.name in chosen and chosen[pkg.name].version != pkg.version:
                # Another fork's version, reached through an edge whose marker could not
                # be decided here: the first version reached stays, alone.
                continue
            if edge.specifier:
                asks.setdefault(pkg.name, set()).add((parent or "project", edge.specifier))
            if parent is None or parent in projects:
                # The project's own requirements, and a workspace member's.
                direct.add(pkg.name)
            else:
                parents.setdefault(pkg.name, set()).add(parent)
            new_extras = set(edge.extras) - extras.get(pkg.name, set())
            first = pkg.name not in chosen
            chosen[pkg.name] = pkg
            parents.setdefault(pkg.name, set())
            if not first and not new_extras:
                continue
            active = extras.setdefault(pkg.name, set())
            active.update(new_extras)
            for dep in pkg.dependencies:
                queue.append((pkg.name, dep))
            for extra, edges in pkg.optional:
                if extra in active:
                    queue.extend((pkg.name, d) for d in edges)
    out = []
    for name, pkg in chosen.items():
        if pkg.is_project:
            continue
        out.append(
            Dependency(
                name=name,
                display_name=pkg.display_name,
                version=pkg.version,
                direct=name in direct or (not graph.direct and not parents[name]),
                required_by=tuple(sorted(parents[name] - {name} - _projects(graph))),
                locked=pkg.version is not None,
                files=pkg.files,
                index=pkg.index,
                direct_reference=pkg.direct_reference,
                requirements=tuple(sorted(asks.get(name, ()))),
            )
        )
    return sorted(out, key=lambda d: d.name)


def _projects(graph: LockGraph) -> set[str]:
    return {p.name for p in graph.packages if p.is_project}


def _in_fork(pkg: LockedPackage, env: Mapping[str, str], graph: LockGraph) -> bool:
    return any(lock_holds(m, env, graph.extras, graph.groups) for m in pkg.fork_markers)


def _all_extras(pkg: LockedPackage) -> set[str]:
    return {extra for extra, _edges in pkg.optional}


def _pick(
    candidates: list[LockedPackage],
    edge: Edge,
    target: Target,
    pkg_holds: Callable[[LockedPackage], bool],
) -> LockedPackage | None:
    """The locked entry an edge means: the version it names (None when that version is
    not of this fork), else the newest entry whose version fits the edge's specifier and
    whose own marker and Python range hold."""
    if edge.version is not None:
        # The version the lock names, or none: another version would be another fork's.
        return next((p for p in candidates if p.version == edge.version), None)
    fitting = []
    for pkg in candidates:
        if not python_allows(pkg.requires_python, target):
            continue
        if not pkg_holds(pkg):
            continue
        if edge.specifier and pkg.version and not _fits(edge.specifier, pkg.version):
            continue
        fitting.append(pkg)
    return max(fitting, key=_version_key, default=None)


def _fits(specifier: str, version: str) -> bool:
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True


def _version_key(pkg: LockedPackage) -> Version:
    try:
        return Version(pkg.version or "0")
    except InvalidVersion:
        return Version("0")
