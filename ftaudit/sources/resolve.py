"""Unpinned requirements followed to everything they install, per target and platform.

A requirements.in or a pyproject without a lock says what the project asks for, not what
an installer puts in place. This picks for each package the newest release the target can
install that every requirement on it allows, reads that release's Requires-Dist (with
its markers evaluated for the target, the platform and the extras asked for), and walks
again from the project's requirements until no choice changes, so requirements of a
release that was later replaced do not linger.

It does not backtrack: when no release satisfies every requirement on a package, that
package is reported without a version (an `unknown` verdict), where an installer would
fail or settle on older releases of something else. A lockfile is the exact answer, and
the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ftaudit.errors import FtauditError, first_line
from ftaudit.index.select import Release, newest_installable
from ftaudit.model import Dependency, Requested, Target
from ftaudit.sources.markers import extras_named, holds, marker_environment

MAX_PASSES = 20


class Provider(Protocol):
    """What the resolver asks the index; both raise FtauditError when they cannot say."""

    def releases(self, name: str) -> dict[Version, Release]: ...

    def requires(
        self, name: str, release: Release, target: Target, platform: str
    ) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Resolution:
    dependencies: list[Dependency]
    notes: list[str]


@dataclass(slots=True)
class _Node:
    display: str
    spec: SpecifierSet = field(default_factory=SpecifierSet)
    extras: set[str] = field(default_factory=set)
    parents: set[str] = field(default_factory=set)
    direct: bool = False
    hashes: list[tuple[str, str]] = field(default_factory=list)
    reference: str | None = None
    asks: set[tuple[str, str]] = field(default_factory=set)  # (who, specifier)


class _Walk:
    """One walk of the graph from the project's requirements, with the choices so far."""

    def __init__(self, resolver: _Resolver) -> None:
        self.r = resolver
        self.nodes: dict[str, _Node] = {}
        self.changed = False

    def add(self, req: Requirement, parent: str | None, item: Requested | None) -> str:
        name = canonicalize_name(req.name)
        node = self.nodes.setdefault(name, _Node(display=req.name))
        node.spec &= req.specifier
        node.extras |= {canonicalize_name(e) for e in req.extras}
        if req.specifier:
            node.asks.add((parent or (item.origin if item else "project"), str(req.specifier)))
        if parent is not None:
            node.parents.add(parent)
        if item is not None:
            via = [v for v in item.via if not v.startswith("-")]
            node.parents.update(canonicalize_name(v) for v in via)
            node.direct = node.direct or not via
            node.hashes.extend(item.hashes)
            if req.url:
                node.reference = f"url: {req.url}"
        return name

    def run(self, roots: Sequence[tuple[Requirement, Requested]]) -> None:
        level = list(dict.fromkeys(self.add(req, None, item) for req, item in roots))
        expanded: dict[str, tuple[Version, frozenset[str]]] = {}
        while level:
            todo: list[tuple[str, Release, frozenset[str]]] = []
            for name in level:
                node = self.nodes[name]
                if node.reference is not None:
                    continue
                release = self.r.choose(name, node.spec, self)
                extras = frozenset(node.extras)
                if release is None or expanded.get(name) == (release.version, extras):
                    continue
                expanded[name] = (release.version, extras)
                todo.append((name, release, extras))
            found = self.r.requires_of(todo)
            nxt: list[str] = []
            for (name, _release, extras), requires in zip(todo, found, strict=True):
                for req in requires:
                    if holds(req.marker, self.r.env, extras):
                        nxt.append(self.add(req, name, None))
            level = list(dict.fromkeys(nxt))


class _Resolver:
    def __init__(
        self,
        target: Target,
        platform: str,
        provider: Provider,
        constraints: dict[str, SpecifierSet],
        jobs: int,
    ) -> None:
        self.target = target
        self.platform = platform
        self.env = marker_environment(target, platform)
        self.provider = provider
        self.constraints = constraints
        self.jobs = jobs
        self.chosen: dict[str, Release | None] = {}
        self.problems: dict[str, str] = {}
        # Every walk after the first asks again; the answers do not change.
        self._requires: dict[tuple[str, Version], list[Requirement]] = {}

    def choose(self, name: str, spec: SpecifierSet, walk: _Walk) -> Release | None:
        spec = spec & self.constraints.get(name, SpecifierSet())
        current = self.chosen.get(name)
        if current is not None and spec.contains(current.version, prereleases=True):
            return current
        try:
            releases = self.provider.releases(name)
        except FtauditError:
            # The scan looks the package up again and reports why it could not.
            release = None
        else:
            release = newest_installable(releases, str(spec), self.target, self.platform)
        if name not in self.chosen or _version(release) != _version(current):
            walk.changed = True
        self.chosen[name] = release
        return release

    def requires_of(
        self, todo: Sequence[tuple[str, Release, frozenset[str]]]
    ) -> list[list[Requirement]]:
        def one(job: tuple[str, Release, frozenset[str]]) -> list[Requirement]:
            name, release, _extras = job
            known = self._requires.get((name, release.version))
            if known is None:
                known = self._requires[(name, release.version)] = fetch(name, release)
            return known

        def fetch(name: str, release: Release) -> list[Requirement]:
            try:
                texts = self.provider.requires(name, release, self.target, self.platform)
            except FtauditError as exc:
                self.problems[name] = f"{name} {release.version}: {first_line(exc)}"
                return []
            out = []
            for text in texts:
                try:
                    out.append(Requirement(text))
                except InvalidRequirement as exc:
                    self.problems[name] = (
                        f"{name} {release.version}: invalid Requires-Dist {text!r} "
                        f"({first_line(exc)})"
                    )
            return out

        if sum((n, r.version) not in self._requires for n, r, _e in todo) <= 1 or self.jobs <= 1:
            return [one(job) for job in todo]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(todo))) as pool:
            return list(pool.map(one, todo))


