"""Who pulls in what, from the Requires-Dist of installed distributions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ftaudit.model import Dependency, Installed
from ftaudit.sources.markers import holds


def edges(
    installed: Iterable[Installed],
    env: Mapping[str, str],
    asks: dict[str, set[tuple[str, str]]] | None = None,
) -> dict[str, set[str]]:
    """parent -> children among the installed distributions; with `asks`, also
    child -> {(parent, specifier)}: what each parent's Requires-Dist allows of it."""
    dists = {d.name: d for d in installed}
    out: dict[str, set[str]] = {name: set() for name in dists}
    for dist in dists.values():
        for line in dist.requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            child = canonicalize_name(req.name)
            # No extras: an installed environment does not record which were asked for,
            # so a requirement behind one (setuptools' `pip; extra == "testing"`) is no edge.
            if child in dists and child != dist.name and holds(req.marker, env):
                out[dist.name].add(child)
                if asks is not None:
                    asks.setdefault(child, set()).add((dist.name, str(req.specifier)))
    return out


def dependencies_from_installed(
    installed: Iterable[Installed],
    env: Mapping[str, str],
    direct_names: set[str] | None = None,
) -> list[Dependency]:
    """One Dependency per installed distribution, with who requires it.

    Without `direct_names` (no project file to say what is asked for directly), a
    distribution nothing else requires counts as direct.
    """
    dists = list(installed)
    asks: dict[str, set[tuple[str, str]]] = {}
    graph = edges(dists, env, asks)
    parents: dict[str, list[str]] = {d.name: [] for d in dists}
    for parent, children in graph.items():
        for child in children:
            parents[child].append(parent)
    out = []
    for d in dists:
        required_by = tuple(sorted(parents[d.name]))
        direct = d.name in direct_names if direct_names is not None else not required_by
        out.append(
            Dependency(
                name=d.name,
                display_name=d.display_name,
                version=d.version,
                direct=direct,
                required_by=required_by,
                requirements=tuple(sorted(asks.get(d.name, ()))),
            )
        )
    return out