def resolve(
    requested: Sequence[tuple[Requirement, Requested]],
    target: Target,
    platform: str,
    provider: Provider,
    *,
    jobs: int = 8,
) -> Resolution:
    """What an installer puts in place for `requested` on (target, platform)."""
    env = marker_environment(target, platform)
    constraints: dict[str, SpecifierSet] = {}
    constraint_asks: dict[str, set[tuple[str, str]]] = {}
    roots: list[tuple[Requirement, Requested]] = []
    for req, item in requested:
        if not holds(req.marker, env, req.extras):
            continue
        if item.constraint:
            constraints[item.name] = constraints.get(item.name, SpecifierSet()) & req.specifier
            constraint_asks.setdefault(item.name, set()).add((item.origin, str(req.specifier)))
        else:
            roots.append((req, item))
    resolver = _Resolver(target, platform, provider, constraints, jobs)
    notes: list[str] = []
    for _ in range(MAX_PASSES):
        walk = _Walk(resolver)
        walk.run(roots)
        if not walk.changed:
            break
    else:
        notes.append(
            f"{target.name} on {platform}: the dependency versions did not settle after "
            f"{MAX_PASSES} passes; the last choice is reported"
        )
    deps = []
    for name, node in walk.nodes.items():
        spec = node.spec & constraints.get(name, SpecifierSet())
        release = None if node.reference else resolver.chosen.get(name)
        pinned = _exact_pin(spec)
        deps.append(
            Dependency(
                name=name,
                display_name=node.display,
                version=str(release.version) if release is not None else pinned,
                direct=node.direct,
                required_by=tuple(sorted(node.parents - {name})),
                locked=pinned is not None,
                hashes=tuple(dict.fromkeys(node.hashes)),
                direct_reference=node.reference,
                specifier=str(spec),
                requirements=tuple(sorted(node.asks | constraint_asks.get(name, set()))),
            )
        )
        if node.reference is not None:
            notes.append(f"{node.display} is {node.reference}: its dependencies are not followed")
    problems = [resolver.problems[name] for name in sorted(resolver.problems) if name in walk.nodes]
    if len(problems) > 3:
        notes.append(
            f"dependencies not followed for {len(problems)} packages: "
            + "; ".join(problems[:3])
            + f"; and {len(problems) - 3} more"
        )
    else:
        notes.extend(f"dependencies not followed: {p}" for p in problems)
    return Resolution(sorted(deps, key=lambda d: d.name), notes)


def _exact_pin(spec: SpecifierSet) -> str | None:
    for s in spec:
        if s.operator in ("==", "===") and "*" not in s.version:
            return s.version
    return None


def _version(release: Release | None) -> Version | None:
    return release.version if release is not None else None


class EdgeProvider(Protocol):
    def dependency_requires(
        self, dep: Dependency, target: Target, platform: str
    ) -> tuple[str, ...]:
        """Requires-Dist of the artifact `dep` installs on (target, platform)."""
        ...


def with_metadata_edges(
    deps: Sequence[Dependency],
    target: Target,
    platform: str,
    provider: EdgeProvider,
    *,
    direct_known: bool,
    jobs: int = 8,
) -> tuple[list[Dependency], list[str]]:
    """Who requires whom among locked packages, from each one's own metadata: for locks
    that record no edges (Pipfile.lock, pylock.toml as uv writes it)."""
    env = marker_environment(target, platform)
    names = {d.name for d in deps}
    parents: dict[str, set[str]] = {d.name: set() for d in deps}
    notes: list[str] = []

    def requires(dep: Dependency) -> tuple[Dependency, tuple[str, ...] | str]:
        if dep.direct_reference or not dep.version:
            return dep, ()
        try:
            return dep, provider.dependency_requires(dep, target, platform)
        except FtauditError as exc:
            return dep, first_line(exc)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(deps) or 1))) as pool:
        answers = list(pool.map(requires, deps))
    asks: dict[str, set[tuple[str, str]]] = {}
    failed: dict[str, tuple[str, list[str]]] = {}  # failure -> (first text, who)
    for dep, found in answers:
        if isinstance(found, str):
            failed.setdefault(_failure_key(found, dep), (found, []))[1].append(dep.display_name)
            continue
        for text in found:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            child = canonicalize_name(req.name)
            # The lock already decided which extras are installed; an edge through one of
            # them is real when its target is in the set.
            if (
                child in names
                and child != dep.name
                and holds(req.marker, env, extras_named(req.marker))
            ):
                parents[child].add(dep.name)
                asks.setdefault(child, set()).add((dep.name, str(req.specifier)))
    # One note per kind of failure, counted: a partial index can fail for most packages.
    for example, who in failed.values():
        notes.append(
            f"who {_counted(who)} require{'s' if len(who) == 1 else ''} is unknown (e.g. {example})"
        )
    out = [
        replace(
            d,
            required_by=tuple(sorted(parents[d.name])),
            requirements=tuple(sorted(set(d.requirements) | asks.get(d.name, set()))),
            direct=d.direct if direct_known else not parents[d.name],
        )
        for d in deps
    ]
    return out, notes


def _failure_key(text: str, dep: Dependency) -> str:
    """A failure's text with the package's own name and version taken out, so that the
    same failure for many packages is told once."""
    out = text
    for word in (dep.version or "", dep.display_name, dep.name, dep.name.replace("-", "_")):
        if word:
            out = out.replace(word, "…")
    return out


def _counted(names: Sequence[str], limit: int = 8) -> str:
    if len(names) == 1:
        return names[0]
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} packages ({shown}{more})"
